"""Shared pieces of the benchmarks: machine description, corpus, tokenizer, timing and FLOP counting."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

DATA = Path(os.environ.get("T5LAB_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
CORPUS = DATA / "corpus" / "wikitext-2-raw" / "wiki.test.raw"


def machine() -> dict:
    """What the figures were measured on, and how busy it was."""
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "loadavg": os.getloadavg(),
    }


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(function: Callable[[], object], repeats: int) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def corpus_lines(path: Path = CORPUS) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def bench_tokenizer(out_dir: Path, vocab_size: int = 8000):
    """A SentencePiece tokenizer trained on the benchmark corpus with t5lab (cached in ``out_dir``)."""
    from t5lab.data.tokenizer import load_tokenizer, save_tokenizer, train_tokenizer

    if not (out_dir / "tokenizer.json").is_file():
        save_tokenizer(train_tokenizer(iter(corpus_lines()), vocab_size, 100, 200_000), out_dir)
    return load_tokenizer(str(out_dir))


def matmul_peak_flops(dtype: torch.dtype, device: str = "cpu", seconds: float = 1.5) -> tuple[float, float]:
    """Measured torch.matmul FLOP/s on large square matrices in ``dtype`` (current thread setting).

    Returns (per wall-clock second, per CPU second of this process). On a shared CPU the second one does
    not depend on how much of the machine the neighbours took while it ran.
    """
    size = 8192 if device == "cuda" else 2048
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    torch.matmul(a, b)  # warm-up
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    synchronize()
    calls, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        torch.matmul(a, b)
        calls += 1
        synchronize()
    flops = 2 * size**3 * calls
    return flops / (time.perf_counter() - start), flops / (time.process_time() - cpu_start)


def t5_training_flops(config, batch: int, encoder_length: int, decoder_length: int) -> float:
    """Model FLOPs of one training step (forward + backward = 3 x forward) of a T5 encoder-decoder.

    Per layer and token, a matmul of [.., m] x [m, n] costs 2*m*n. With inner = heads * d_kv:
      encoder token:  q,k,v,o 4*2*d*inner + gated FFN 3*2*d*d_ff + scores and context 2*2*S_enc*inner
      decoder token:  self-attention 4*2*d*inner + 2*2*S_dec*inner (full square, as computed),
                      cross-attention q,o 2*2*d*inner + scores and context 2*2*S_enc*inner,
                      gated FFN 3*2*d*d_ff, and the output layer 2*d*vocab once per token
      encoder token (again, per decoder layer): cross-attention k,v 2*2*d*inner
    Embedding lookups, norms, softmax and the position bias are not counted (no matmuls).
    """
    d, d_ff, vocab = config.d_model, config.d_ff, config.vocab_size
    inner = config.num_heads * config.d_kv
    ffn_mult = 3 if "gated" in config.feed_forward_proj else 2
    s_e, s_d = encoder_length, decoder_length
    encoder = config.num_layers * s_e * (4 * 2 * d * inner + ffn_mult * 2 * d * d_ff + 2 * 2 * s_e * inner)
    decoder = (
        config.num_decoder_layers
        * (
            s_d
            * (
                4 * 2 * d * inner
                + 2 * 2 * s_d * inner
                + 2 * 2 * d * inner
                + 2 * 2 * s_e * inner
                + ffn_mult * 2 * d * d_ff
            )
            + s_e * 2 * 2 * d * inner
        )
        + s_d * 2 * d * vocab
    )
    return 3.0 * batch * (encoder + decoder)
