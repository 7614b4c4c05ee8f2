"""Command-line and YAML configuration.

Flags are dataclasses parsed by :class:`transformers.HfArgumentParser`, with the names of the Hugging Face
example scripts. A YAML file given with ``--config`` supplies values first; flags on the command line
override them. Every problem becomes a :class:`~t5lab.errors.ConfigError` naming the flag or key.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from transformers import HfArgumentParser

from t5lab.data import pmi
from t5lab.data.pipeline import Corpus
from t5lab.errors import ConfigError, UserArgumentParser, yaml_error
from t5lab.help import ReadableHelpFormatter, organise, store_help

if TYPE_CHECKING:
    from t5lab.data.objectives import Denoiser


ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager", "flex_attention")


@dataclass
class ModelArguments:
    _argument_group_name = "Model and tokenizer"
    """Which model and tokenizer to start from."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "HF hub id or local dir of a T5 checkpoint to start from (continued pre-training)."},
    )
    config_name: str | None = field(
        default=None,
        metadata={
            "help": "A t5lab preset (t5-tiny, t5-mini, t5-small, t5-base, t5-large) or an HF config id/dir, "
            "for a randomly initialised model. Default: t5-tiny when --model_name_or_path is not given."
        },
    )
    tokenizer_name: str | None = field(
        default=None,
        metadata={
            "help": "HF hub id or local dir of a T5 tokenizer, or 'train' to train a SentencePiece unigram "
            "tokenizer on the training corpus. Default: the model's tokenizer, or 'train' for a preset."
        },
    )
    vocab_size: int = field(
        default=16000,
        metadata={"help": "Vocabulary size (sentinels included) of a tokenizer trained with --tokenizer_name train."},
    )
    num_sentinels: int = field(
        default=100, metadata={"help": "Number of <extra_id_N> sentinel tokens of a trained tokenizer."}
    )
    tokenizer_train_samples: int = field(
        default=200_000,
        metadata={"help": "At most this many text rows train a tokenizer (and build --pmi_vocab build's vocabulary)."},
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where hub downloads are cached."})
    model_revision: str = field(default="main", metadata={"help": "Hub revision (branch, tag or commit)."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow code from the hub to run (off unless you trust the source)."}
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={
            "help": "Attention kernel: sdpa (PyTorch's scaled_dot_product_attention; transformers' default for T5 "
            "and the fastest on CPU, see docs/benchmarks.md), eager, or flex_attention (GPU only for training: "
            "it has no backward pass on CPU).",
            "metavar": "{" + ",".join(ATTENTION_IMPLEMENTATIONS) + "}",
        },
    )

    def model_source(self) -> dict[str, Any]:
        """The keyword arguments of :func:`t5lab.models.presets.build_model` these flags give."""
        names = ("model_name_or_path", "config_name", "cache_dir", "trust_remote_code", "attn_implementation")
        return {"revision": self.model_revision, **{name: getattr(self, name) for name in names}}

    def __post_init__(self) -> None:
        if self.attn_implementation not in (None, *ATTENTION_IMPLEMENTATIONS):
            raise ConfigError(
                f"--attn_implementation must be one of {', '.join(ATTENTION_IMPLEMENTATIONS)}, "
                f"got '{self.attn_implementation}'."
            )


@dataclass
class DataArguments:
    """Where the pre-training text comes from and how it is corrupted."""

    _argument_group_name = "Data and objective"

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "HF hub dataset(s), comma-separated for a mixture (e.g. 'allenai/c4'), or a corpus bundled "
            "with t5lab (t5lab:python-docs)."
        },
    )
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "Config name(s) of --dataset_name, comma-separated in the same order."}
    )
    train_file: str | None = field(
        default=None,
        metadata={
            "help": "Local text file(s): txt, jsonl/json, csv, parquet. Globs allowed; comma-separated entries are "
            "separate sources of a mixture."
        },
    )
    validation_file: str | None = field(
        default=None, metadata={"help": "A separate validation file (else a split of the training data)."}
    )
    text_column_name: str = field(default="text", metadata={"help": "The column holding the text."})
    mixture_rates: str | None = field(
        default=None,
        metadata={
            "help": "Sampling rates of the sources, comma-separated (dataset_name entries first, then train_file "
            "entries). Default: in proportion to size (local) or equal (streaming)."
        },
    )
    streaming: bool = field(default=False, metadata={"help": "Stream hub datasets instead of downloading them."})
    validation_split_percentage: float = field(
        default=5.0, metadata={"help": "Percent of the training data held out when there is no validation split."}
    )
    max_eval_samples: int | None = field(
        default=1000, metadata={"help": "At most this many packed validation chunks are evaluated."}
    )
    input_length: int = field(default=512, metadata={"help": "Encoder input length after span corruption."})
    noise_density: float = field(
        default=0.15,
        metadata={"help": "Fraction of tokens corrupted.", "aliases": ["--mlm_probability"]},
    )
    mean_noise_span_length: float = field(default=3.0, metadata={"help": "Mean length of a corrupted span."})
    objective: str = field(
        default="span_corruption",
        metadata={
            "help": "Pre-training objective: span_corruption, iid_masking, prefix_lm, pmi_masking, ul2 (UL2's mixture "
            "of denoisers), or a mixture 'span_corruption:0.5,prefix_lm:0.5' (a mapping or list in YAML; "
            "see docs/objectives.md).",
            "metavar": "{span_corruption,iid_masking,prefix_lm,pmi_masking,ul2}|MIXTURE",
        },
    )
    pmi_vocab: str | None = field(
        default=None,
        metadata={
            "help": "PMI n-gram vocabulary for pmi_masking: a file, one n-gram per line (`t5lab pmi build` writes "
            f"one), or '{pmi.BUILD}' to build it from the corpus rows the tokenizer would be trained on "
            f"(--tokenizer_train_samples; n-grams seen {pmi.DEFAULT_MIN_COUNT}+ times, the best "
            f"{pmi.DEFAULT_SIZE:,}), kept as {pmi.VOCAB_FILE} in the output dir."
        },
    )
    preprocessing_num_workers: int | None = field(
        default=None, metadata={"help": "Processes used to tokenize (default: one per core, at most 8)."}
    )
    data_cache_dir: str | None = field(
        default=None,
        metadata={"help": "Where tokenized and packed corpora are cached (default: $T5LAB_CACHE or ~/.cache/t5lab)."},
    )
    overwrite_cache: bool = field(default=False, metadata={"help": "Re-tokenize even when a cache entry exists."})

    def __post_init__(self) -> None:
        if not 0.0 < self.noise_density < 1.0:
            raise ConfigError(f"--noise_density must be strictly between 0 and 1, got {self.noise_density}.")
        if self.mean_noise_span_length < 1.0:
            raise ConfigError(f"--mean_noise_span_length must be at least 1, got {self.mean_noise_span_length}.")
        if self.input_length < 8:
            raise ConfigError(f"--input_length must be at least 8, got {self.input_length}.")
        if not 0.0 <= self.validation_split_percentage < 100.0:
            raise ConfigError("--validation_split_percentage must be in [0, 100).")
        denoisers = self.denoisers()  # a bad objective is a one-line error before anything runs
        uses_pmi = any(d.kind == "pmi" for d in denoisers)
        if self.pmi_vocab and not uses_pmi:
            raise ConfigError(
                f"--pmi_vocab is read by pmi_masking only, and the objective is '{self.objective}'; leave it out, "
                "or pass --pmi_vocab '' to unset a config file's."
            )
        if uses_pmi:
            if not self.pmi_vocab:
                raise ConfigError(pmi.MISSING_VOCAB)
            if self.pmi_vocab != pmi.BUILD and not Path(self.pmi_vocab).is_file():
                raise ConfigError(f"--pmi_vocab {self.pmi_vocab} does not exist.")

    def denoisers(self) -> tuple[Denoiser, ...]:
        """The objective's denoisers (``--objective`` with ``--noise_density`` and ``--mean_noise_span_length``)."""
        from t5lab.data.objectives import parse_objective  # numba: loaded only when an objective is parsed

        return parse_objective(self.objective, self.noise_density, self.mean_noise_span_length)

    def corpus(self) -> Corpus:
        """The text sources of these arguments, as the data layer takes them."""
        return Corpus(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Corpus)})


