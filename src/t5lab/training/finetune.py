"""The fine-tuning and evaluation recipes: task YAML -> text-to-text examples -> Trainer -> real metrics.

``finetune`` trains on one task or a mixture and evaluates on every validation split by decoding the model's
outputs (generation or rank classification) and scoring them with the task's metrics; ``evaluate`` and
``predict`` run the same evaluation on an existing model. Each step lives in its own module: examples in
:mod:`t5lab.tasks.examples`, the evaluator in :mod:`t5lab.evaluation.evaluator`, metric names in
:mod:`t5lab.evaluation.naming`, files and tables in :mod:`t5lab.evaluation.outputs`.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

from transformers import EarlyStoppingCallback, PreTrainedTokenizerBase, set_seed

from t5lab.config import ModelArguments, TaskArguments
from t5lab.data.collators import FinetuneCollator
from t5lab.data.tokenizer import load_tokenizer
from t5lab.errors import ConfigError, DataError
from t5lab.evaluation.decoding import unspellable
from t5lab.evaluation.evaluator import FinetuneTrainer
from t5lab.evaluation.naming import best_model_metric
from t5lab.evaluation.outputs import plot_loss_curve, report_evaluation, write_glue_submission, write_predictions
from t5lab.log import follow_training_arguments, logger
from t5lab.models.presets import build_model, set_dropout
from t5lab.tasks.examples import EvaluationSet, evaluation_set, load_examples, mix_tasks, task_list, tokenize_examples
from t5lab.tasks.schema import Task
from t5lab.training.arguments import T5LabTrainingArguments
from t5lab.training.model_card import write_model_card
from t5lab.training.optim import optimizer_cls_and_kwargs
from t5lab.training.run_dir import effective_config, prepare_output_dir
from t5lab.training.tracking import TrackingCallback


def _tasks(task_args: TaskArguments) -> list[Task]:
    return task_list(task_args.task, task_args.task_file, single_task_files=task_args.data_files() is not None)


def _tokenizer_examples_model(
    model_args: ModelArguments, task_args: TaskArguments, tasks: list[Task], roles: tuple[str, ...]
):
    name = model_args.tokenizer_name or model_args.model_name_or_path
    if not name:
        raise ConfigError(
            "give --model_name_or_path (a checkpoint) or --tokenizer_name with --config_name (a new model)."
        )
    tokenizer = load_tokenizer(name, model_args.cache_dir, model_args.model_revision, model_args.trust_remote_code)
    for task in tasks:
        if lost := unspellable(tokenizer, task.label_words):
            logger.warning(
                f"Warning: the tokenizer cannot spell label word(s) {lost} of {task.name} (they decode "
                "differently); generation can never produce them, "
                "use --eval_mode rank or a tokenizer that covers them."
            )
    splits = {
        task.name: load_examples(
            task,
            roles,
            task_args.data_dir,
            task_args.data_files(),
            task_args.max_train_samples,
            task_args.max_eval_samples,
            model_args.cache_dir,
            task_args.source_prefix,
        )
        for task in tasks
    }
    model = build_model(tokenizer, **model_args.model_source(), for_training="train" in roles)
    return tokenizer, splits, model


def _trainer(
    model,
    tokenizer: PreTrainedTokenizerBase,
    training_args: T5LabTrainingArguments,
    task_args: TaskArguments,
    evaluation_sets: list[EvaluationSet],
    train_dataset=None,
    callbacks=(),
) -> FinetuneTrainer:
    return FinetuneTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=evaluation_sets[0].dataset,  # the Trainer checks one exists; evaluate() scores every set
        data_collator=FinetuneCollator(tokenizer, model=model, label_pad_token_id=-100, pad_to_multiple_of=8),
        processing_class=tokenizer,
        evaluation_sets=evaluation_sets,
        eval_mode=task_args.eval_mode,
        num_beams=generation_beams(task_args, training_args),
        length_penalty=task_args.length_penalty,
        max_target_length=task_args.max_target_length,
        callbacks=list(callbacks),
        optimizer_cls_and_kwargs=optimizer_cls_and_kwargs(
            training_args.t5lab_optim,
            training_args.learning_rate,
            training_args.weight_decay,
            (training_args.adam_beta1, training_args.adam_beta2),
            training_args.adam_epsilon,
        ),
    )


def _with_evaluation_policy(
    training_args: T5LabTrainingArguments, metric: str, greater: bool
) -> T5LabTrainingArguments:
    """The Trainer's arguments for a fine-tuning run: evaluation decodes text, and the best checkpoint (by
    ``metric``) is kept and loaded at the end when checkpoints coincide with evaluations. A copy: the parsed
    arguments stay as the user gave them."""
    args = _decoding(training_args)
    args.metric_for_best_model, args.greater_is_better = metric, greater
    aligned = (
        args.eval_strategy != "no"
        and args.save_strategy == args.eval_strategy
        and (args.save_strategy != "steps" or args.save_steps % args.eval_steps == 0)
    )
    if "load_best_model_at_end" not in training_args.given_flags:  # the user's value stands (the Trainer checks it)
        args.load_best_model_at_end = aligned
    return args


def _decoding(training_args: T5LabTrainingArguments) -> T5LabTrainingArguments:
    """A copy of the arguments with generation on: t5lab scores decoded text, never logits."""
    if "predict_with_generate" in training_args.given_flags and not training_args.predict_with_generate:
        raise ConfigError(
            "t5lab always scores decoded predictions; --predict_with_generate false is not supported "
            "(--eval_mode rank scores label words without generating)."
        )
    args = copy.copy(training_args)
    args.predict_with_generate = True
    return args


def generation_beams(task_args: TaskArguments, training_args: T5LabTrainingArguments) -> int:
    """Beam width of evaluation: ``--num_beams`` or the Trainer's name for it, ``--generation_num_beams``."""
    given = task_args.given_flags
    if "generation_num_beams" in given and training_args.generation_num_beams is not None:
        if "num_beams" in given and task_args.num_beams != training_args.generation_num_beams:
            raise ConfigError(
                f"--num_beams {task_args.num_beams} and --generation_num_beams {training_args.generation_num_beams} "
                "disagree; they are the same setting, give one."
            )
        return training_args.generation_num_beams
    return task_args.num_beams


