"""The fine-tuning and evaluation recipes: task YAML -> text-to-text examples -> Trainer -> real metrics.

``finetune`` trains on one task or a mixture and evaluates on every validation split by decoding the
model's outputs (generation or rank classification) and scoring them with the task's metrics;
``evaluate`` and ``predict`` run the same evaluation on an existing model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset, interleave_datasets
from rich.console import Console
from transformers import EarlyStoppingCallback, PreTrainedTokenizerBase, set_seed

from t5lab.config import ModelArguments, T5LabTrainingArguments, effective_config
from t5lab.data.collators import FinetuneCollator
from t5lab.data.tokenizer import load_tokenizer
from t5lab.errors import ConfigError, DataError
from t5lab.evaluation.decoding import decode, rank_classify
from t5lab.evaluation.metrics import compute_metrics, glue_average
from t5lab.evaluation.outputs import plot_loss_curve, print_table, write_glue_submission, write_predictions
from t5lab.models.presets import build_model
from t5lab.tasks.formatting import format_examples
from t5lab.tasks.readers import load_task_splits
from t5lab.tasks.registry import get_task
from t5lab.tasks.schema import Task
from t5lab.training.optim import optimizer_cls_and_kwargs
from t5lab.training.run_dir import prepare_output_dir
from t5lab.training.tracking import TrackingCallback
from t5lab.training.trainer import T5LabTrainer

console = Console(stderr=True)
EVAL_MODES = ("generate", "rank")
MIXING = ("proportional", "temperature")


@dataclass
class TaskArguments:
    """Which task(s), where their data is, and how examples are built and evaluated."""

    task: str = field(metadata={"help": "Task name(s), e.g. glue/sst2; comma-separated for a multi-task mixture."})
    task_file: str | None = field(default=None, metadata={"help": "YAML file(s) of extra task definitions, comma-separated."})
    data_dir: str | None = field(
        default=None, metadata={"help": "Local data: GLUE's root folder (SST-2/, RTE/, ...) or one task's folder. Default: the hub."}
    )
    train_file: str | None = field(default=None, metadata={"help": "Training file for a single task (csv/tsv/jsonl/json/parquet)."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation file for a single task."})
    test_file: str | None = field(default=None, metadata={"help": "Test file for a single task."})
    max_source_length: int = field(default=512, metadata={"help": "Inputs are truncated to this many tokens."})
    max_target_length: int = field(default=128, metadata={"help": "Targets are truncated to this many tokens."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use at most this many training examples per task."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Evaluate on at most this many examples per split."})
    eval_mode: str = field(
        default="generate",
        metadata={"help": "generate (decode text, then parse) or rank (score each label word; classification only)."},
    )
    num_beams: int = field(default=1, metadata={"help": "Beams for generation (1 = greedy)."})
    length_penalty: float = field(default=1.0, metadata={"help": "Beam-search length penalty."})
    early_stopping_patience: int | None = field(default=None, metadata={"help": "Stop after N evaluations without improvement."})
    early_stopping_threshold: float = field(default=0.0, metadata={"help": "Minimum improvement that counts."})
    mixing: str = field(default="proportional", metadata={"help": "Multi-task mixing: proportional (to size, capped) or temperature."})
    mixing_cap: int = field(default=2**19, metadata={"help": "Examples-proportional mixing caps each task at this many examples."})
    mixing_temperature: float = field(default=2.0, metadata={"help": "Temperature of temperature mixing."})
    dropout_rate: float | None = field(default=0.1, metadata={"help": "Dropout while fine-tuning (T5 uses 0.1)."})

    def __post_init__(self) -> None:
        if self.eval_mode not in EVAL_MODES:
            raise ConfigError(f"--eval_mode must be one of {', '.join(EVAL_MODES)}, got '{self.eval_mode}'.")
        if self.mixing not in MIXING:
            raise ConfigError(f"--mixing must be one of {', '.join(MIXING)}, got '{self.mixing}'.")

    def data_files(self) -> dict[str, str] | None:
        """Explicit files for one task's splits (role -> file), or None to use --data_dir / the hub."""
        files = {"train": self.train_file, "validation": self.validation_file, "test": self.test_file}
        return {split: path for split, path in files.items() if path} or None