EVAL_MODES = ("generate", "rank")
MIXING = ("proportional", "temperature")


@dataclass
class TaskArguments:
    """Which task(s), where their data is, and how examples are built and evaluated."""

    _argument_group_name = "Task and evaluation"
    given_flags = frozenset()  # not a field: set by parse_arguments to the flags the user gave

    task: str = field(metadata={"help": "Task name(s), e.g. glue/sst2; comma-separated for a multi-task mixture."})
    task_file: str | None = field(
        default=None, metadata={"help": "YAML file(s) of extra task definitions, comma-separated."}
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": "Local data: GLUE's root folder (SST-2/, RTE/, ...) or one task's folder. Default: the hub."},
    )
    train_file: str | None = field(
        default=None, metadata={"help": "Training file for a single task (csv/tsv/jsonl/json/parquet)."}
    )
    validation_file: str | None = field(default=None, metadata={"help": "Validation file for a single task."})
    test_file: str | None = field(default=None, metadata={"help": "Test file for a single task."})
    source_prefix: str = field(
        default="",
        metadata={
            "help": "Text put before every input, as run_summarization's flag: e.g. '[NLU] ', the mode token of a "
            "model pre-trained with --objective ul2."
        },
    )
    max_source_length: int = field(default=512, metadata={"help": "Inputs are truncated to this many tokens."})
    max_target_length: int = field(default=128, metadata={"help": "Targets are truncated to this many tokens."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use at most this many training examples per task."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Evaluate on at most this many examples per split."}
    )
    eval_mode: str = field(
        default="generate",
        metadata={
            "help": "generate (decode text, then parse) or rank (score each label word; classification only).",
            "metavar": "{" + ",".join(EVAL_MODES) + "}",
        },
    )
    num_beams: int = field(default=1, metadata={"help": "Beams for generation (1 = greedy)."})
    length_penalty: float = field(default=1.0, metadata={"help": "Beam-search length penalty."})
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "Stop after N evaluations without improvement."}
    )
    early_stopping_threshold: float = field(default=0.0, metadata={"help": "Minimum improvement that counts."})
    mixing: str = field(
        default="proportional",
        metadata={
            "help": "Multi-task mixing: proportional (to size, capped) or temperature.",
            "metavar": "{" + ",".join(MIXING) + "}",
        },
    )
    mixing_cap: int = field(
        default=2**19, metadata={"help": "Examples-proportional mixing caps each task at this many examples."}
    )
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


