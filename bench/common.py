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
    flags = set()
    if Path("/proc/cpuinfo").exists():
        flags = next(
            (
                set(line.split(":", 1)[1].split())
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("flags")
            ),
            set(),
        )
    return {
        "cpu": cpu,
        # the instruction sets that decide the bf16 path: AMX tiles, AVX-512 bf16 dot products, or neither
        "cpu_flags": sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"}),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        # what torch itself detects and will use: oneDNN's bf16 kernels need AVX-512 (bf16 or AMX)
        "torch_sees": {
            "amx_tile": torch.cpu._is_amx_tile_supported(),
            "avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
            "onednn_bf16": torch.ops.mkldnn._is_mkldnn_bf16_supported(),
        },
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


def matmul_peak_flops(
    dtype: torch.dtype, device: str = "cpu", seconds: float = 1.5, op: str = "matmul"
) -> tuple[float, float]:
    """Measured FLOP/s of ``op`` (torch.matmul, or F.linear) on large square matrices in ``dtype``.

    Returns (per wall-clock second, per CPU second of this process). On a shared CPU the second one does
    not depend on how much of the machine the neighbours took while it ran. The two ops can take different
    kernels: on CPUs without AVX-512 torch's bf16 matmul is a plain loop while F.linear goes to oneDNN.
    """
    size = 8192 if device == "cuda" else 2048
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    run = torch.matmul if op == "matmul" else torch.nn.functional.linear
    run(a, b)  # warm-up
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    synchronize()
    calls, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds or calls == 0:
        run(a, b)
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


def onednn_kernels(dtype: torch.dtype = torch.bfloat16) -> list[str]:
    """The oneDNN kernels (implementation names, e.g. ``brg:avx512_core_amx``) that run a linear layer's forward
    and backward in ``dtype`` on this CPU, read from ONEDNN_VERBOSE in a child process; empty if oneDNN is
    not used for it. This is how a run shows whether its matmuls reach AMX."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        f"x = torch.randn(256, 512, dtype=torch.{str(dtype).removeprefix('torch.')}, requires_grad=True)\n"
        "layer = torch.nn.Linear(512, 512).to(x.dtype)\n"
        "with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):\n"
        "    layer(x).sum().backward()\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120).stdout
    kernels = set()
    for line in out.splitlines():
        fields = line.split(",")
        if line.startswith("onednn_verbose") and "exec" in fields and len(fields) > 6:
            kernels.add(f"{fields[fields.index('exec') + 2]}:{fields[fields.index('exec') + 3]}")
    return sorted(kernels)