@dataclass
class EvaluationSet:
    """One split of one task, tokenized, with the text kept for the predictions file."""

    task: Task
    split: str
    dataset: Dataset  # input_ids, attention_mask[, labels]
    inputs: list[str]
    targets: list[str | None]
    references: list[Any]
    groups: list[Any] | None

    @property
    def name(self) -> str:
        return f"{self.task.short_name}_{self.split}"


def task_list(task: str, task_file: str | None = None) -> list[Task]:
    """The tasks named by ``--task`` (comma-separated), looked up with the ``--task_file`` definitions too."""
    task_files = [f.strip() for f in (task_file or "").split(",") if f.strip()]
    return [get_task(name.strip(), task_files) for name in task.split(",") if name.strip()]


def _task_list(args: TaskArguments) -> list[Task]:
    tasks = task_list(args.task, args.task_file)
    if len(tasks) > 1 and (args.train_file or args.validation_file or args.test_file):
        raise ConfigError("--train_file/--validation_file/--test_file describe one task; use --data_dir or task files for a mixture.")
    return tasks


def _tokenize(dataset: Dataset, tokenizer: PreTrainedTokenizerBase, args: TaskArguments) -> Dataset:
    def encode(batch: dict[str, list]) -> dict[str, list]:
        encoded = tokenizer(batch["inputs"], max_length=args.max_source_length, truncation=True)
        if all(t is not None for t in batch["targets"]):
            encoded["labels"] = tokenizer(text_target=batch["targets"], max_length=args.max_target_length, truncation=True)["input_ids"]
        return encoded

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names)


def load_examples(task: Task, args: TaskArguments, roles: tuple[str, ...], cache_dir: str | None) -> dict[str, Dataset]:
    """Formatted (inputs/targets) splits of ``task`` for the given roles; a test split is optional when
    training, every other requested split is required; empty splits are errors."""
    files = {role: path for role, path in (args.data_files() or {}).items() if role in roles}
    if files:
        splits = load_task_splits(task, data_files=files, cache_dir=cache_dir)
    else:
        required = [name for role in roles if not (role == "test" and "train" in roles) for name in task.splits.names(role)]
        splits = load_task_splits(task, data_dir=args.data_dir, cache_dir=cache_dir, splits=required)
        if "test" in roles and "train" in roles:
            optional = load_task_splits(task, data_dir=args.data_dir, cache_dir=cache_dir)
            splits.update({name: ds for name, ds in optional.items() if task.splits.role_of(name) == "test"})
    formatted = {}
    for name, dataset in splits.items():
        if len(dataset) == 0:
            raise DataError(f"task {task.name}: split '{name}' is empty.")
        limit = args.max_train_samples if task.splits.role_of(name) == "train" else args.max_eval_samples
        if limit is not None and len(dataset) > limit:
            dataset = dataset.select(range(limit))
        formatted[name] = format_examples(task, dataset)
    return formatted


def _evaluation_set(task: Task, split: str, dataset: Dataset, tokenizer: PreTrainedTokenizerBase, args: TaskArguments) -> EvaluationSet:
    references = list(dataset[task.label_column]) if task.kind != "text" else list(dataset["targets"])
    groups = list(dataset[task.group_column]) if task.group_column else None
    return EvaluationSet(task, split, _tokenize(dataset, tokenizer, args), list(dataset["inputs"]), list(dataset["targets"]), references, groups)


def _mixture(parts: list[Dataset], args: TaskArguments, seed: int) -> Dataset:
    if len(parts) == 1:
        return parts[0]
    sizes = np.array([min(len(p), args.mixing_cap) for p in parts], dtype=float)
    if args.mixing == "temperature":
        sizes = sizes ** (1.0 / args.mixing_temperature)
    return interleave_datasets(parts, probabilities=(sizes / sizes.sum()).tolist(), seed=seed, stopping_strategy="all_exhausted")