# Flags of ModelArguments that only pre-training reads (it trains the tokenizer): refused by the task commands.
PRETRAINING_ONLY = frozenset({"vocab_size", "num_sentinels", "tokenizer_train_samples"})
# What reading a corpus as plain text rows takes (data.pipeline.corpus_texts): the commands that only read text
# (`t5lab tokenizer train`, `t5lab pmi build`) accept these of DataArguments and refuse the rest.
TEXT_SOURCE_FLAGS = frozenset(
    {"dataset_name", "dataset_config_name", "train_file", "text_column_name", "mixture_rates", "streaming"}
)
TOKENIZER_LOADING_FLAGS = frozenset({"tokenizer_name", "cache_dir", "model_revision", "trust_remote_code"})


class ArgumentParser(HfArgumentParser, UserArgumentParser):
    """HfArgumentParser whose errors are one-line errors instead of usage dumps (see :class:`UserArgumentParser`)."""


def _dataclass_fields(types: Sequence[type]) -> dict[str, dataclasses.Field]:
    return {f.name: f for t in types for f in dataclasses.fields(t) if f.init}


def _flag_aliases(types: Sequence[type]) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for f in _dataclass_fields(types).values():
        for alias in f.metadata.get("aliases", []):
            aliases[alias.lstrip("-")] = f.name
    return aliases


