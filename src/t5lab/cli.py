"""The ``t5lab`` command: parse arguments, call a recipe, report user errors as one line.

Every command also runs as ``python -m t5lab COMMAND`` and under launchers
(``accelerate launch -m t5lab pretrain ...``, ``torchrun -m t5lab pretrain ...``).
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from t5lab.errors import INTERRUPTED_EXIT_CODE, UserError

USAGE = """usage: t5lab [--debug] [-q] [--version] COMMAND [ARGS]

commands:
{commands}

Run `t5lab COMMAND --help` for the flags of a command. --debug shows full tracebacks; -q shows only warnings
and errors (t5lab's, transformers', datasets'), no progress bars."""


def _recipe(command: str) -> Callable[[Sequence[str]], int]:
    """pretrain, finetune, evaluate, predict: parsed and run by the same code as the Python API."""

    def run(argv: Sequence[str]) -> int:
        from t5lab.api import run_recipe

        run_recipe(command, argv)
        return 0

    return run


def _tasks(argv: Sequence[str]) -> int:
    """``t5lab tasks [PATTERN] [--task_file F] [--json] [--wide]``: the registered tasks."""
    import json

    from t5lab.errors import UserArgumentParser
    from t5lab.tasks.registry import list_tasks

    parser = UserArgumentParser(
        prog="t5lab tasks", description="List the tasks: built-in, user config dir, --task_file."
    )
    parser.add_argument(
        "pattern", nargs="?", help="Only tasks whose name, or the part after '/', starts with this (glue, sst2)."
    )
    parser.add_argument("--task_file", action="append", default=[], help="A task YAML file to add (repeatable).")
    parser.add_argument("--json", action="store_true", help="One JSON list on stdout, for scripts.")
    parser.add_argument("--wide", action="store_true", help="Do not wrap the table to 80 columns.")
    args = parser.parse_args(list(argv))
    rows = []
    for task in list_tasks(args.task_file):
        if args.pattern and not any(part.startswith(args.pattern) for part in (task.name, task.name.split("/")[-1])):
            continue
        source = (f"hub:{task.hub.path}" + (f"/{task.hub.name}" if task.hub.name else "")) if task.hub else ""
        if task.local:
            source += (" + " if source else "") + "local"
        rows.append(
            {
                "task": task.name,
                "kind": task.kind,
                "source": source,
                "metrics": list(task.metrics),
                "optimize": task.metric_to_optimize,
                "splits": list(task.splits.names()),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    from rich.console import Console

    from t5lab.evaluation.outputs import print_table

    # 80 columns: what choosing a task needs; --wide adds where the data comes from and the splits
    columns = (
        ["task", "kind", "source", "metrics", "optimize", "splits"] if args.wide else ["task", "metrics", "optimize"]
    )
    print_table(
        f"{len(rows)} tasks" + ("" if args.wide else " (--wide: sources and splits)"),
        columns,
        ([", ".join(r[c]) if isinstance(r[c], list) else r[c] for c in columns] for r in rows),
        Console(width=250 if args.wide else 80),
    )
    return 0


CONFIG_KINDS = {"accelerate": "yaml", "deepspeed": "json", "slurm": "sbatch"}


def _config(argv: Sequence[str]) -> int:
    """``t5lab config KIND [NAME]``: print a launcher config shipped with t5lab (or list them)."""
    from importlib.resources import files

    from t5lab.errors import ConfigError

    if not argv or argv[0] in ("-h", "--help"):
        print(
            "usage: t5lab config {accelerate,deepspeed,slurm} [NAME]\n\nPrint a launcher config shipped with "
            "t5lab, e.g. `t5lab config accelerate multi_gpu > multi_gpu.yaml`; without NAME, list them."
        )
        return 0 if argv else 2
    kind, name = argv[0], argv[1] if len(argv) > 1 else None
    if kind not in CONFIG_KINDS:
        raise ConfigError(f"unknown config kind '{kind}'; choose one of {', '.join(CONFIG_KINDS)}.")
    folder = files("t5lab") / "launch" / kind
    available = sorted(f.name.rsplit(".", 1)[0] for f in folder.iterdir() if f.name.endswith(CONFIG_KINDS[kind]))
    if name is None:
        print("\n".join(available))
        return 0
    name = name.removesuffix(f".{CONFIG_KINDS[kind]}")
    if name not in available:
        raise ConfigError(f"no {kind} config '{name}'; available: {', '.join(available)}.")
    print((folder / f"{name}.{CONFIG_KINDS[kind]}").read_text(encoding="utf-8"), end="")
    return 0


def _sweep(argv: Sequence[str]) -> int:
    from t5lab.sweeps.command import sweep_command

    return sweep_command(argv)


def _runs(argv: Sequence[str]) -> int:
    """``t5lab runs [DIR] [--metrics a,b]``: a table of the runs under DIR with their key eval metrics."""
    from t5lab.errors import UserArgumentParser
    from t5lab.evaluation.naming import strip_eval_prefix
    from t5lab.evaluation.outputs import print_table, table_console
    from t5lab.training.tracking import find_runs, run_summary

    parser = UserArgumentParser(prog="t5lab runs", description="List the runs under a folder with their eval metrics.")
    parser.add_argument("dir", nargs="?", default="runs", help="Folder holding output dirs (default: runs).")
    parser.add_argument("--metrics", help="Comma-separated eval metrics to show (default: the most common, at most 6).")
    args = parser.parse_args(list(argv))
    root = Path(args.dir)
    if not root.is_dir():
        raise UserError(f"{root} is not a directory; give the folder your --output_dir runs are in.")
    summaries = [run_summary(path) for path in find_runs(root)]
    if not summaries:
        print(f"No runs under {root}.")
        return 0
    if args.metrics:
        columns = [strip_eval_prefix(m.strip()) for m in args.metrics.split(",") if m.strip()]
    else:
        counts: dict[str, int] = {}
        for summary in summaries:
            for name in summary["metrics"]:
                counts[name] = counts.get(name, 0) + 1
        columns = sorted(counts, key=lambda name: (name != "loss", -counts[name]))[:6]
    rows = [
        (
            str(s["run"].relative_to(root)) if s["run"] != root else ".",
            s["task"],
            s["model"],
            s["steps"],
            s["status"],
            *(s["metrics"].get(name, "-") for name in columns),
        )
        for s in summaries
    ]
    print_table(
        f"{len(rows)} runs under {root}", ["run", "task", "model", "steps", "status", *columns], rows, table_console()
    )
    return 0


def _slurm(argv: Sequence[str]) -> int:
    from t5lab.launch.sbatch import slurm_command

    return slurm_command(argv)


def _export(argv: Sequence[str]) -> int:
    from t5lab.launch.export import export_command

    return export_command(argv)


def _inspect(argv: Sequence[str]) -> int:
    from t5lab.evaluation.inspect_checkpoint import inspect_command

    return inspect_command(argv)


def _generate(argv: Sequence[str]) -> int:
    from t5lab.evaluation.generation import generate_command

    return generate_command(argv)


def _tokenizer(argv: Sequence[str]) -> int:
    """``t5lab tokenizer train``: train a SentencePiece tokenizer with T5 sentinels on a corpus, save to
    ``--output_dir``."""
    if not argv or argv[0] != "train":
        if argv and argv[0] in ("-h", "--help"):
            print("usage: t5lab tokenizer train --train_file F --vocab_size N --output_dir D [...]")
            return 0
        raise UserError("usage: t5lab tokenizer train --train_file F --vocab_size N --output_dir D (see --help)")
    from dataclasses import dataclass, field

    from t5lab.config import TEXT_SOURCE_FLAGS, DataArguments, ModelArguments, parse_arguments
    from t5lab.data.pipeline import corpus_texts
    from t5lab.data.tokenizer import save_tokenizer, train_tokenizer
    from t5lab.errors import ConfigError

    @dataclass
    class OutputArguments:
        output_dir: str = field(metadata={"help": "Where to save the tokenizer."})
        seed: int = field(default=42, metadata={"help": "Seed of the corpus mixture."})

    model_args, data_args, out = parse_arguments(
        (ModelArguments, DataArguments, OutputArguments),
        argv[1:],
        "t5lab tokenizer train",
        "Train a SentencePiece unigram tokenizer with T5 sentinels.",
        only=TEXT_SOURCE_FLAGS | {"cache_dir", "vocab_size", "num_sentinels", "tokenizer_train_samples"},
    )
    output = Path(out.output_dir)
    if output.is_dir() and any(output.iterdir()):
        raise ConfigError(f"--output_dir {output} is not empty; choose a new directory.")
    texts = corpus_texts(data_args.corpus(), out.seed, model_args.cache_dir, model_args.tokenizer_train_samples)
    tokenizer = train_tokenizer(
        texts, model_args.vocab_size, model_args.num_sentinels, model_args.tokenizer_train_samples
    )
    output.mkdir(parents=True, exist_ok=True)
    save_tokenizer(tokenizer, output)
    print(f"Saved a tokenizer of {len(tokenizer)} tokens ({model_args.num_sentinels} sentinels) to {output}")
    return 0


PMI_USAGE = """usage: t5lab pmi build --train_file F --tokenizer_name T --output FILE [--size N] [--min_count C]
                       [--max_n N] [--overwrite_output] [...]
       t5lab pmi check --pmi_vocab FILE --tokenizer_name T

build: the PMI n-gram vocabulary of a corpus for PMI-masking (Levine et al. 2021), one n-gram per line.
check: load a vocabulary (t5lab's or the public PMI-masking release's) with a tokenizer; count what loads.
Run `t5lab pmi build --help` for all flags."""


def _pmi(argv: Sequence[str]) -> int:
    """``t5lab pmi build``: write the PMI vocabulary of a corpus; ``t5lab pmi check``: load one with a tokenizer."""
    if not argv or argv[0] not in ("build", "check"):
        if argv and argv[0] in ("-h", "--help"):
            print(PMI_USAGE)
            return 0
        raise UserError(
            "usage: t5lab pmi build --train_file F --tokenizer_name T --output FILE, or t5lab pmi check "
            "--pmi_vocab FILE --tokenizer_name T (see t5lab pmi --help)"
        )
    import time
    from dataclasses import dataclass, field

    from t5lab.config import TEXT_SOURCE_FLAGS, TOKENIZER_LOADING_FLAGS, DataArguments, ModelArguments, parse_arguments
    from t5lab.data import pmi
    from t5lab.data.pipeline import corpus_texts
    from t5lab.data.tokenizer import load_tokenizer
    from t5lab.errors import ConfigError

    # the shared flag's help offers 'train', which only `t5lab pretrain` does
    tokenizer_help = {
        "tokenizer_name": "HF hub id or local dir of the tokenizer of the model to pre-train (required; "
        "`t5lab tokenizer train` makes one)."
    }

    def tokenizer_of(model_args: ModelArguments):
        if not model_args.tokenizer_name or model_args.tokenizer_name == "train":
            raise ConfigError(
                f"t5lab pmi {argv[0]} needs --tokenizer_name: the tokenizer of the model to pre-train (a directory "
                "or hub id; `t5lab tokenizer train` makes one)."
            )
        return load_tokenizer(
            model_args.tokenizer_name, model_args.cache_dir, model_args.model_revision, model_args.trust_remote_code
        )

    if argv[0] == "check":

        @dataclass
        class CheckArguments:
            pmi_vocab: str = field(metadata={"help": "The vocabulary file: one n-gram per line."})

        model_args, check = parse_arguments(
            (ModelArguments, CheckArguments),
            argv[1:],
            "t5lab pmi check",
            "Load a PMI vocabulary with a tokenizer.",
            only=TOKENIZER_LOADING_FLAGS,
            help_texts=tokenizer_help,
        )
        tokenizer = tokenizer_of(model_args)
        ngrams = pmi.load_pmi_vocab(check.pmi_vocab, tokenizer)
        starts = pmi.word_start_table(tokenizer)
        lengths = [int(starts[ids].sum()) for ids in ngrams]
        per_length = ", ".join(f"{n}: {lengths.count(n):,}" for n in range(2, pmi.MAX_N + 1))
        print(f"{check.pmi_vocab}: {len(ngrams):,} n-grams load with this tokenizer (by length: {per_length})")
        return 0

    @dataclass
    class PmiArguments:
        output: str = field(metadata={"help": "The vocabulary file to write (one n-gram per line, best first)."})
        size: int = field(
            default=pmi.DEFAULT_SIZE, metadata={"help": "How many n-grams to keep: those of highest PMI."}
        )
        min_count: int = field(
            default=pmi.DEFAULT_MIN_COUNT, metadata={"help": "Score only n-grams seen at least this many times."}
        )
        max_n: int = field(default=pmi.MAX_N, metadata={"help": f"Longest n-gram, in words (2 to {pmi.MAX_N})."})
        max_train_samples: int | None = field(
            default=None, metadata={"help": "Read at most this many text rows (default: all of them)."}
        )
        overwrite_output: bool = field(default=False, metadata={"help": "Replace an existing --output file."})
        seed: int = field(default=42, metadata={"help": "Seed of the corpus mixture."})

        def __post_init__(self) -> None:
            pmi.check_build_arguments(self.min_count, self.max_n, self.size)
            if self.max_train_samples is not None and self.max_train_samples < 1:
                raise ConfigError(f"--max_train_samples must be at least 1, got {self.max_train_samples}.")

    model_args, data_args, args = parse_arguments(
        (ModelArguments, DataArguments, PmiArguments),
        argv[1:],
        "t5lab pmi build",
        "Build the PMI n-gram vocabulary of a corpus for PMI-masking (Levine et al., ICLR 2021).",
        only=TEXT_SOURCE_FLAGS | TOKENIZER_LOADING_FLAGS,
        help_texts=tokenizer_help,
    )
    output = Path(args.output)
    if output.is_dir():
        raise ConfigError(f"--output {output} is a directory; give the path of the file to write.")
    if output.exists() and not args.overwrite_output:
        raise ConfigError(f"--output {output} exists; choose a new path, or pass --overwrite_output to replace it.")
    start = time.perf_counter()
    tokenizer = tokenizer_of(model_args)
    texts = corpus_texts(data_args.corpus(), args.seed, model_args.cache_dir, args.max_train_samples)
    counts = pmi.NgramCounts(texts, tokenizer, args.max_n, args.min_count)
    ngrams = pmi.top_ngrams(counts, args.size, remedy="lower --min_count or give more text.")
    pmi.write_pmi_vocab(ngrams, output)
    print(f"Wrote the PMI vocabulary to {output}")
    print(pmi.build_summary(counts, ngrams, time.perf_counter() - start))
    return 0


COMMANDS: dict[str, tuple[Callable[[Sequence[str]], int], str]] = {
    "pretrain": (_recipe("pretrain"), "pre-train a T5 model: span corruption, PMI-masking, prefix LM, UL2, ..."),
    "finetune": (_recipe("finetune"), "fine-tune on tasks (GLUE, SuperGLUE, ... or your YAML) with real metrics"),
    "evaluate": (
        _recipe("evaluate"),
        "evaluate a model on tasks' validation splits (generation or rank classification)",
    ),
    "predict": (_recipe("predict"), "predict test splits; writes predictions and GLUE submission TSVs"),
    "tasks": (_tasks, "list the registered tasks with their source, metrics and splits"),
    "sweep": (_sweep, "hyperparameter sweep from a W&B sweep YAML, on Optuna (local) or W&B; sweep report"),
    "runs": (_runs, "table of the runs under a folder with their eval metrics"),
    "slurm": (_slurm, "write an sbatch script: pretrain, finetune or sweep on N nodes x G GPUs"),
    "export": (_export, "write a checkpoint (DeepSpeed ZeRO or plain) as a plain Hugging Face model"),
    "inspect": (_inspect, "does a checkpoint use its encoder? pre-training diagnostics against a random twin"),
    "generate": (_generate, "generate with a model: fill <extra_id_N> spans, or answer a task's inputs"),
    "config": (_config, "print a shipped launcher config: accelerate, deepspeed or slurm (t5lab config accelerate)"),
    "tokenizer": (_tokenizer, "train a SentencePiece tokenizer with T5 sentinels (t5lab tokenizer train ...)"),
    "pmi": (_pmi, "PMI n-gram vocabulary for PMI-masking (t5lab pmi build ...; t5lab pmi check ...)"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``t5lab`` command; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    # A bare --debug is ours; "--debug VALUE" is the Trainer's own debug option and passes through.
    bare = [
        i
        for i, a in enumerate(args)
        if a == "--debug" and (i + 1 == len(args) or args[i + 1].startswith("-") or i == 0)
    ]
    debug = bool(bare)
    args = [a for i, a in enumerate(args) if i not in bare]
    quiet = bool(args) and args[0] in ("-q", "--quiet")  # before the command, as --debug
    args = args[1:] if quiet else args
    from t5lab.log import configure

    configure(quiet)
    # The deepspeed launcher puts --local_rank=N before the script's own arguments; LOCAL_RANK carries it too.
    while args and args[0].startswith("--local_rank="):
        args.pop(0)
    usage = USAGE.format(commands="\n".join(f"  {name:<11}{text}" for name, (_, text) in COMMANDS.items()))
    if not args or args[0] in ("-h", "--help"):
        print(usage)
        return 0 if args else 2
    if args[0] in ("--version", "-V"):
        from importlib.metadata import version

        print(f"t5lab {version('t5lab')}")
        return 0
    command = args[0]
    if command not in COMMANDS:
        print(f"t5lab: error: unknown command '{command}'; choose one of {', '.join(COMMANDS)}.", file=sys.stderr)
        return 2
    handler = COMMANDS[command][0]
    if "-h" in args[1:] or "--help" in args[1:]:
        from t5lab.help import cached_help

        text = cached_help(f"t5lab {command}")  # the recipes' help needs torch to build: printed from cache
        if text is not None:
            print(text, end="")
            return 0
    finished = False
    try:
        code = handler(args[1:])
        finished = code == 0
    except UserError as exc:
        if debug:
            raise
        print(f"t5lab {command}: error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print(f"t5lab {command}: interrupted", file=sys.stderr)
        code = INTERRUPTED_EXIT_CODE
    finally:
        _close_process_group(wait_for_others=finished)
    return code


def run() -> NoReturn:
    """The ``t5lab`` executable (console script and ``python -m t5lab``): ``main()``, then exit with its code.

    A process that imported DeepSpeed exits without the interpreter's teardown, after the exit handlers have run
    (trackers finish, logs flush). DeepSpeed's engine, hooks and parameters keep its gloo process groups alive
    after ``destroy_process_group()`` (measured: their worker threads are still running when ``main()`` returns),
    so the groups would be torn down during interpreter finalization, where a worker thread that touches a Python
    object kills the process ("terminate called without an active exception", SIGABRT) and fails a launch whose
    every rank had finished. ``os._exit`` ends the process before that teardown.
    """
    code = main()
    if "deepspeed" in sys.modules:
        atexit._run_exitfuncs()  # what sys.exit would run first; the only public trigger is sys.exit itself
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)


def _close_process_group(wait_for_others: bool) -> None:
    """Close the process group a launched run opened: left open, gloo's threads can abort the process at exit.

    After a successful run the processes first wait for each other: one that tore its group down while
    rank 0 was still saving the model could die in gloo's threads (SIGABRT) and fail the launch.
    """
    distributed = sys.modules.get("torch.distributed")  # never import torch for commands that did not
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        if wait_for_others:
            distributed.barrier()
        distributed.destroy_process_group()
