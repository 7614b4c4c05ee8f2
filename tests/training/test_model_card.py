"""The model card (README.md) of pre-training and fine-tuning runs, and what --push_to_hub would upload."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest
import torch
import transformers
from huggingface_hub import ModelCard
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects
from transformers import Seq2SeqTrainer, T5ForConditionalGeneration

import t5lab
from t5lab.cli import main
from t5lab.training.arguments import T5LabTrainingArguments
from t5lab.training.model_card import format_number
from t5lab.training.trainer import T5LabTrainer, skip_bookkeeping_in_hub_uploads

pytestmark = pytest.mark.slow

SECRET = "hf_not_a_real_token_123"


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, wikitext_file, wiki_tokenizer_dir):
    """A short pre-training run by the real command in its own process, and its command line."""
    out = tmp_path_factory.mktemp("card") / "tiny"
    command = [
        sys.executable,
        "-m",
        "t5lab",
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
        str(out),
        "--report_to",
        "none",
        "--seed",
        "1",
        "--max_eval_samples",
        "64",
        "--max_steps",
        "8",
        "--hub_token",  # not used without --push_to_hub; it must not reach the card
        SECRET,
    ]
    env = {**os.environ, "T5LAB_CACHE": str(tmp_path_factory.getbasetemp() / "t5lab-cache"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, command


def test_pretraining_card_states_size_objective_metrics_command_and_versions(pretrained):
    out, command = pretrained
    card = ModelCard.load(out / "README.md")
    results = json.loads((out / "eval_results.json").read_text())
    model = T5ForConditionalGeneration.from_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())

    assert card.data.library_name == "transformers"
    assert {"t5lab", "t5", "text2text-generation", "span_corruption"} <= set(card.data.tags)
    assert card.data.datasets is None  # a local file is no hub dataset
    [loss] = [r for r in card.data.eval_results if r.metric_type == "loss"]
    assert loss.metric_value == results["eval_loss"] and loss.task_name == "span_corruption pre-training"
    assert "accuracy" in card.data.metrics

    text = card.text
    assert f"- **Parameters**: {n_params:,}" in text
    assert f"d_model {model.config.d_model}" in text and f"vocabulary {model.config.vocab_size:,}" in text
    assert f"`{command[command.index('--tokenizer_name') + 1]}`" in text
    assert "- **Objective**: `span_corruption`: span_corruption (density 0.15, mean span 3)" in text
    assert "input_length 64 (encoder tokens after corruption), noise_density 0.15, mean_noise_span_length 3.0" in text
    assert f'T5ForConditionalGeneration.from_pretrained("{out}")' in text  # not pushed: the local folder
    assert f"| eval_loss | {format_number(results['eval_loss'])} |" in text
    # the exact command line, the token redacted (argv[0] is the module's path under `python -m`)
    assert shlex.join([arg if arg != SECRET else "<redacted>" for arg in command[3:]]) in text
    assert SECRET not in (out / "README.md").read_text()
    for package, version in (("t5lab", t5lab.__version__), ("torch", torch.__version__)):
        assert f"{package} {version}" in text
    assert f"transformers {transformers.__version__}" in text


def test_the_card_is_what_push_to_hub_uploads(pretrained, tmp_path):
    """Offline, the upload itself cannot run: Trainer.push_to_hub creates the hub repo and validates README.md
    over HTTP (HF_HUB_OFFLINE=1 is refused at parse time: tests/reliability/test_bad_inputs.py). What runs here:
    the card step that push_to_hub takes before uploading, and the folder filter of its upload."""
    out, _ = pretrained
    ours = (out / "README.md").read_text()
    model = T5ForConditionalGeneration.from_pretrained(out)
    trainer = T5LabTrainer(model=model, args=T5LabTrainingArguments(output_dir=str(out), report_to="none"))
    trainer.create_model_card(model_name="tiny")  # what Trainer.push_to_hub calls right before upload_folder
    assert (out / "README.md").read_text() == ours
    # the stock Trainer would have replaced the card with its own draft
    shutil.copy(out / "README.md", tmp_path / "README.md")
    stock = T5LabTrainer(model=model, args=T5LabTrainingArguments(output_dir=str(tmp_path), report_to="none"))
    Seq2SeqTrainer.create_model_card(stock, model_name="tiny")
    assert "t5lab" not in ModelCard.load(tmp_path / "README.md").data.tags
    # Trainer.push_to_hub uploads the output dir with upload_folder(ignore_patterns=["_*", "checkpoint-*"]), to
    # which huggingface_hub adds its DEFAULT_IGNORE_PATTERNS: t5lab's bookkeeping is among them when pushing
    staged = out / ".incomplete" / "checkpoint-99" / "model.safetensors"
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"half-written")
    skip_bookkeeping_in_hub_uploads()  # what T5LabTrainer does when --push_to_hub is on
    files = [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()]
    uploaded = set(filter_repo_objects(files, ignore_patterns=["_*", "checkpoint-*", *DEFAULT_IGNORE_PATTERNS]))
    assert {"README.md", "model.safetensors", "config.json", "tokenizer.json", "t5lab_config.yaml"} <= uploaded
    assert not [f for f in uploaded if ".incomplete" in f or f.endswith(".t5lab.lock")]
    shutil.rmtree(out / ".incomplete")


def test_finetuning_card_names_the_task_and_its_metric(pretrained, tmp_path, shared_data):
    base, _ = pretrained
    out = tmp_path / "sst2"
    code = main(
        [
            "finetune",
            "--task",
            "glue/sst2",
            "--data_dir",
            str(shared_data / "glue"),
            "--model_name_or_path",
            str(base),
            "--output_dir",
            str(out),
            "--per_device_train_batch_size",
            "16",
            "--learning_rate",
            "1e-3",
            "--max_source_length",
            "64",
            "--max_target_length",
            "8",
            "--max_train_samples",
            "200",
            "--max_eval_samples",
            "32",
            "--max_steps",
            "8",
            "--report_to",
            "none",
        ]
    )
    assert code == 0
    card = ModelCard.load(out / "README.md")
    accuracy = json.loads((out / "eval_results.json").read_text())["eval_accuracy"]

    assert "glue/sst2" in card.data.tags and card.data.datasets == ["nyu-mll/glue"]
    assert card.data.metrics == ["accuracy"]
    [result] = card.data.eval_results
    assert (result.task_name, result.dataset_type, result.dataset_config, result.dataset_split) == (
        "glue/sst2",
        "nyu-mll/glue",
        "sst2",
        "validation",
    )
    assert (result.metric_type, result.metric_value) == ("accuracy", accuracy)
    assert card.data.base_model is None  # a local checkpoint: named in the text, not linked
    assert f"the checkpoint `{base}`" in card.text
    assert f"- **glue/sst2**: metrics accuracy; data: `{shared_data / 'glue'}`" in card.text
    assert f"| eval_accuracy | {format_number(accuracy)} |" in card.text
    assert "sst2 sentence: " in card.text  # the usage snippet quotes a real validation input