def load_yaml_config(path: str | Path, types: Sequence[type]) -> dict[str, Any]:
    """Read a YAML config and check that every key is a known flag."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise yaml_error("config file", path, exc) from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must be a mapping of flag names to values.")
    known = set(_dataclass_fields(types)) | set(_flag_aliases(types))
    for key in data:
        if key not in known:
            hint = difflib.get_close_matches(str(key), known, n=1)
            suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
            raise ConfigError(f"unknown key '{key}' in {path}.{suggestion}")
    return data


def values_to_argv(values: Mapping[str, Any], types: Sequence[type]) -> list[str]:
    """Flags for a mapping of flag names to values (a ``--config`` file, the Python API's keyword arguments).

    None and ``[]`` leave the flag out (its default stands); a list is the flag's values when the flag takes a
    list (``report_to``: comma-separated), else JSON, as is a mapping (``objective``: a mixture).
    """
    fields = _dataclass_fields(types)
    argv: list[str] = []
    for key, value in values.items():
        if value is None or value == []:
            continue
        takes_list = key in fields and "list" in str(fields[key].type).lower()
        if isinstance(value, dict) or (isinstance(value, list) and not takes_list and key != "report_to"):
            argv += [f"--{key}", json.dumps(value)]
        elif isinstance(value, (list, tuple)):
            argv += (
                [f"--{key}", ",".join(str(v) for v in value)] if key == "report_to" else [f"--{key}", *map(str, value)]
            )
        else:
            argv += [f"--{key}", str(value)]
    return argv


def _extract_option(argv: list[str], name: str) -> tuple[str | None, list[str]]:
    """Remove ``--name VALUE`` or ``--name=VALUE`` from argv; return the value and the rest."""
    rest, value, i = [], None, 0
    while i < len(argv):
        arg = argv[i]
        if arg == f"--{name}":
            if i + 1 >= len(argv):
                raise ConfigError(f"--{name} needs a value.")
            value, i = argv[i + 1], i + 2
            continue
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return value, rest


def _name_the_flag(message: str, argv: Sequence[str]) -> str:
    """Prefix the Trainer's "X is not a valid SomeStrategy" with the flag that was given X (the last one wins)."""
    invalid = re.match(r"'?(.+?)'? is not a valid \w+", message)
    if invalid:
        for flag, value in reversed(list(zip(argv, argv[1:]))):
            if flag.startswith("--") and value == invalid.group(1):
                return f"{flag.split('=')[0]}: {message}"
    return message


def parse_arguments(
    types: Sequence[type],
    argv: Sequence[str],
    prog: str,
    description: str,
    only: Collection[str] | None = None,
    help_texts: Mapping[str, str] | None = None,
) -> tuple[Any, ...]:
    """Parse ``--config FILE`` plus flags (which override the file) into instances of ``types``.

    ``only``: the flags of the shared argument types (all but the last, the command's own) that the command
    reads; the others are hidden from its help and refused when given, never accepted and ignored.
    ``help_texts``: the command's own help of shared flags whose meaning it narrows (flag name -> text).
    """
    unused = frozenset(_dataclass_fields(types[:-1])) - set(only) if only is not None else frozenset()
    if DataArguments not in types:  # the task commands use the model's tokenizer
        unused |= PRETRAINING_ONLY
    config_path, argv = _extract_option(list(argv), "config")
    yaml_config = load_yaml_config(config_path, types) if config_path else {}
    parser = ArgumentParser(list(types), prog=prog, description=description, formatter_class=ReadableHelpFormatter)
    parser.add_argument("--config", help="YAML file of flag values; command-line flags override it.")
    for dtype in types:
        if hasattr(dtype, "t5lab_fields"):
            organise(parser, {f.name for f in dataclasses.fields(dtype)}, dtype.t5lab_fields)
    for action in parser._actions:
        if action.dest in unused:
            action.help = argparse.SUPPRESS
        elif help_texts and action.dest in help_texts:
            action.help = help_texts[action.dest]
    if any(a in ("-h", "--help") for a in argv):
        text = parser.format_help()
        store_help(prog, text)
        print(text, end="")
        raise SystemExit(0)
    full_argv = values_to_argv(yaml_config, types) + list(argv)
    try:
        *instances, remaining = parser.parse_args_into_dataclasses(args=full_argv, return_remaining_strings=True)
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(_name_the_flag(str(exc).splitlines()[0], full_argv)) from None
    instances = [i for i in instances if dataclasses.is_dataclass(i)]
    if remaining:
        known = [f"--{name}" for name in _dataclass_fields(types)]
        hint = difflib.get_close_matches(remaining[0].split("=")[0], known, n=1)
        suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
        raise ConfigError(f"unknown argument '{remaining[0]}'.{suggestion} (see --help)")
    given = given_flags(full_argv, types)
    if given & unused:
        flag = sorted(given & unused)[0]
        if flag in PRETRAINING_ONLY and only is None:  # a task command, which uses the model's tokenizer
            raise ConfigError(
                f"--{flag} applies to `t5lab pretrain` (a tokenizer trained there); {prog} uses the model's."
            )
        raise ConfigError(f"--{flag} has no effect in `{prog}`; leave it out (see --help).")
    for instance in instances:
        instance.given_flags = given  # what the user set (file or command line), as opposed to defaults
    return tuple(instances)


def given_flags(argv: Sequence[str], types: Sequence[type]) -> frozenset[str]:
    """Field names set explicitly in ``argv`` (``--name``, ``--name=value``, ``--name-with-dashes`` or an alias)."""
    aliases = _flag_aliases(types)
    names = set()
    for arg in argv:
        if arg.startswith("--"):
            name = arg[2:].split("=", 1)[0].replace("-", "_")
            names.add(aliases.get(name, name))
    return frozenset(names & set(_dataclass_fields(types)))
