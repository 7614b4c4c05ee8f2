"""Pre-training end to end on real text: the loss falls, outputs are standard, runs resume and refuse to mix."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoTokenizer, T5ForConditionalGeneration

from t5lab.cli import main

pytestmark = pytest.mark.slow


def _args(wikitext_file, wiki_tokenizer_dir, output_dir, *extra):
    return [
        "pretrain",
        "--train_file",
        str(wikitext_file),
        "--tokenizer_name",
        str(wiki_tokenizer_dir),
        "--config_name",
        "t5-tiny",
        "--input_length",
        "64",
        "--per_device_train_batch_size",
        "16",
        "--output_dir",
        str(output_dir),
        "--report_to",
        "none",
        "--seed",
        "1",
        "--max_eval_samples",
        "64",
        *extra,
    ]


def _history(output_dir):
    return json.loads((output_dir / "trainer_state.json").read_text())["log_history"]


def test_short_pretraining_learns_and_writes_standard_outputs(tmp_path, wikitext_file, wiki_tokenizer_dir):
    out = tmp_path / "run"
    code = main(
        _args(
            wikitext_file,
            wiki_tokenizer_dir,
            out,
            "--max_steps",
            "60",
            "--eval_steps",
            "20",
            "--logging_steps",
            "10",
            "--learning_rate",
            "3e-3",
            "--warmup_steps",
            "5",
            "--save_steps",
            "30",
            "--eval_on_start",
        )
    )
    assert code == 0
    evals = [h["eval_loss"] for h in _history(out) if "eval_loss" in h]
    assert len(evals) >= 4 and evals[0] > evals[1] > evals[-1] and evals[-1] < evals[0] - 1.0, evals
    first_train_loss = next(h["loss"] for h in _history(out) if "loss" in h)
    assert first_train_loss < math.log(2048) + 1.5  # sane init (no ~100 first loss)
    assert all(h["tokens_per_second"] > 0 for h in _history(out) if "loss" in h)
    for name in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "trainer_state.json",
        "eval_results.json",
        "all_results.json",
        "train_results.json",
        "loss_curve.png",
        "t5lab_config.yaml",
    ):
        assert (out / name).is_file(), name
    assert json.loads((out / "eval_results.json").read_text())["eval_token_accuracy"] > 0.05
    # transformers 5 removed the seq2seq pipelines; generate() is the supported way to use the model
    model = T5ForConditionalGeneration.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    generated = model.generate(**tokenizer(["The <extra_id_0> of the city ."], return_tensors="pt"), max_new_tokens=5)
    assert generated.shape[0] == 1 and generated[0, 0] == model.config.decoder_start_token_id
    assert model.lm_head.weight.data_ptr() != model.shared.weight.data_ptr()


def test_gradient_accumulation_does_not_change_loss_or_grad_norm(tmp_path, wikitext_file, wiki_tokenizer_dir):
    def run(name, batch, accumulation):
        out = tmp_path / name
        main(
            _args(
                wikitext_file,
                wiki_tokenizer_dir,
                out,
                "--max_steps",
                "3",
                "--logging_steps",
                "1",
                "--per_device_train_batch_size",
                str(batch),
                "--gradient_accumulation_steps",
                str(accumulation),
                "--validation_split_percentage",
                "0",
                "--save_strategy",
                "no",
            )
        )
        return [(h["loss"], h["grad_norm"]) for h in _history(out) if "loss" in h]

    whole = run("whole", 8, 1)
    split = run("split", 4, 2)
    assert len(whole) == 3
    for (loss_a, norm_a), (loss_b, norm_b) in zip(whole, split):
        assert loss_b == pytest.approx(loss_a, rel=1e-4)
        assert norm_b == pytest.approx(norm_a, rel=1e-3)


def test_rerun_resumes_and_a_different_run_is_refused(tmp_path, wikitext_file, wiki_tokenizer_dir, capsys):
    out = tmp_path / "run"
    assert (
        main(
            _args(
                wikitext_file, wiki_tokenizer_dir, out, "--max_steps", "4", "--save_steps", "2", "--report_to", "none"
            )
        )
        == 0
    )
    assert main(_args(wikitext_file, wiki_tokenizer_dir, out, "--max_steps", "6", "--save_steps", "2")) == 0
    steps = [h["step"] for h in _history(out) if "train_runtime" in h]
    assert steps == [6] and "resuming from" in capsys.readouterr().err
    before = (out / "model.safetensors").read_bytes()
    code = main(_args(wikitext_file, wiki_tokenizer_dir, out, "--max_steps", "6", "--config_name", "t5-mini"))
    assert code == 2
    assert "holds a different run (settings differ: config_name)" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize(
    "optim, scheduler",
    [("adamwscale", "cosine"), ("adafactor", "inverse_sqrt"), ("adamw_torch", "constant_with_warmup")],
)
def test_optimizers_and_schedules(tmp_path, wikitext_file, wiki_tokenizer_dir, optim, scheduler):
    out = tmp_path / optim
    assert (
        main(
            _args(
                wikitext_file,
                wiki_tokenizer_dir,
                out,
                "--max_steps",
                "4",
                "--optim",
                optim,
                "--lr_scheduler_type",
                scheduler,
                "--warmup_steps",
                "2",
                "--logging_steps",
                "1",
                "--validation_split_percentage",
                "0",
                "--save_strategy",
                "no",
            )
        )
        == 0
    )
    history = [h for h in _history(out) if "loss" in h]
    assert len(history) == 4 and all(math.isfinite(h["loss"]) for h in history)


def test_inline_tokenizer_training_and_bf16(tmp_path, wikitext_file):
    out = tmp_path / "bf16"
    code = main(
        [
            "pretrain",
            "--train_file",
            str(wikitext_file),
            "--tokenizer_name",
            "train",
            "--vocab_size",
            "1500",
            "--config_name",
            "t5-tiny",
            "--input_length",
            "64",
            "--max_steps",
            "3",
            "--bf16",
            "--output_dir",
            str(out),
            "--report_to",
            "none",
            "--save_strategy",
            "no",
            "--validation_split_percentage",
            "0",
        ]
    )
    assert code == 0
    assert (out / "tokenizer.json").is_file() and (out / "spiece.model").is_file()
    assert T5ForConditionalGeneration.from_pretrained(out).config.vocab_size % 128 == 0


def test_module_entry_point_and_one_line_errors(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "t5lab", *args], capture_output=True, text=True, timeout=300)

    help_result = run("pretrain", "--help")
    assert (
        help_result.returncode == 0
        and "--noise_density" in help_result.stdout
        and "--mlm_probability" in help_result.stdout
    )
    bad = run("pretrain", "--output_dir", str(tmp_path / "x"), "--train_file", str(tmp_path / "missing.txt"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert (
        bad.stderr.strip().splitlines()[-1]
        == f"t5lab pretrain: error: data file {tmp_path / 'missing.txt'} does not exist."
    )
    assert torch.__version__


def test_bf16_auto_follows_the_cpu_and_records_what_ran(tmp_path, wikitext_file, wiki_tokenizer_dir, capsys):
    cpuinfo = Path("/proc/cpuinfo")
    if torch.cuda.is_available() or not cpuinfo.is_file():
        pytest.skip("reads the CPU's flags from /proc/cpuinfo, independently of torch")
    native = bool({"avx512_bf16", "amx_tile"} & set(cpuinfo.read_text().split()))
    out = tmp_path / "auto"
    args = _args(wikitext_file, wiki_tokenizer_dir, out, "--bf16", "auto", "--max_steps", "2", "--save_strategy", "no")
    assert main(args) == 0
    assert ("bf16 autocast (--bf16 auto)" if native else "fp32 (--bf16 auto)") in capsys.readouterr().err
    assert yaml.safe_load((out / "t5lab_config.yaml").read_text()).get("bf16", False) is native


def test_streaming_pretraining(tmp_path, wikitext_file, wiki_tokenizer_dir):
    out = tmp_path / "stream"
    assert (
        main(_args(wikitext_file, wiki_tokenizer_dir, out, "--streaming", "--max_steps", "3", "--save_strategy", "no"))
        == 0
    )
    assert json.loads((out / "eval_results.json").read_text())["eval_loss"] > 0


def test_runs_under_torchrun_with_two_processes(tmp_path, wikitext_file, wiki_tokenizer_dir, torchrun):
    out = tmp_path / "ddp"
    args = _args(
        wikitext_file, wiki_tokenizer_dir, out, "--max_steps", "3", "--save_strategy", "no", "--ddp_backend", "gloo"
    )
    result = subprocess.run(
        torchrun + args,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "on 2 process(es)" in result.stderr
    assert json.loads((out / "train_results.json").read_text())["train_loss"] > 0


def test_eval_steps_alone_evaluate_and_an_explicit_no_turns_evaluation_off(tmp_path, wikitext_file, wiki_tokenizer_dir):
    config = tmp_path / "recipe.yaml"
    config.write_text("eval_steps: 2\n")  # a recipe that evaluates, as configs/quickstart.yaml does
    common = ("--config", str(config), "--max_steps", "4", "--save_strategy", "no")
    assert main(_args(wikitext_file, wiki_tokenizer_dir, tmp_path / "on", *common)) == 0
    # every 2 steps, then the final evaluation that writes eval_results.json
    assert [h["step"] for h in _history(tmp_path / "on") if "eval_loss" in h] == [2, 4, 4]
    assert main(_args(wikitext_file, wiki_tokenizer_dir, tmp_path / "off", *common, "--eval_strategy", "no")) == 0
    assert [h["step"] for h in _history(tmp_path / "off") if "eval_loss" in h] == [4]


def test_a_failed_start_does_not_block_the_corrected_command(tmp_path, wikitext_file, wiki_tokenizer_dir, capsys):
    out = tmp_path / "run"
    missing = tmp_path / "typo.txt"
    bad = _args(missing, wiki_tokenizer_dir, out, "--max_steps", "2", "--validation_split_percentage", "0")
    assert main(bad) == 2  # the corpus does not exist
    assert main(_args(wikitext_file, wiki_tokenizer_dir, out, "--max_steps", "2", "--config_name", "t5-mini")) == 0
    assert (out / "model.safetensors").is_file()


def test_ul2_objective_end_to_end_saves_its_mode_tokens(tmp_path, shared_data, wikitext_file, wiki_tokenizer_dir):
    out = tmp_path / "ul2"
    code = main(
        _args(wikitext_file, wiki_tokenizer_dir, out, "--objective", "ul2", "--max_steps", "12", "--eval_steps", "6")
    )
    assert code == 0
    tokenizer = AutoTokenizer.from_pretrained(out)
    modes = tokenizer.convert_tokens_to_ids(["[NLU]", "[NLG]", "[S2S]"])
    assert tokenizer.unk_token_id not in modes and len(set(modes)) == 3
    assert tokenizer("[S2S] text", add_special_tokens=False)["input_ids"][0] == modes[2]  # one token, never split
    results = json.loads((out / "eval_results.json").read_text())
    assert {"eval_loss", "eval_encoder_gain", "eval_noise_loss"} <= set(results)
    assert "objective: ul2" in (out / "t5lab_config.yaml").read_text()
    # fine-tuning with the mode token before every input (--source_prefix, as run_summarization's)
    from t5lab.tasks.examples import load_examples
    from t5lab.tasks.registry import get_task

    rte = load_examples(
        get_task("glue/rte"), ("validation",), shared_data / "glue", max_eval_samples=4, source_prefix="[NLU] "
    )
    first_ids = [tokenizer(text)["input_ids"][0] for text in rte["validation"]["inputs"]]
    assert first_ids == [modes[0]] * 4
    tuned = tmp_path / "ul2-rte"
    finetune = ["finetune", "--task", "glue/rte", "--data_dir", str(shared_data / "glue"), "--model_name_or_path"]
    finetune += [str(out), "--source_prefix", "[NLU] ", "--max_steps", "2", "--max_eval_samples", "8"]
    assert main([*finetune, "--max_source_length", "64", "--report_to", "none", "--output_dir", str(tuned)]) == 0
    assert "source_prefix: '[NLU] '" in (tuned / "t5lab_config.yaml").read_text()


def test_pmi_masking_end_to_end_with_a_vocabulary_built_by_t5lab(tmp_path, wikitext_file, wiki_tokenizer_dir):
    vocab = tmp_path / "pmi.txt"
    build = ["pmi", "build", "--train_file", str(wikitext_file), "--tokenizer_name", str(wiki_tokenizer_dir)]
    assert main([*build, "--output", str(vocab), "--size", "2000", "--min_count", "5"]) == 0
    out = tmp_path / "pmi-run"
    args = _args(wikitext_file, wiki_tokenizer_dir, out, "--objective", "pmi_masking", "--pmi_vocab", str(vocab))
    assert main([*args, "--max_steps", "8", "--eval_steps", "4"]) == 0
    assert json.loads((out / "eval_results.json").read_text())["eval_noise_loss"] > 0
    settings = (out / "t5lab_config.yaml").read_text()
    assert "objective: pmi_masking" in settings and f"pmi_vocab: {vocab}" in settings


def test_pmi_masking_builds_its_vocabulary_from_the_corpus_once_per_run(tmp_path, wikitext_file, wiki_tokenizer_dir):
    from t5lab.data.pmi import load_pmi_vocab
    from t5lab.data.tokenizer import load_tokenizer
    from t5lab.evaluation.inspect_checkpoint import inspect_checkpoint

    out = tmp_path / "pmi-build"
    args = _args(wikitext_file, wiki_tokenizer_dir, out, "--objective", "pmi_masking", "--pmi_vocab", "build")
    assert main([*args, "--max_steps", "4", "--eval_steps", "4", "--save_steps", "4"]) == 0
    built = out / "pmi_vocab.txt"
    ngrams = load_pmi_vocab(built, load_tokenizer(str(wiki_tokenizer_dir)))
    assert len(ngrams) > 100  # WikiText-2 test has collocations seen 10+ times ("the United States", ...)
    assert "PMI vocabulary built from the corpus (`pmi_vocab.txt`)" in (out / "README.md").read_text()
    assert json.loads((out / "eval_results.json").read_text())["eval_noise_loss"] > 0
    written = built.stat().st_mtime_ns
    assert main([*args, "--max_steps", "6", "--eval_steps", "6", "--save_steps", "6"]) == 0  # resumes at step 4
    assert built.stat().st_mtime_ns == written  # the run's vocabulary is kept, not rebuilt
    report = inspect_checkpoint(str(out / "checkpoint-4"), str(wikitext_file), num_chunks=8)
    assert report["model"]["noise_loss"] > 0  # inspect finds the vocabulary in the run dir