class FinetuneTrainer(T5LabTrainer):
    """Evaluation = decode every validation split, parse with its task, score with the task's metrics."""

    def __init__(self, *args: Any, evaluation_sets: list[EvaluationSet], task_args: TaskArguments, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.evaluation_sets = evaluation_sets
        self.task_args = task_args
        self.last_predictions: dict[str, list[str]] = {}

    def predict_texts(self, evaluation_set: EvaluationSet) -> tuple[list[str], dict[str, float]]:
        """The model's text prediction for each example, and the teacher-forced loss when labels exist."""
        args = self.task_args
        if args.eval_mode == "rank" and evaluation_set.task.kind == "classification":
            loss = {}
            if "labels" in evaluation_set.dataset.column_names:
                output = self.evaluation_loop(self.get_eval_dataloader(evaluation_set.dataset), "rank", prediction_loss_only=True)
                loss = {"loss": output.metrics["eval_loss"]}
            texts = rank_classify(self.model, self.processing_class, evaluation_set.dataset["input_ids"],
                                  evaluation_set.task.label_words, self.args.per_device_eval_batch_size)
            return texts, loss
        # max_length counts the decoder start token, so this allows max_target_length generated tokens
        limit = self.args.generation_max_length or args.max_target_length
        output = self.predict(evaluation_set.dataset, metric_key_prefix="eval", max_length=limit + 1,
                              num_beams=args.num_beams, length_penalty=args.length_penalty)
        loss = {"loss": output.metrics["eval_loss"]} if "eval_loss" in output.metrics else {}
        # Under data parallelism Seq2SeqTrainer gathers with accelerator.gather, which keeps the examples the
        # sampler repeated to even out the processes' last batches; they come after all the real ones, in order.
        return decode(self.processing_class, output.predictions[: len(evaluation_set.dataset)]), loss

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval", **kwargs) -> dict[str, float]:
        single = len(self.evaluation_sets) == 1
        metrics: dict[str, float] = {}
        scores = []
        for evaluation_set in self.evaluation_sets:
            texts, loss = self.predict_texts(evaluation_set)
            self.last_predictions[evaluation_set.name] = texts
            results = {**loss, **compute_metrics(evaluation_set.task, texts, evaluation_set.references, evaluation_set.groups)}
            prefix = metric_key_prefix if single else f"{metric_key_prefix}_{evaluation_set.name}"
            metrics.update({f"{prefix}_{k}": float(v) for k, v in results.items()})
            scores.append(results[evaluation_set.task.metric_to_optimize])
        if not single:
            metrics[f"{metric_key_prefix}_average"] = float(np.mean(scores))
            losses = [v for k, v in metrics.items() if k.endswith("_loss")]
            if losses:
                metrics[f"{metric_key_prefix}_loss"] = float(np.mean(losses))
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


def produced_metrics(tasks: list[Task], validation_file: str | None = None) -> tuple[list[str], str, bool]:
    """The eval metrics (without ``eval_``) a fine-tuning run writes, and its default best-model metric.

    One validation split: the task's metrics, invalid_rate and loss. Several (MNLI's matched and mismatched, a
    mixture): their mean ``average``, ``loss``, and each split's metrics as ``<task>_<split>_<metric>``.
    Returns (metrics, default metric to optimize, greater is better).
    """
    sets = [(task, split) for task in tasks for split in (["validation"] if validation_file else task.splits.names("validation"))]
    if len(sets) == 1:
        return [*tasks[0].produced_metrics, "loss"], tasks[0].metric_to_optimize, tasks[0].greater_is_better
    per_split = [f"{task.short_name}_{split}_{m}" for task, split in sets for m in task.produced_metrics]
    return ["average", "loss", *per_split], "average", True


def _metric_for_best_model(tasks: list[Task], args: TaskArguments, requested: str | None) -> tuple[str, bool]:
    """The metric that picks the best checkpoint; checked before any data is read or model built."""
    produced, default, greater = produced_metrics(tasks, args.validation_file)
    if requested is None:
        return default, greater
    name = requested.removeprefix("eval_").removeprefix("eval/")
    if name not in produced:
        raise ConfigError(f"--metric_for_best_model '{requested}' is not a metric of this run; choose one of {', '.join(produced)}.")
    return name, name != "loss" and not name.endswith("invalid_rate")


def _build(model_args: ModelArguments, task_args: TaskArguments, tasks: list[Task], roles: tuple[str, ...]):
    name = model_args.tokenizer_name or model_args.model_name_or_path
    if not name:
        raise ConfigError("give --model_name_or_path (a checkpoint) or --tokenizer_name with --config_name (a new model).")
    tokenizer = load_tokenizer(name, model_args.cache_dir, model_args.model_revision, model_args.trust_remote_code)
    for task in tasks:
        lost = [w for w in task.label_words if decode(tokenizer, [tokenizer(w)["input_ids"]])[0] != w]
        if lost:
            console.print(f"[yellow]Warning: the tokenizer cannot spell label word(s) {lost} of {task.name} (they decode differently); "
                          "generation can never produce them, use --eval_mode rank or a tokenizer that covers them.[/]")
    splits = {task.name: load_examples(task, task_args, roles, model_args.cache_dir) for task in tasks}
    model = build_model(tokenizer, model_args.model_name_or_path, model_args.config_name, model_args.cache_dir,
                        model_args.model_revision, model_args.trust_remote_code)
    if task_args.dropout_rate is not None and "train" in roles:
        for module in model.modules():
            if module.__class__.__name__ == "Dropout":
                module.p = task_args.dropout_rate
        model.config.dropout_rate = task_args.dropout_rate
    return tokenizer, splits, model


def _make_trainer(model, tokenizer, training_args, task_args, evaluation_sets, train_dataset=None, callbacks=()):
    training_args.predict_with_generate = True  # evaluation scores decoded text, never logits
    return FinetuneTrainer(
        model=model, args=training_args, train_dataset=train_dataset,
        eval_dataset=evaluation_sets[0].dataset,  # the Trainer checks one exists; evaluate() scores every set
        data_collator=FinetuneCollator(tokenizer, model=model, label_pad_token_id=-100, pad_to_multiple_of=8),
        processing_class=tokenizer, evaluation_sets=evaluation_sets, task_args=task_args, callbacks=list(callbacks),
        optimizer_cls_and_kwargs=optimizer_cls_and_kwargs(
            training_args.t5lab_optim, training_args.learning_rate, training_args.weight_decay,
            (training_args.adam_beta1, training_args.adam_beta2), training_args.adam_epsilon),
    )


def _report(trainer: FinetuneTrainer, metrics: dict[str, float], output_dir: Path, write_submission: bool = False) -> None:
    """Predictions files, GLUE submission files, the summary table and the GLUE average."""
    per_task: dict[str, dict[str, dict[str, float]]] = {}
    for evaluation_set in trainer.evaluation_sets:
        texts = trainer.last_predictions[evaluation_set.name]
        write_predictions(output_dir / "predictions" / f"{evaluation_set.name}.jsonl", evaluation_set, texts)
        if write_submission:
            write_glue_submission(output_dir / "glue_submission", evaluation_set, texts)
        prefix = "eval" if len(trainer.evaluation_sets) == 1 else f"eval_{evaluation_set.name}"
        per_task.setdefault(evaluation_set.task.name, {})[evaluation_set.split] = {
            m: metrics[f"{prefix}_{m}"] for m in evaluation_set.task.produced_metrics if f"{prefix}_{m}" in metrics}
    glue = {name: results for name, results in per_task.items() if name.startswith("glue/")}
    if glue and any(results for results in glue.values()):
        metrics["eval_glue_average"] = glue_average({name.split("/")[1]: r for name, r in glue.items()})
    rows = [(task, split, metric, value) for task, by_split in per_task.items() for split, values in by_split.items()
            for metric, value in values.items()]
    if rows:
        print_table(f"Evaluation ({trainer.task_args.eval_mode})", ["task", "split", "metric", "value"], rows)


def finetune(model_args: ModelArguments, task_args: TaskArguments, training_args: T5LabTrainingArguments) -> dict[str, Any]:
    """Fine-tune on one task or a mixture, keep the best checkpoint, evaluate and predict; returns the metrics."""
    config = effective_config((model_args, task_args, training_args))
    resume = prepare_output_dir(training_args.output_dir, config, training_args.overwrite_output_dir,
                                training_args.resume_from_checkpoint, training_args.process_index == 0)
    tasks = _task_list(task_args)
    metric, greater = _metric_for_best_model(tasks, task_args, training_args.metric_for_best_model)
    set_seed(training_args.seed)
    tokenizer, splits, model = _build(model_args, task_args, tasks, ("train", "validation", "test"))
    train_parts, evaluation_sets, test_sets = [], [], []
    for task in tasks:
        for split, dataset in splits[task.name].items():
            role = task.splits.role_of(split) or ("train" if split == "train" else "validation")
            if role == "train":
                train_parts.append(_tokenize(dataset.select_columns(["inputs", "targets"]), tokenizer, task_args))
            elif all(t is not None for t in dataset["targets"]):
                evaluation_sets.append(_evaluation_set(task, split, dataset, tokenizer, task_args))
            else:
                test_sets.append(_evaluation_set(task, split, dataset, tokenizer, task_args))
    if not train_parts:
        raise DataError(f"no training split found for {', '.join(t.name for t in tasks)}; give --data_dir or --train_file.")
    if not evaluation_sets:
        raise DataError(f"no labeled validation split found for {', '.join(t.name for t in tasks)}.")
    training_args.metric_for_best_model, training_args.greater_is_better = metric, greater
    evaluating = training_args.eval_strategy != "no"
    training_args.load_best_model_at_end = evaluating and training_args.save_strategy == training_args.eval_strategy and (
        training_args.save_strategy != "steps" or training_args.save_steps % training_args.eval_steps == 0)
    callbacks = []
    if task_args.early_stopping_patience is not None:
        if not training_args.load_best_model_at_end:
            raise ConfigError("--early_stopping_patience needs --eval_steps with --save_steps a multiple of it.")
        callbacks.append(EarlyStoppingCallback(task_args.early_stopping_patience, task_args.early_stopping_threshold))

    callbacks.append(TrackingCallback(config))
    trainer = _make_trainer(model, tokenizer, training_args, task_args, evaluation_sets,
                            _mixture(train_parts, task_args, training_args.seed), callbacks)
    if trainer.is_world_process_zero():
        console.print(f"Fine-tuning {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters on "
                      f"{', '.join(t.name for t in tasks)} on {trainer.args.world_size} process(es)"
                      + (f"; resuming from {resume}" if resume else ""))
    result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model()
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    metrics = trainer.evaluate()
    output_dir = Path(training_args.output_dir)
    if trainer.is_world_process_zero():
        _report(trainer, metrics, output_dir)
    trainer.save_metrics("eval", metrics)
    trainer.save_state()
    if test_sets:
        _predict_unlabeled(trainer, test_sets, output_dir)
    if trainer.is_world_process_zero() and training_args.plot_loss:
        plot_loss_curve(trainer.state.log_history, output_dir / "loss_curve.png", title=f"fine-tuning {', '.join(t.name for t in tasks)}")
    return metrics


def _predict_unlabeled(trainer: FinetuneTrainer, test_sets: list[EvaluationSet], output_dir: Path) -> None:
    """Predict on every process (prediction is a collective under data parallelism); the first one writes."""
    for test_set in test_sets:
        texts, _ = trainer.predict_texts(test_set)
        if trainer.is_world_process_zero():
            write_predictions(output_dir / "predictions" / f"{test_set.name}.jsonl", test_set, texts)
            write_glue_submission(output_dir / "glue_submission", test_set, texts)
    if trainer.is_world_process_zero():
        console.print(f"Test predictions: {output_dir / 'predictions'}; GLUE submission files: {output_dir / 'glue_submission'}")


def _trainer_for_existing_model(model_args: ModelArguments, task_args: TaskArguments, training_args: T5LabTrainingArguments,
                                role: str) -> FinetuneTrainer:
    """A trainer (no training) whose evaluation sets are the ``role`` splits of the task(s)."""
    config = effective_config((model_args, task_args, training_args))
    prepare_output_dir(training_args.output_dir, config, training_args.overwrite_output_dir, None, training_args.process_index == 0)
    task_args.dropout_rate = None
    tasks = _task_list(task_args)
    tokenizer, splits, model = _build(model_args, task_args, tasks, (role,))
    sets = [_evaluation_set(task, split, dataset, tokenizer, task_args) for task in tasks for split, dataset in splits[task.name].items()]
    return _make_trainer(model, tokenizer, training_args, task_args, sets)


def evaluate(model_args: ModelArguments, task_args: TaskArguments, training_args: T5LabTrainingArguments) -> dict[str, Any]:
    """Evaluate an existing model on the validation splits of the task(s); writes metrics and predictions."""
    trainer = _trainer_for_existing_model(model_args, task_args, training_args, "validation")
    metrics = trainer.evaluate()
    if trainer.is_world_process_zero():
        _report(trainer, metrics, Path(training_args.output_dir))
    trainer.save_metrics("eval", metrics)
    return metrics


def predict(model_args: ModelArguments, task_args: TaskArguments, training_args: T5LabTrainingArguments) -> Path:
    """Predict the test splits of the task(s): predictions files and GLUE-leaderboard submission TSVs."""
    trainer = _trainer_for_existing_model(model_args, task_args, training_args, "test")
    output_dir = Path(training_args.output_dir)
    _predict_unlabeled(trainer, trainer.evaluation_sets, output_dir)
    return output_dir / "glue_submission"