def _phases(training_args: T5LabTrainingArguments) -> set[str]:
    """``--do_train/--do_eval/--do_predict`` as in the HF example scripts; none given: all three.

    Flags given true select their phases; flags given only false remove theirs from the three.
    """
    given = {
        flag.removeprefix("do_"): getattr(training_args, flag)
        for flag in ("do_train", "do_eval", "do_predict")
        if flag in training_args.given_flags
    }
    selected = {phase for phase, on in given.items() if on}
    phases = selected or {"train", "eval", "predict"} - set(given)
    if not phases:
        raise ConfigError("--do_train, --do_eval and --do_predict are all false: nothing to do.")
    return phases


def finetune(
    model_args: ModelArguments, task_args: TaskArguments, training_args: T5LabTrainingArguments
) -> dict[str, Any]:
    """Fine-tune on one task or a mixture, keep the best checkpoint, evaluate and predict; returns the metrics.

    ``--do_eval`` / ``--do_predict`` without ``--do_train`` evaluate / predict the given model, training nothing.
    """
    follow_training_arguments(training_args)
    phases = _phases(training_args)
    if "train" not in phases:
        metrics = evaluate(model_args, task_args, training_args) if "eval" in phases else {}
        if "predict" in phases:
            predict(model_args, task_args, training_args)
        return metrics
    config = effective_config((model_args, task_args, training_args))
    resume = prepare_output_dir(
        training_args.output_dir,
        config,
        training_args.overwrite_output_dir,
        training_args.resume_from_checkpoint,
        training_args.process_index == 0,
    )
    tasks = _tasks(task_args)
    metric, greater = best_model_metric(
        tasks,
        task_args.validation_file,
        training_args.metric_for_best_model,
        training_args.greater_is_better if "greater_is_better" in training_args.given_flags else None,
    )
    set_seed(training_args.seed)
    tokenizer, splits, model = _tokenizer_examples_model(model_args, task_args, tasks, ("train", "validation", "test"))
    if task_args.dropout_rate is not None:
        set_dropout(model, task_args.dropout_rate)

    train_parts, evaluation_sets, test_sets = [], [], []
    lengths = (task_args.max_source_length, task_args.max_target_length)
    for task in tasks:
        for split, dataset in splits[task.name].items():
            role = task.splits.role_of(split) or ("train" if split == "train" else "validation")
            if role == "train":
                train_parts.append(
                    tokenize_examples(dataset.select_columns(["inputs", "targets"]), tokenizer, *lengths)
                )
            elif all(t is not None for t in dataset["targets"]):
                evaluation_sets.append(evaluation_set(task, split, dataset, tokenizer, *lengths))
            else:
                test_sets.append(evaluation_set(task, split, dataset, tokenizer, *lengths))
    if not train_parts:
        raise DataError(
            f"no training split found for {', '.join(t.name for t in tasks)}; give --data_dir or --train_file."
        )
    if not evaluation_sets:
        raise DataError(f"no labeled validation split found for {', '.join(t.name for t in tasks)}.")
    if not test_sets and "predict" in phases and "do_predict" in training_args.given_flags:
        raise DataError(f"--do_predict: no test split found for {', '.join(t.name for t in tasks)}.")
    train_dataset = mix_tasks(
        train_parts, task_args.mixing, task_args.mixing_cap, task_args.mixing_temperature, training_args.seed
    )

    args = _with_evaluation_policy(training_args, metric, greater)
    callbacks = [TrackingCallback(config)]
    if task_args.early_stopping_patience is not None:
        if not args.load_best_model_at_end:
            raise ConfigError("--early_stopping_patience needs --eval_steps with --save_steps a multiple of it.")
        callbacks.append(EarlyStoppingCallback(task_args.early_stopping_patience, task_args.early_stopping_threshold))
    trainer = _trainer(model, tokenizer, args, task_args, evaluation_sets, train_dataset, callbacks)
    if trainer.is_world_process_zero():
        logger.info(
            f"Fine-tuning {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters on "
            f"{', '.join(t.name for t in tasks)} on {trainer.args.world_size} process(es), {args.precision}"
            + (f"; resuming from {resume}" if resume else "")
        )
    result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model()
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)

    output_dir = Path(training_args.output_dir)
    metrics: dict[str, Any] = {}
    if "eval" in phases:
        metrics = trainer.evaluate()
        if trainer.is_world_process_zero():
            metrics.update(
                report_evaluation(
                    trainer.evaluation_sets, trainer.last_predictions, metrics, output_dir, task_args.eval_mode
                )
            )
        trainer.save_metrics("eval", metrics)
    trainer.save_state()
    if "predict" in phases and test_sets:
        _predict_unlabeled(trainer, test_sets, output_dir)
    if trainer.is_world_process_zero():
        if training_args.plot_loss:
            plot_loss_curve(
                trainer.state.log_history,
                output_dir / "loss_curve.png",
                title=f"fine-tuning {', '.join(t.name for t in tasks)}",
            )
        card = write_model_card(
            output_dir,
            trainer.model,
            config,
            {**result.metrics, **metrics},
            "finetune",
            tasks,
            trainer.evaluation_sets,
        )
        logger.info(f"Model card: {card}")
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message="End of training")  # the folder as it is now: model, card, predictions
    return metrics


