"""The benchmarks' measuring instruments: the FLOP formula behind MFU, the seed-style baseline collator, the probe."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import T5Config, T5ForConditionalGeneration

from t5lab.data.span_corruption import reconstruct

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from baselines.seed_style import SeedStyleCollator  # noqa: E402
from common import t5_training_flops  # noqa: E402
from probe_encoder import probe_accuracy, read_sst2  # noqa: E402


@pytest.mark.parametrize("feed_forward_proj", ["gated-gelu", "relu"])
def test_flop_formula_matches_torch_flop_counter(feed_forward_proj: str) -> None:
    config = T5Config(
        d_model=64,
        d_ff=96,
        num_layers=2,
        num_decoder_layers=3,
        num_heads=4,
        d_kv=16,
        vocab_size=256,
        feed_forward_proj=feed_forward_proj,
        tie_word_embeddings=False,
        decoder_start_token_id=0,
    )
    model = T5ForConditionalGeneration(config)
    batch, encoder_length, decoder_length = 2, 40, 12
    inputs = torch.randint(2, 256, (batch, encoder_length))
    labels = torch.randint(2, 256, (batch, decoder_length))
    with FlopCounterMode(display=False) as counter:
        model(input_ids=inputs, labels=labels).loss.backward()
    assert counter.get_total_flops() == t5_training_flops(config, batch, encoder_length, decoder_length)


def test_seed_style_collator_hides_spans_that_targets_restore() -> None:
    vocab_size, pad, eos = 1000, 0, 1
    rng = np.random.default_rng(0)
    lengths = [64, 20, 3]
    rows = [np.concatenate([rng.integers(3, 800, n), np.zeros(64 - n, np.int64)]) for n in lengths]
    collator = SeedStyleCollator(
        vocab_size=vocab_size, pad_token_id=pad, eos_token_id=eos, input_length=64, target_length=64
    )
    batch = collator([{"input_ids": r, "attention_mask": (r != pad).astype(np.int64)} for r in rows])
    assert batch["input_ids"].shape == (3, 64) and batch["labels"].shape == (3, 64)
    sentinels = np.arange(vocab_size - 1, vocab_size - 101, -1)  # <extra_id_0> is vocab_size - 1, counting down
    # Noise is drawn over the padded length and then removed from padding: short rows get less of it.
    noise_tokens = (~np.isin(batch["labels"].numpy(), sentinels) & (batch["labels"].numpy() != -100)).sum(axis=1)
    assert noise_tokens[0] == round(64 * 0.15) and noise_tokens[0] > noise_tokens[1] >= noise_tokens[2]
    for row, n, inputs, labels in zip(rows, lengths, batch["input_ids"].numpy(), batch["labels"].numpy()):
        inputs, labels = inputs[inputs != pad], labels[labels != -100]
        # Every token lands in exactly one of inputs and targets.
        kept = np.concatenate([inputs[~np.isin(inputs, sentinels)], labels[~np.isin(labels, sentinels)]])
        np.testing.assert_array_equal(np.sort(kept), np.sort(row[:n]))
        if inputs[0] not in sentinels:
            np.testing.assert_array_equal(reconstruct(inputs, labels, sentinels, eos), row[:n])
        else:
            # The seed's roll can start a row with noise; its targets then number the spans one off.
            assert not np.array_equal(reconstruct(inputs, labels, sentinels, eos), row[:n])
    assert (batch["decoder_input_ids"][:, 0] == pad).all()
    np.testing.assert_array_equal(
        batch["decoder_input_ids"][:, 1:][batch["labels"][:, :-1] != -100],
        batch["labels"][:, :-1][batch["labels"][:, :-1] != -100],
    )


def test_linear_probe_reads_a_signal_and_nothing_else(shared_data) -> None:
    texts, labels = read_sst2(shared_data / "glue" / "SST-2" / "dev.tsv", 800)
    assert (
        len(texts) == len(labels) == 800 and set(labels.tolist()) == {0, 1} and all(isinstance(t, str) for t in texts)
    )
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(800, 16))
    informative = noise + 2.0 * labels[:, None]  # the label shifts every feature
    assert probe_accuracy(informative[:600], labels[:600], informative[600:], labels[600:]) > 0.95
    assert abs(probe_accuracy(noise[:600], labels[:600], noise[600:], labels[600:]) - 0.5) < 0.1


def test_machine_record_names_the_bf16_path_consistently() -> None:
    from common import machine, matmul_peak_flops

    record = machine()
    flags = set(record["cpu_flags"])
    assert flags <= {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"}
    # torch can only use what the CPU reports
    assert not record["torch_sees"]["amx_tile"] or "amx_tile" in flags
    assert not record["torch_sees"]["avx512_bf16"] or "avx512_bf16" in flags
    wall, per_cpu_second = matmul_peak_flops(torch.float32, seconds=0.05, op="linear")
    assert wall > 1e8 and per_cpu_second > 1e8  # at least 0.1 GFLOP/s: a real measurement, not a constant


@pytest.mark.slow
def test_throughput_bench_measures_fine_tuning_and_compiled_steps(tmp_path) -> None:
    # the GPU script runs these pipelines unattended on a lent machine: a broken one would waste the loan
    import json
    import subprocess

    out = tmp_path / "throughput.json"
    configs = ["ft:t5-tiny:fp32:input=64", "ours:t5-tiny:fp32:input=64:compile=1"]
    bench = Path(__file__).resolve().parents[2] / "bench" / "train_throughput.py"
    command = [sys.executable, str(bench), "--configs", *configs, "--steps", "3", "--warmup", "1", "--repeats", "1"]
    subprocess.run([*command, "--batch", "4", "--out", str(out)], check=True, capture_output=True, timeout=600)
    rows = {row["spec"]: row for row in json.loads(out.read_text())["summary"]}
    assert set(rows) == set(configs)
    for row in rows.values():
        assert row.get("error") is None
        assert row["step_seconds"] > 0 and 0 < row["mfu"] < 1.5  # the counted FLOPs, not a formula gone astray
        assert 0.9 < row["counted_flops_per_formula"] < 1.1
    runs = {run["spec"]: run for run in json.loads(out.read_text())["runs"]}
    # counting FLOPs inside a compiled step once made torch.compile fall back to eager, silently
    assert runs["ours:t5-tiny:fp32:input=64:compile=1"]["compiled"] is True
    assert runs["ft:t5-tiny:fp32:input=64"]["compiled"] is False
    # the run names the oneDNN kernel of a bf16 linear layer: where torch uses oneDNN for bf16, a bf16 or AMX one
    results = json.loads(out.read_text())
    kernels = results["onednn_bf16_kernels"]
    if results["machine_before"]["torch_sees"]["onednn_bf16"]:
        assert any("bf16" in kernel or "amx" in kernel for kernel in kernels), kernels
    from report import precision_table

    table = precision_table(out)
    assert all(f"| {spec} |" in table for spec in configs) and ", ".join(kernels or ["not recorded"]) in table
