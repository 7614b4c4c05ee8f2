"""CLI and configuration: YAML with overrides, aliases, and one-line errors that leave output dirs alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from t5lab.api import NOT_APPLICABLE
from t5lab.cli import main
from t5lab.config import DataArguments, ModelArguments, parse_arguments
from t5lab.training.arguments import T5LabTrainingArguments

TYPES = (ModelArguments, DataArguments, T5LabTrainingArguments)


def test_yaml_config_with_command_line_overrides(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("input_length: 256\nlearning_rate: 0.01\nreport_to: [tensorboard, wandb]\nbf16: false\n")
    model, data, training = parse_arguments(
        TYPES,
        [
            "--config",
            str(config),
            "--output_dir",
            str(tmp_path / "o"),
            "--learning_rate",
            "0.002",
            "--mlm_probability",
            "0.3",
        ],
        "t",
        "",
    )
    assert data.input_length == 256 and training.learning_rate == 0.002
    assert data.noise_density == 0.3  # the seed's flag name is an alias
    assert training.report_to == ["tensorboard", "wandb"]


def test_defaults_follow_t5():
    _, data, training = parse_arguments(TYPES, ["--output_dir", "x"], "t", "")
    assert (data.input_length, data.noise_density, data.mean_noise_span_length) == (512, 0.15, 3.0)
    assert training.report_to == ["tensorboard"]  # local, no account


@pytest.mark.parametrize(
    "yaml_text, argv, message",
    [
        ("input_lenght: 128\n", [], "unknown key 'input_lenght' in .*Did you mean 'input_length'"),
        ("input_length: [128\n", [], "not valid YAML at line 2"),
        ("input_length: 12\x008\n", [], "character #x0000 at position 16 is not allowed"),
        ("- a\n- b\n", [], "must be a mapping"),
        ("learning_rate: fast\n", [], "learning_rate"),
        (None, ["--input_lenght", "3"], "unknown argument '--input_lenght'"),
        (None, ["--noise_density", "1.5"], "strictly between 0 and 1"),
        (None, ["--noise_density", "0"], "strictly between 0 and 1"),
        (None, ["--bf16", "maybe"], "--bf16: expected true, false or auto, got 'maybe'"),
        ("bf16: sometimes\n", [], "--bf16: expected true, false or auto, got 'sometimes'"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(tmp_path, capsys, yaml_text, argv, message):
    args = ["pretrain", "--output_dir", str(tmp_path / "out"), "--train_file", "x.txt", *argv]
    if yaml_text is not None:
        (tmp_path / "c.yaml").write_text(yaml_text)
        args += ["--config", str(tmp_path / "c.yaml")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("t5lab pretrain: error:")
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "out").exists()


def test_unknown_command_and_help(capsys):
    assert main(["pretrian"]) == 2
    assert "unknown command 'pretrian'" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "pretrain" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--config_name", "t5-huge"], "unknown preset or config 't5-huge'"),
        (["--input_length", "2"], "input_length must be at least 8"),
        (["--input_length", "4096"], "needs up to 227 sentinels but the tokenizer has 100"),
        (["--text_column_name", "body", "--train_file", "{jsonl}"], "has no column 'body'"),
    ],
)
def test_bad_run_settings(tmp_path, capsys, wikitext_file, wiki_tokenizer_dir, argv, message):
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"text": "hello world"}\n')
    argv = [a.replace("{jsonl}", str(jsonl)) for a in argv]
    code = main(
        [
            "pretrain",
            "--train_file",
            str(wikitext_file),
            "--tokenizer_name",
            str(wiki_tokenizer_dir),
            "--output_dir",
            str(tmp_path / "out"),
            "--max_steps",
            "1",
            "--report_to",
            "none",
            *argv,
        ]
    )
    assert code == 2
    assert message in capsys.readouterr().err


def test_foreign_output_dir_is_never_touched(tmp_path, capsys, wikitext_file, wiki_tokenizer_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    code = main(
        [
            "pretrain",
            "--train_file",
            str(wikitext_file),
            "--tokenizer_name",
            str(wiki_tokenizer_dir),
            "--output_dir",
            str(out),
            "--max_steps",
            "1",
        ]
    )
    assert code == 2 and "holds no t5lab run" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_effective_config_is_written_and_reusable(tmp_path, wikitext_file, wiki_tokenizer_dir):
    out = tmp_path / "out"
    assert (
        main(
            [
                "pretrain",
                "--train_file",
                str(wikitext_file),
                "--tokenizer_name",
                str(wiki_tokenizer_dir),
                "--output_dir",
                str(out),
                "--max_steps",
                "1",
                "--input_length",
                "64",
                "--report_to",
                "none",
                "--save_strategy",
                "no",
                "--validation_split_percentage",
                "0",
                "--hub_token",
                "hf_SECRETSECRET",
            ]
        )
        == 0
    )
    saved = yaml.safe_load((out / "t5lab_config.yaml").read_text())
    assert saved["input_length"] == 64 and saved["max_steps"] == 1 and saved["noise_density"] == 0.15
    assert "hf_SECRETSECRET" not in (out / "t5lab_config.yaml").read_text()
    model, data, training = parse_arguments(TYPES, ["--config", str(out / "t5lab_config.yaml")], "t", "")
    assert data.input_length == 64 and training.max_steps == 1


def test_tokenizer_train_command(tmp_path, wikitext_file, capsys):
    out = tmp_path / "tok"
    assert (
        main(
            ["tokenizer", "train", "--train_file", str(wikitext_file), "--vocab_size", "1200", "--output_dir", str(out)]
        )
        == 0
    )
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.convert_tokens_to_ids("<extra_id_0>") == len(tokenizer) - 1
    assert main(["tokenizer", "train", "--train_file", str(wikitext_file), "--output_dir", str(out)]) == 2
    assert "is not empty" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["quickstart.yaml", "t5-base-nanot5.yaml"])
def test_shipped_configs_are_valid(tmp_path, name):
    from pathlib import Path

    config = Path(__file__).resolve().parents[1] / "configs" / name
    # bf16/tf32 are GPU settings in the base recipe; everything else must parse as is
    _, data, training = parse_arguments(
        TYPES, ["--config", str(config), "--output_dir", str(tmp_path), "--bf16", "false", "--tf32", "false"], "t", ""
    )
    assert data.noise_density == 0.15 and training.max_steps > 0


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "t5lab", *args], capture_output=True, text=True, timeout=120)


def test_version_matches_the_installed_package():
    from importlib.metadata import version

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"t5lab {version('t5lab')}"


def test_tasks_fit_80_columns_filter_and_speak_json(capsys):
    assert main(["tasks"]) == 0
    table = capsys.readouterr().out
    assert max(len(line) for line in table.splitlines()) <= 80 and "glue/sst2" in table
    assert main(["tasks", "glue/", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {t["task"] for t in listed} >= {"glue/sst2", "glue/cola", "glue/rte"}
    assert all(t["task"].startswith("glue/") for t in listed)
    assert {"task", "kind", "source", "metrics", "optimize", "splits"} == set(listed[0])
    assert main(["tasks", "--wide", "superglue"]) == 0
    wide = capsys.readouterr().out
    assert "superglue/boolq" in wide and "validation" in wide and "glue/sst2" not in wide


def test_shipped_launcher_configs_print_from_the_installed_package(tmp_path):
    listing = run_cli("config", "accelerate")
    assert listing.returncode == 0 and "multi_gpu" in listing.stdout.split()
    printed = run_cli("config", "accelerate", "multi_gpu")
    assert printed.returncode == 0 and yaml.safe_load(printed.stdout)["distributed_type"] == "MULTI_GPU"
    zero3 = run_cli("config", "deepspeed", "zero3.json")
    assert json.loads(zero3.stdout)["zero_optimization"]["stage"] == 3
    for args, message in [
        (("config", "helm"), "unknown config kind"),
        (("config", "slurm", "nope"), "no slurm config"),
    ]:
        bad = run_cli(*args)
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr


def test_recipe_help_is_grouped_readable_and_fast_from_its_cache():
    first = run_cli("pretrain", "--help")
    assert first.returncode == 0
    text = first.stdout
    order = [text.index(g) for g in ("Model and tokenizer:", "Data and objective:", "t5lab training options:")]
    assert order == sorted(order) and text.index("Trainer options") > order[-1]  # the Trainer's ~150 flags last
    assert "--max-steps" not in text and "--no_" not in text and "--objective {span_corruption," in text
    assert "--learning_rate X" in text and "(default: 5e-05)" in text and text.count("(default: 5e-05)") == 1
    assert len(text.splitlines()) < 450
    started = time.perf_counter()
    second = run_cli("pretrain", "--help")
    assert second.stdout == text and time.perf_counter() - started < 2.0  # no torch import on a cache hit
    finetune_help = run_cli("finetune", "--help").stdout
    assert "Task and evaluation:" in finetune_help and "Data and objective:" not in finetune_help
    assert "--vocab_size" not in finetune_help and "--noise_density" not in finetune_help
    assert "--eval_mode {generate,rank}" in finetune_help and "--task VALUE" in finetune_help
    assert "(required) Task name(s)" in finetune_help  # required flags are marked


def test_a_pretraining_flag_given_to_finetune_is_refused_not_ignored(capsys):
    assert main(["finetune", "--task", "glue/sst2", "--vocab_size", "100", "--output_dir", "x"]) == 2
    assert "--vocab_size applies to `t5lab pretrain`" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command, flag",
    [(command, flag) for command, flags in sorted(NOT_APPLICABLE.items()) for flag in sorted(flags)],
)
def test_trainer_flags_a_command_has_no_use_for_are_refused_not_ignored(command, flag, capsys):
    value = "config.json" if flag == "generation_config" else "2" if flag.startswith("generation_") else "true"
    argv = [command, f"--{flag}", value, "--output_dir", "unused", "--task", "glue/sst2"]
    if command == "pretrain":
        argv = argv[:-2]
    assert main(argv) == 2
    assert f"--{flag} has no effect in `t5lab {command}`" in capsys.readouterr().err


def test_quiet_keeps_warnings_and_errors_and_drops_progress_lines(tmp_path, shared_data, wiki_tokenizer_dir):
    argv = ["finetune", "--task", "glue/rte", "--data_dir", str(shared_data / "glue"), "--config_name", "t5-tiny"]
    argv += ["--tokenizer_name", str(wiki_tokenizer_dir), "--max_steps", "2", "--max_eval_samples", "8"]
    argv += ["--max_target_length", "8", "--report_to", "none", "--disable_tqdm", "true"]
    loud = run_cli(*argv, "--output_dir", str(tmp_path / "loud"))
    quiet = run_cli("-q", *argv, "--output_dir", str(tmp_path / "quiet"))
    assert loud.returncode == quiet.returncode == 0
    assert "Fine-tuning" in loud.stderr and "Model card:" in loud.stderr
    assert "Fine-tuning" not in quiet.stderr and "Model card:" not in quiet.stderr
    assert (tmp_path / "quiet" / "eval_results.json").is_file()
    explicit = run_cli(*argv, "--log_level", "warning", "--output_dir", str(tmp_path / "explicit"))
    assert explicit.returncode == 0 and "Fine-tuning" not in explicit.stderr  # --log_level rules t5lab's lines too
    failed = run_cli("-q", "finetune", "--task", "glue/sst9", "--output_dir", str(tmp_path / "bad"))
    assert failed.returncode == 2 and "unknown task" in failed.stderr  # errors are never quieted


@pytest.mark.parametrize(
    "command",
    [
        ["pmi", "build", "--output", "v.txt"],
        ["pmi", "check", "--pmi_vocab", "v.txt"],
        ["tokenizer", "train", "--output_dir", "tok"],
    ],
    ids=["pmi build", "pmi check", "tokenizer train"],
)
def test_text_commands_hide_and_refuse_the_flags_they_do_not_read(command, capsys):
    unread = {
        "model_name_or_path": "m",
        "config_name": "t5-tiny",
        "attn_implementation": "eager",
        "validation_file": "dev.txt",
        "input_length": "64",
        "noise_density": "0.3",
        "objective": "iid_masking",
        "max_eval_samples": "10",
    }
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    shown = capsys.readouterr().out
    assert "--seed" in shown or "--pmi_vocab" in shown
    for flag, value in unread.items():
        assert f"--{flag} " not in shown
        assert main([*command, f"--{flag}", value]) == 2
        error = capsys.readouterr().err  # refused as unread, or unknown where the command has no such group
        assert f"--{flag} has no effect in `t5lab {' '.join(command[:2])}`" in error or "unknown argument" in error


@pytest.mark.parametrize(
    "command",
    [["pmi", "build", "--output", "v.txt", "--train_file", "t.txt"], ["pmi", "check", "--pmi_vocab", "v.txt"]],
    ids=["pmi build", "pmi check"],
)
def test_pmi_commands_describe_the_tokenizer_they_need_and_refuse_pretraining_only_flags(command, capsys):
    with pytest.raises(SystemExit):
        main([*command[:2], "--help"])
    shown = "".join(capsys.readouterr().out.split())  # the help wraps lines at any width
    assert "thetokenizerofthemodeltopre-train(required" in shown
    assert "'train'totrain" not in shown  # the shared help offers a value these commands refuse
    assert main([*command, "--tokenizer_name", "train"]) == 2
    assert "needs --tokenizer_name" in capsys.readouterr().err
    assert main([*command, "--vocab_size", "100"]) == 2
    assert f"--vocab_size has no effect in `t5lab {' '.join(command[:2])}`" in capsys.readouterr().err


def test_torch_compile_without_a_cpu_compiler_is_one_line(tmp_path):
    # inductor would fail at the first step with a long traceback, after the data was prepared
    argv = ["pretrain", "--dataset_name", "t5lab:python-docs", "--torch_compile", "true", "--output_dir", str(tmp_path)]
    missing = subprocess.run(
        [sys.executable, "-m", "t5lab", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CXX": str(tmp_path / "no-such-g++")},
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "--torch_compile on CPU needs a C++ compiler" in missing.stderr.strip().splitlines()[-1]
    assert not any(tmp_path.iterdir())  # refused before anything was written


EXITS_LIKE_A_DEEPSPEED_RUN = """
import atexit, sys
import deepspeed  # a DeepSpeed run's process: run() skips the interpreter's teardown
from t5lab.cli import run
class Finalized:  # stands for the gloo groups DeepSpeed keeps: torn down only by the interpreter's finalization
    def __del__(self):
        print("interpreter teardown ran", flush=True)
groups = Finalized()
atexit.register(print, "exit handler ran")
sys.argv = ["t5lab", *sys.argv[1:]]
run()
print("never printed")
"""


@pytest.mark.parametrize("argv, code", [(["--version"], 0), (["no-such-command"], 2)])
def test_a_deepspeed_process_exits_after_its_exit_handlers_and_before_the_interpreter_teardown(argv, code):
    pytest.importorskip("deepspeed", reason="DeepSpeed is part of the test extra (pip install -e '.[test]')")
    result = subprocess.run(
        [sys.executable, "-c", EXITS_LIKE_A_DEEPSPEED_RUN, *argv], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == code, result.stderr[-2000:]
    assert result.stdout.rstrip().endswith("exit handler ran"), result.stdout  # trackers would finish here
    assert "never printed" not in result.stdout and "interpreter teardown ran" not in result.stdout
    assert ("t5lab " in result.stdout) if code == 0 else ("unknown command" in result.stderr)
