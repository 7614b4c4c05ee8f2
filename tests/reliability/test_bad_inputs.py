"""Every row of docs/errors.md through the real CLI: one line naming the problem and the fix, a non-zero exit,
no traceback, and no file that existed before changed."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from t5lab.cli import main
from t5lab.errors import ConfigError
from t5lab.training.run_dir import prepare_output_dir

DOCS = Path(__file__).resolve().parents[2] / "docs" / "errors.md"

PRETRAIN = [
    "pretrain",
    "--train_file",
    "{txt}",
    "--tokenizer_name",
    "{tok}",
    "--config_name",
    "t5-tiny",
    "--input_length",
    "64",
    "--max_steps",
    "1",
    "--report_to",
    "none",
    "--output_dir",
    "{out}",
]
FINETUNE = [
    "finetune",
    "--data_dir",
    "{glue}",
    "--tokenizer_name",
    "{tok}",
    "--config_name",
    "t5-tiny",
    "--max_steps",
    "1",
    "--report_to",
    "none",
    "--output_dir",
    "{out}",
]
EVALUATE = [
    "evaluate",
    "--data_dir",
    "{glue}",
    "--model_name_or_path",
    "{run}",
    "--report_to",
    "none",
    "--output_dir",
    "{out}",
]

# id -> (argv, the message's expected text; {tmp} etc. are filled in, regex special characters are literal)
CASES: dict[str, tuple[list[str], str]] = {
    "malformed-yaml": (
        PRETRAIN + ["--config", "{tmp}/bad.yaml"],
        "config file {tmp}/bad.yaml is not valid YAML at line 2, column 1: expected ',' or ']'",
    ),
    "yaml-not-a-mapping": (
        PRETRAIN + ["--config", "{tmp}/list.yaml"],
        "config file {tmp}/list.yaml must be a mapping of flag names to values.",
    ),
    "unknown-yaml-key": (
        PRETRAIN + ["--config", "{tmp}/typo.yaml"],
        "unknown key 'input_lenght' in {tmp}/typo.yaml. Did you mean 'input_length'?",
    ),
    "unknown-flag": (
        PRETRAIN + ["--input_lenght", "64"],
        "unknown argument '--input_lenght'. Did you mean '--input_length'? (see --help)",
    ),
    "wrong-type-yaml": (
        PRETRAIN + ["--config", "{tmp}/type.yaml"],
        "argument --learning_rate/--learning-rate: invalid float value: 'fast' (see --help)",
    ),
    "wrong-type-flag": (
        PRETRAIN + ["--max_steps", "ten"],
        "argument --max_steps/--max-steps: invalid int value: 'ten' (see --help)",
    ),
    "unknown-preset": (
        PRETRAIN + ["--config_name", "t5-huge"],
        "unknown preset or config 't5-huge'; presets: t5-tiny, t5-mini, t5-small, t5-base, t5-large.",
    ),
    "missing-data-file": (
        PRETRAIN + ["--train_file", "{tmp}/missing.txt"],
        "data file {tmp}/missing.txt does not exist.",
    ),
    "empty-data-file": (PRETRAIN + ["--train_file", "{tmp}/empty.txt"], "data file {tmp}/empty.txt is empty."),
    "unreadable-data-file": (
        PRETRAIN + ["--train_file", "{tmp}/folder.txt"],
        "data file {tmp}/folder.txt is a directory; give a file, or a glob such as '{tmp}/folder.txt/*.txt'.",
    ),
    "non-utf8-data": (
        PRETRAIN + ["--train_file", "{tmp}/latin1.txt"],
        "{tmp}/latin1.txt is not UTF-8 text (invalid continuation byte at byte 3).",
    ),
    "absent-text-column": (
        PRETRAIN + ["--train_file", "{tmp}/body.jsonl"],
        "source '{tmp}/body.jsonl' has no column 'text'; its columns are ['body']. Set --text_column_name.",
    ),
    "documents-shorter-than-a-chunk": (
        PRETRAIN + ["--train_file", "{tmp}/short.txt"],
        "the corpus yields fewer than two chunks, too few to hold out validation data; "
        "add text or lower --input_length.",
    ),
    "mixture-rates-count": (
        PRETRAIN + ["--train_file", "{txt},{txt}", "--mixture_rates", "0.5"],
        "--mixture_rates has 1 entries for 2 sources.",
    ),
    "input-length-too-small": (PRETRAIN + ["--input_length", "2"], "--input_length must be at least 8, got 2."),
    "noise-density-above-1": (
        PRETRAIN + ["--noise_density", "1.2"],
        "--noise_density must be strictly between 0 and 1, got 1.2.",
    ),
    "noise-density-zero": (
        PRETRAIN + ["--mlm_probability", "0"],
        "--noise_density must be strictly between 0 and 1, got 0.0.",
    ),
    "more-spans-than-sentinels": (
        PRETRAIN + ["--input_length", "4096"],
        "span_corruption (density 0.15, mean span 3) at input_length 4096 needs up to 227 sentinels but the "
        "tokenizer has 100",
    ),
    "unknown-objective": (
        PRETRAIN + ["--objective", "bert"],
        "unknown objective 'bert'; choose from span_corruption, iid_masking, prefix_lm, pmi_masking, ul2",
    ),
    "bad-objective-weight": (
        PRETRAIN + ["--objective", "span_corruption:0.5,prefix_lm:-1"],
        "objective weight of prefix_lm must be a positive number, got -1.0.",
    ),
    "pmi-vocabulary-without-pmi-masking": (
        PRETRAIN + ["--pmi_vocab", "build"],
        "--pmi_vocab is read by pmi_masking only, and the objective is 'span_corruption'; leave it out, "
        "or pass --pmi_vocab '' to unset a config file's.",
    ),
    "pmi-masking-without-vocabulary": (
        PRETRAIN + ["--objective", "pmi_masking"],
        "pmi_masking needs --pmi_vocab FILE (`t5lab pmi build` writes one) or --pmi_vocab build.",
    ),
    "tokenizer-without-sentinels": (
        PRETRAIN + ["--tokenizer_name", "{tmp}/no-sentinels"],
        "the tokenizer has no <extra_id_N> sentinel tokens, which span corruption needs; "
        "use a T5 tokenizer or --tokenizer_name train.",
    ),
    "missing-tokenizer-dir": (
        PRETRAIN + ["--tokenizer_name", "{tmp}/no-such-tokenizer"],
        "{tmp}/no-such-tokenizer is not a directory holding a model or tokenizer (hub ids look like org/name)",
    ),
    "output-dir-holds-another-run": (
        PRETRAIN + ["--output_dir", "{tmp}/existing-run", "--config_name", "t5-mini"],
        "--output_dir {tmp}/existing-run holds a different run "
        "(settings differ: config_name, input_length, validation_split_percentage); "
        "choose another directory or pass --overwrite_output_dir.",
    ),
    "output-dir-not-a-run": (
        PRETRAIN + ["--output_dir", "{tmp}/notes"],
        "--output_dir {tmp}/notes is not empty and holds no t5lab run; "
        "choose another directory or pass --overwrite_output_dir.",
    ),
    "resume-other-model-size": (
        PRETRAIN + ["--config_name", "t5-mini", "--resume_from_checkpoint", "{tmp}/existing-run/checkpoint-2"],
        "checkpoint {tmp}/existing-run/checkpoint-2 is of another model "
        "(d_model 128 vs 256; d_ff 384 vs 1024; d_kv 32 vs 64 here)",
    ),
    "resume-incomplete-checkpoint": (
        PRETRAIN + ["--resume_from_checkpoint", "{tmp}/half-written"],
        "--resume_from_checkpoint {tmp}/half-written is incomplete (optimizer.pt has 1000 bytes, ",
    ),
    "resume-missing-checkpoint": (
        PRETRAIN + ["--resume_from_checkpoint", "{tmp}/nowhere"],
        "--resume_from_checkpoint {tmp}/nowhere is not a directory.",
    ),
    "on-nonfinite-unknown": (
        PRETRAIN + ["--on_nonfinite", "ignore"],
        "--on_nonfinite must be stop or skip, got 'ignore'.",
    ),
    "eval-strategy-unknown": (
        PRETRAIN + ["--eval_strategy", "sometimes"],
        "--eval_strategy: sometimes is not a valid IntervalStrategy, please select one of ['no', 'steps', 'epoch']",
    ),
    "hub-dataset-offline": (
        PRETRAIN + ["--train_file", "", "--dataset_name", "allenai/c4"],
        "hub dataset 'allenai/c4' requested but the hub is offline (HF_HUB_OFFLINE is set); use --train_file",
    ),
    "push-to-hub-offline": (
        PRETRAIN + ["--push_to_hub", "--hub_model_id", "org/tiny", "--hub_token", "hf_fake"],
        "--push_to_hub needs the Hugging Face hub, which is off here (HF_HUB_OFFLINE is set); unset it, or train "
        "without --push_to_hub and upload the output dir afterwards (hf upload ORG/NAME OUTPUT_DIR).",
    ),
    "unknown-task": (
        FINETUNE + ["--task", "glue/sst3"],
        "unknown task 'glue/sst3' (close matches: glue/sst2, glue/stsb",
    ),
    "unknown-metric": (
        FINETUNE + ["--task", "glue/sst2", "--metric_for_best_model", "bleu"],
        "--metric_for_best_model 'bleu' is not a metric of this run; choose one of accuracy, invalid_rate, loss.",
    ),
    "label-outside-verbalizer": (
        FINETUNE + ["--task", "glue/sst2", "--train_file", "{tmp}/sst2.tsv", "--validation_file", "{tmp}/sst2.tsv"],
        "{tmp}/sst2.tsv (split train of task glue/sst2), column 'label': label value '7' is not one of task "
        "glue/sst2's labels (0=negative, 1=positive).",
    ),
    "finetune-absent-column": (
        FINETUNE + ["--task", "glue/sst2", "--train_file", "{tmp}/sst2.jsonl", "--validation_file", "{tmp}/sst2.jsonl"],
        "{tmp}/sst2.jsonl (split train of task glue/sst2) has no column 'sentence' (columns: body, label).",
    ),
    "nul-byte-in-csv-header": (
        FINETUNE + ["--task", "glue/sst2", "--train_file", "{tmp}/nul.csv", "--validation_file", "{tmp}/nul.csv"],
        "{tmp}/nul.csv, line 1: a NUL byte; is this a text file?",
    ),
    "unknown-eval-mode": (
        FINETUNE + ["--task", "glue/sst2", "--eval_mode", "beam"],
        "--eval_mode must be one of generate, rank, got 'beam'.",
    ),
    "task-data-offline": (
        FINETUNE[:1] + FINETUNE[3:] + ["--task", "glue/sst2"],
        "the Hugging Face hub is offline (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE) "
        "and hub data set nyu-mll/glue (sst2) is not cached",
    ),
    "evaluate-missing-model": (
        EVALUATE + ["--task", "glue/rte", "--model_name_or_path", "{tmp}/no-model"],
        "{tmp}/no-model is not a directory holding a model or tokenizer",
    ),
    "evaluate-unknown-task": (
        EVALUATE + ["--task", "superglue/rtx"],
        "unknown task 'superglue/rtx' (close matches: superglue/rte",
    ),
    "evaluate-missing-data-dir": (
        EVALUATE + ["--task", "glue/rte", "--data_dir", "{tmp}/no-data"],
        "data dir {tmp}/no-data does not exist.",
    ),
    "sweep-unsupported-distribution": (
        ["sweep", "{tmp}/normal.yaml"],
        "parameter 'learning_rate': distribution normal has no Optuna equivalent",
    ),
    "sweep-unknown-metric": (
        ["sweep", "{tmp}/bleu.yaml"],
        "metric 'eval/bleu' is not produced by glue/rte; choose one of eval/accuracy",
    ),
    "sweep-unknown-key": (["sweep", "{tmp}/typo-sweep.yaml"], "unsupported key 'paramters'"),
    "sweep-missing-file": (["sweep", "{tmp}/missing.yaml"], "sweep file {tmp}/missing.yaml does not exist."),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, small_corpus, wiki_tokenizer_dir, shared_data) -> dict[str, str]:
    """Bad files, a finished tiny run (for runs it must not touch and checkpoints of another size)."""
    tmp = tmp_path_factory.mktemp("inputs")
    (tmp / "bad.yaml").write_text("input_length: [128\n")
    (tmp / "list.yaml").write_text("- input_length\n- 128\n")
    (tmp / "typo.yaml").write_text("input_lenght: 128\n")
    (tmp / "type.yaml").write_text("learning_rate: fast\n")
    (tmp / "empty.txt").write_text("")
    (tmp / "folder.txt").mkdir()
    (tmp / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1") * 50)
    (tmp / "body.jsonl").write_text('{"body": "hello world"}\n')
    (tmp / "short.txt").write_text("Just one short line.\n")
    (tmp / "sst2.tsv").write_text("sentence\tlabel\nnice film\t1\nbad film\t7\n")
    (tmp / "sst2.jsonl").write_text('{"body": "nice film", "label": 1}\n')
    (tmp / "nul.csv").write_bytes(b"\x00sentence,label\nnice film,1\n")  # found by the fuzzer (test_fuzz.py)
    (tmp / "notes").mkdir()
    (tmp / "notes" / "notes.txt").write_text("precious")
    sweep = (
        "method: random\nmetric: {{name: {metric}, goal: maximize}}\n{key}:\n  task: {{value: glue/rte}}\n"
        "  learning_rate: {lr}\ncommand: finetune\n"
    )
    (tmp / "normal.yaml").write_text(
        sweep.format(metric="eval/accuracy", key="parameters", lr="{distribution: normal, mu: 0.001, sigma: 0.0001}")
    )
    (tmp / "bleu.yaml").write_text(sweep.format(metric="eval/bleu", key="parameters", lr="{values: [0.001]}"))
    (tmp / "typo-sweep.yaml").write_text(sweep.format(metric="eval/accuracy", key="paramters", lr="{values: [0.001]}"))
    from t5lab.data.tokenizer import save_tokenizer, train_tokenizer

    lines = small_corpus.read_text(encoding="utf-8").splitlines()
    save_tokenizer(train_tokenizer(lines, vocab_size=300, num_sentinels=0), tmp / "no-sentinels")
    run = tmp / "existing-run"
    assert (
        main(
            [
                "pretrain",
                "--train_file",
                str(small_corpus),
                "--tokenizer_name",
                str(wiki_tokenizer_dir),
                "--config_name",
                "t5-tiny",
                "--input_length",
                "32",
                "--max_steps",
                "2",
                "--save_steps",
                "2",
                "--report_to",
                "none",
                "--output_dir",
                str(run),
                "--validation_split_percentage",
                "0",
                "--plot_loss",
                "false",
            ]
        )
        == 0
    )
    shutil.copytree(run / "checkpoint-2", tmp / "half-written")
    (tmp / "half-written" / "optimizer.pt").write_bytes(b"\0" * 1000)  # truncated by a crash outside t5lab's save
    return {
        "tmp": str(tmp),
        "txt": str(small_corpus),
        "tok": str(wiki_tokenizer_dir),
        "glue": str(shared_data / "glue"),
        "run": str(run),
    }


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_clear_line_and_touches_nothing(case, inputs, tmp_path, capsys):
    argv_template, expected = CASES[case]
    values = {**inputs, "out": str(tmp_path / "out")}
    argv = [_fill(arg, values) for arg in argv_template]
    before = _snapshot(Path(inputs["tmp"]))
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0 and code == 2
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"t5lab {argv[0]}: error: "), err[-2000:]
    assert _fill(expected, values) in line, line
    assert _snapshot(Path(inputs["tmp"])) == before
    if any("{out}" in arg for arg in argv_template):
        # nothing the failed command left blocks its fix: the directory takes a corrected run (other settings)
        prepare_output_dir(values["out"], {"corrected": case}, overwrite=False, resume_from_checkpoint=None)


def test_the_table_in_docs_lists_every_case():
    documented = set(re.findall(r"^\| `([a-z0-9-]+)` \|", DOCS.read_text(encoding="utf-8"), flags=re.MULTILINE))
    assert documented == set(CASES)


def _cli(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "t5lab", *argv], capture_output=True, text=True, timeout=300, env=env)


def test_unreachable_hub_fails_at_once_in_a_real_process(tmp_path, inputs):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env.update(HF_ENDPOINT="http://127.0.0.1:9")  # nothing listens on the discard port: as good as no network
    started = time.monotonic()
    result = _cli(
        "pretrain",
        "--dataset_name",
        "allenai/c4",
        "--tokenizer_name",
        inputs["tok"],
        "--output_dir",
        str(tmp_path / "o"),
        env=env,
    )
    assert time.monotonic() - started < 60  # startup, then one refused connection: no retries
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "t5lab pretrain: error: hub dataset 'allenai/c4' needs the Hugging Face hub, which is unreachable "
        "(127.0.0.1:9: Connection refused); pass local files, or set HF_HUB_OFFLINE=1 to use what is cached."
    )


def test_debug_shows_the_traceback_and_a_real_process_does_not(tmp_path, inputs):
    argv = [_fill(a, {**inputs, "out": str(tmp_path / "o")}) for a in PRETRAIN + ["--config", "{tmp}/bad.yaml"]]
    plain = _cli(*argv, env=os.environ.copy())
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.strip().splitlines()[-1].startswith("t5lab pretrain: error: config file")
    debug = _cli("--debug", *argv, env=os.environ.copy())
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "ConfigError" in debug.stderr
    assert json.dumps(plain.stderr)  # the one line is plain text


def test_overwrite_forgets_what_the_old_run_built_for_its_corpus(tmp_path):
    # a tokenizer trained and a PMI vocabulary built for another corpus must not be reused by the new run
    out = tmp_path / "out"
    prepare_output_dir(str(out), {"train_file": "old.txt"}, overwrite=False, resume_from_checkpoint=None)
    (out / "checkpoint-5").mkdir()
    for name in ("tokenizer.json", "pmi_vocab.txt"):
        (out / name).write_text("built for old.txt")
    prepare_output_dir(str(out), {"train_file": "old.txt"}, overwrite=False, resume_from_checkpoint=None)
    assert (out / "tokenizer.json").is_file() and (out / "pmi_vocab.txt").is_file()  # resuming keeps them
    with pytest.raises(ConfigError, match="holds a different run"):
        prepare_output_dir(str(out), {"train_file": "new.txt"}, overwrite=False, resume_from_checkpoint=None)
    assert prepare_output_dir(str(out), {"train_file": "new.txt"}, overwrite=True, resume_from_checkpoint=None) is None
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["t5lab_config.yaml"]
