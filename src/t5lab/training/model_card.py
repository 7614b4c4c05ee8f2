"""The model card (``README.md``) that every pre-training and fine-tuning run leaves in its output dir.

A Hugging Face model card: YAML metadata that the hub indexes (library, tags, datasets, ``model-index`` results)
and a body for people: the model's size and shape, its tokenizer, what it was trained on and how, its final
metrics, the command line and the versions. The recipes write it last, then ``--push_to_hub`` uploads the
folder with it (:class:`~t5lab.training.trainer.T5LabTrainer` keeps the Trainer's own draft from replacing it).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from t5lab.data import pmi
from t5lab.data.corpus import parse_sources
from t5lab.data.objectives import parse_objective
from t5lab.evaluation.naming import EVAL_PREFIX, metrics_of_splits
from t5lab.models.presets import DEFAULT_PRESET
from t5lab.training.run_dir import CONFIG_FILE, config_yaml, redact_argv
from t5lab.training.tracking import environment

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from t5lab.tasks.schema import Task

CARD_FILE = "README.md"
TASK_TYPE = "text2text-generation"
# Pre-training's eval metrics that go into model-index, with the hub's metric id of each.
_PRETRAINING_RESULTS = {"loss": "loss", "token_accuracy": "accuracy"}
_EXAMPLE_CHARS = 200  # the usage snippet quotes at most this much of a real validation input


@dataclass
class _Training:
    """What a card says about the data and the objective of its run."""

    summary: str  # "pre-trained on ...", "fine-tuned on ..."
    lines: list[str]  # the section of the body
    tags: list[str]
    datasets: list[str]  # hub ids only
    results: list[EvalResult] = field(default_factory=list)
    example: str = "The <extra_id_0> of the city."  # input of the usage snippet


def write_model_card(
    output_dir: str | Path,
    model: PreTrainedModel,
    config: Mapping[str, Any],
    metrics: Mapping[str, Any],
    kind: Literal["pretrain", "finetune"],
    tasks: Sequence[Task] = (),
    evaluation_sets: Sequence[Any] = (),
) -> Path:
    """Write ``output_dir/README.md`` for a finished run and return its path.

    ``config`` is the run's effective config (:func:`~t5lab.training.run_dir.effective_config`; secrets are
    redacted here), ``metrics`` its final train and eval metrics. A fine-tuning run also gives its ``tasks``
    and ``evaluation_sets`` (with ``name``, ``split``, ``task`` and ``inputs``), whose metrics become the
    card's ``model-index``.
    """
    output_dir = Path(output_dir)
    name = config.get("hub_model_id") or output_dir.resolve().name
    location = config.get("hub_model_id") or str(output_dir)  # where from_pretrained finds the model
    n_params = sum(p.numel() for p in model.parameters())
    base = config.get("model_name_or_path")
    if kind == "pretrain":
        training = _pretraining(config, metrics)
    else:
        training = _finetuning(config, tasks, evaluation_sets, metrics)
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag=TASK_TYPE,
        license=_base_license(base),
        # the hub links base models by id only: a local checkpoint is named in the body instead
        base_model=base if base and not Path(base).exists() else None,
        tags=["t5lab", "t5", TASK_TYPE, *training.tags],
        datasets=training.datasets or None,
        metrics=list(dict.fromkeys(r.metric_type for r in training.results)) or None,
        model_name=name,
        eval_results=training.results or None,
    )
    body = [
        f"# {name}",
        "",
        f"A T5 encoder-decoder model ({n_params / 1e6:.1f}M parameters) {training.summary} with t5lab.",
        "",
        "## Model",
        "",
        *_model_lines(model, config, n_params),
        "",
        *training.lines,
        "",
        "## Results",
        "",
        *_metrics_table(metrics),
        "",
        "## Usage",
        "",
        "```python",
        "from transformers import AutoTokenizer, T5ForConditionalGeneration",
        "",
        f'tokenizer = AutoTokenizer.from_pretrained("{location}")',
        f'model = T5ForConditionalGeneration.from_pretrained("{location}")',
        f'inputs = tokenizer([{training.example!r}], return_tensors="pt")',
        "print(tokenizer.batch_decode(model.generate(**inputs, max_new_tokens=20), skip_special_tokens=True))",
        "```",
        "",
        "## Reproduce",
        "",
        "The command line of this run (secrets redacted):",
        "",
        "```bash",
        shlex.join(redact_argv(sys.argv)),
        "```",
        "",
        f"Its effective configuration is `{CONFIG_FILE}` beside this card; "
        f"`t5lab {kind} --config {CONFIG_FILE} --output_dir NEW_DIR` runs it again.",
        "",
        f"<details><summary>{CONFIG_FILE}</summary>",
        "",
        "```yaml",
        config_yaml(dict(config)).rstrip(),
        "```",
        "",
        "</details>",
        "",
        "## Versions",
        "",
        ", ".join(f"{package} {version}" for package, version in _versions().items()),
        "",
    ]
    path = output_dir / CARD_FILE
    ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(body)).save(path)
    return path


def _pmi_vocab_note(pmi_vocab: str | None) -> str:
    if not pmi_vocab:
        return ""
    if pmi_vocab == pmi.BUILD:
        return f", PMI vocabulary built from the corpus (`{pmi.VOCAB_FILE}`)"
    return f", pmi_vocab `{pmi_vocab}`"


def _pretraining(config: Mapping[str, Any], metrics: Mapping[str, Any]) -> _Training:
    objective = str(config["objective"])
    denoisers = parse_objective(objective, config["noise_density"], config["mean_noise_span_length"])
    sources = parse_sources(config.get("dataset_name"), config.get("dataset_config_name"), config.get("train_file"))
    described = []
    for source in sources:
        if source.kind == "hub":
            described.append(f"`{source.name}`" + (f" ({source.config})" if source.config else ""))
        elif source.kind == "bundled":
            described.append(f"`t5lab:{source.name}` (bundled with t5lab)")
        else:
            described.append(f"`{source.name}`")
    corpus = ", ".join(described)
    hub = [s.name for s in sources if s.kind == "hub"]
    lines = [
        "## Pre-training",
        "",
        f"- **Corpus**: {corpus}"
        + (f", mixed at rates {config['mixture_rates']}" if config.get("mixture_rates") else "")
        + (f"; validation: `{config['validation_file']}`" if config.get("validation_file") else ""),
        f"- **Objective**: `{objective}`: {'; '.join(d.describe() for d in denoisers)}",
        f"- **Settings**: input_length {config['input_length']} (encoder tokens after corruption), "
        f"noise_density {config['noise_density']}, mean_noise_span_length {config['mean_noise_span_length']}"
        + _pmi_vocab_note(config.get("pmi_vocab")),
    ]
    results = [
        EvalResult(
            task_type=TASK_TYPE,
            task_name=f"{objective} pre-training",
            dataset_type=hub[0] if hub else "text",
            dataset_name=corpus.replace("`", ""),
            metric_type=metric_id,
            metric_name=f"{EVAL_PREFIX}_{metric}",
            metric_value=metrics[f"{EVAL_PREFIX}_{metric}"],
        )
        for metric, metric_id in _PRETRAINING_RESULTS.items()
        if f"{EVAL_PREFIX}_{metric}" in metrics
    ]
    # a named objective (ul2) is a tag beside the denoisers it mixes; a mixture spelled out is only those
    names = [objective] if objective.isidentifier() else []
    tags = list(dict.fromkeys([*names, *(d.name for d in denoisers)]))
    return _Training(f"pre-trained on {corpus}", lines, tags, hub, results)


def _finetuning(
    config: Mapping[str, Any], tasks: Sequence[Task], evaluation_sets: Sequence[Any], metrics: Mapping[str, Any]
) -> _Training:
    local = config.get("data_dir") or config.get("train_file")
    lines = ["## Fine-tuning", ""]
    for task in tasks:
        hub = (f"hub `{task.hub.path}`" + (f" ({task.hub.name})" if task.hub.name else "")) if task.hub else None
        data = f"`{local}`" if local else hub or "local files"
        lines.append(f"- **{task.name}**: metrics {', '.join(task.metrics)}; data: {data}")
    lines.append(f"- **Evaluation**: `{config['eval_mode']}` (decoded predictions, parsed and scored by the task)")
    results = [
        EvalResult(
            task_type=TASK_TYPE,
            task_name=evaluation_set.task.name,
            dataset_type=evaluation_set.task.hub.path if evaluation_set.task.hub else evaluation_set.task.name,
            dataset_name=evaluation_set.task.name,
            dataset_config=evaluation_set.task.hub.name if evaluation_set.task.hub else None,
            dataset_split=evaluation_set.split,
            metric_type=metric,
            metric_value=values[metric],
        )
        for evaluation_set, values in metrics_of_splits(evaluation_sets, metrics)
        for metric in evaluation_set.task.metrics
        if metric in values
    ]
    # files given one by one may hold anything; a task's own source (hub or its local copy) is its hub dataset
    datasets = [] if config.get("train_file") else list(dict.fromkeys(t.hub.path for t in tasks if t.hub))
    training = _Training(
        f"fine-tuned on {', '.join(f'`{t.name}`' for t in tasks)}", lines, [t.name for t in tasks], datasets, results
    )
    if evaluation_sets and evaluation_sets[0].inputs:
        training.example = evaluation_sets[0].inputs[0][:_EXAMPLE_CHARS]
    return training


def _model_lines(model: PreTrainedModel, config: Mapping[str, Any], n_params: int) -> list[str]:
    c = model.config
    if config.get("model_name_or_path"):
        start = f"the checkpoint `{config['model_name_or_path']}`"
    else:
        start = f"random weights, config `{config.get('config_name') or DEFAULT_PRESET}`"
    tokenizer = config.get("tokenizer_name") or config.get("model_name_or_path")
    if not tokenizer or tokenizer == "train":
        tokenizer = (
            f"SentencePiece unigram trained on the corpus by t5lab ({config['vocab_size']:,} tokens, "
            f"{config['num_sentinels']} sentinels)"
        )
    else:
        tokenizer = f"`{tokenizer}`"
    return [
        f"- **Parameters**: {n_params:,}",
        f"- **Architecture**: `{type(model).__name__}`, d_model {c.d_model}, d_ff {c.d_ff}, d_kv {c.d_kv}, "
        f"{c.num_heads} heads, {c.num_layers} encoder and {c.num_decoder_layers} decoder layers, "
        f"feed-forward {c.feed_forward_proj}, vocabulary {c.vocab_size:,}",
        f"- **Initialised from**: {start}",
        f"- **Tokenizer**: {tokenizer}",
    ]


def _metrics_table(metrics: Mapping[str, Any]) -> list[str]:
    # evaluation first: it is what the model is judged by; then the training run's own figures
    names = sorted(metrics, key=lambda key: (not key.startswith(f"{EVAL_PREFIX}_"), key))
    rows = [f"| {key} | {format_number(metrics[key])} |" for key in names if isinstance(metrics[key], (int, float))]
    return ["| metric | value |", "|---|---|", *rows] if rows else ["No metrics were recorded."]


def format_number(value: float) -> str:
    """A metric as the card shows it: integers in full, other numbers to 4 significant digits."""
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def _base_license(base: str | None) -> str | None:
    """The license of a local base checkpoint whose own card names one (one pre-trained with t5lab, say)."""
    card = Path(base) / CARD_FILE if base else None
    if card is None or not card.is_file():
        return None
    return ModelCard.load(card, ignore_metadata_errors=True).data.license


def _versions() -> dict[str, str]:
    packages = environment()["packages"]
    return {name: packages[name] for name in ("t5lab", "torch", "transformers") if name in packages}