def _predict_unlabeled(trainer: FinetuneTrainer, test_sets: list[EvaluationSet], output_dir: Path) -> None:
    """Predict on every process (prediction is a collective under data parallelism); the first one writes
    predictions/*.jsonl, GLUE submission files, and run_summarization's generated_predictions.txt (one
    prediction per line; ``generated_predictions_<split>.txt`` for several test splits) and predict_results.json."""
    results: dict[str, float] = {}
    for test_set in test_sets:
        started = time.perf_counter()
        texts, _ = trainer.predict_texts(test_set)
        seconds = time.perf_counter() - started
        if trainer.is_world_process_zero():
            write_predictions(output_dir / "predictions" / f"{test_set.name}.jsonl", test_set, texts)
            write_glue_submission(output_dir / "glue_submission", test_set, texts)
            suffix = "" if len(test_sets) == 1 else f"_{test_set.name}"
            lines = "".join(" ".join(text.split()) + "\n" for text in texts)
            (output_dir / f"generated_predictions{suffix}.txt").write_text(lines, encoding="utf-8")
            prefix = "predict" if len(test_sets) == 1 else f"predict_{test_set.name}"
            results.update(
                {
                    f"{prefix}_samples": len(texts),
                    f"{prefix}_runtime": round(seconds, 4),
                    f"{prefix}_samples_per_second": round(len(texts) / seconds, 3),
                }
            )
    if trainer.is_world_process_zero():
        trainer.save_metrics("predict", results, combined=False)
        logger.info(
            f"Test predictions: {output_dir / 'predictions'} (and generated_predictions.txt); "
            f"GLUE submission files: {output_dir / 'glue_submission'}"
        )


def _trainer_for_existing_model(
    model_args: ModelArguments, task_args: TaskArguments, training_args: T5LabTrainingArguments, role: str
) -> FinetuneTrainer:
    """A trainer (no training) whose evaluation sets are the ``role`` splits of the task(s)."""
    follow_training_arguments(training_args)
    config = effective_config((model_args, task_args, training_args))
    prepare_output_dir(
        training_args.output_dir, config, training_args.overwrite_output_dir, None, training_args.process_index == 0
    )
    tasks = _tasks(task_args)
    tokenizer, splits, model = _tokenizer_examples_model(model_args, task_args, tasks, (role,))
    lengths = (task_args.max_source_length, task_args.max_target_length)
    sets = [
        evaluation_set(task, split, dataset, tokenizer, *lengths)
        for task in tasks
        for split, dataset in splits[task.name].items()
    ]
    return _trainer(model, tokenizer, _decoding(training_args), task_args, sets)


def evaluate(
    model_args: ModelArguments, task_args: TaskArguments, training_args: T5LabTrainingArguments
) -> dict[str, Any]:
    """Evaluate an existing model on the validation splits of the task(s); writes metrics and predictions."""
    trainer = _trainer_for_existing_model(model_args, task_args, training_args, "validation")
    metrics = trainer.evaluate()
    if trainer.is_world_process_zero():
        metrics.update(
            report_evaluation(
                trainer.evaluation_sets,
                trainer.last_predictions,
                metrics,
                Path(training_args.output_dir),
                task_args.eval_mode,
            )
        )
    trainer.save_metrics("eval", metrics)
    return metrics


def predict(model_args: ModelArguments, task_args: TaskArguments, training_args: T5LabTrainingArguments) -> Path:
    """Predict the test splits of the task(s): predictions files and GLUE-leaderboard submission TSVs."""
    trainer = _trainer_for_existing_model(model_args, task_args, training_args, "test")
    output_dir = Path(training_args.output_dir)
    _predict_unlabeled(trainer, trainer.evaluation_sets, output_dir)
    return output_dir / "glue_submission"
