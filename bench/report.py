"""Markdown tables of the benchmark JSONs in bench/results/, as pasted into docs/benchmarks.md.

python bench/report.py [RESULTS_DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def training_table(path: Path) -> str:
    results = json.loads(path.read_text())
    lines = [
        f"`{path.name}`: load average {results['machine_before']['loadavg'][0]:.1f} before, "
        f"{results['machine_after']['loadavg'][0]:.1f} after; "
        f"{results['settings']['steps'] - results['settings']['warmup']} "
        f"measured steps per run, medians over {results['settings']['repeats']} repeat(s)\n",
        "| configuration | params | batch | useful tok/s (CPU-time based) | vs seed-style | useful share | "
        "MFU (CPU time) | useful tok/s (wall) | data wait | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["summary"]:
        if "error" in row:
            lines.append(f"| {row['spec']} | failed: {row['error']} |")
            continue
        ratio = row.get("useful_tokens_per_cpu_second_x_threads_vs_seed")
        lines.append(
            f"| {row['spec']} | {row['params'] / 1e6:.1f}M | {row['batch']} | "
            f"{row['useful_tokens_per_cpu_second_x_threads']:,.0f} | "
            f"{f'{ratio:.1f}x' if ratio else '-'} | {row['useful_share']:.0%} | {row['mfu_cpu_time']:.0%} | "
            f"{row['useful_tokens_per_second']:,.0f} | {row['data_wait_cpu_share']:.2%} | {row['peak_rss_mib']:,.0f} |"
        )
    return "\n".join(lines)


def masking_table(path: Path) -> str:
    results = json.loads(path.read_text())
    masking, data = results["masking"], results["tokenize_and_pack"]
    return "\n".join(
        [
            f"`{path.name}`: batch {results['settings']['batch']}, "
            f"{results['settings']['repeats']} alternated repeats, "
            f"load average {results['machine_before']['loadavg'][0]:.1f}\n",
            "| collator | ms per batch | positions/s | t5lab speed-up |",
            "|---|---|---|---|",
            f"| t5lab (568 raw -> 512/114) | {masking['ours']['batch_seconds_median'] * 1e3:.2f} | "
            f"{masking['ours']['positions_per_second']:,.0f} | - |",
            "| t5lab, first call after the baseline (cold caches) | "
            f"{masking['ours_first_call']['batch_seconds_median'] * 1e3:.2f} | "
            f"{masking['ours_first_call']['positions_per_second']:,.0f} | "
            f"{masking['first_call_speedup_vs_seed_full_rows']:.1f}x (vs full rows) |",
            "| seed-style, full 512-token rows | "
            f"{masking['seed_full_rows']['batch_seconds_median'] * 1e3:.2f} | "
            f"{masking['seed_full_rows']['positions_per_second']:,.0f} | {masking['speedup_vs_seed_full_rows']:.1f}x |",
            "| seed-style, corpus lines padded to 512 | "
            f"{masking['seed_corpus_lines']['batch_seconds_median'] * 1e3:.2f} | "
            f"{masking['seed_corpus_lines']['positions_per_second']:,.0f} | "
            f"{masking['speedup_vs_seed_corpus_lines']:.1f}x |",
            "",
            "| data path | corpus tokens/s | rows | padding |",
            "|---|---|---|---|",
            f"| t5lab tokenize + pack (568-token chunks) | {data['ours_pack_tokens_per_second']:,.0f} | "
            f"{data['ours_rows']} | 0% |",
            f"| seed-style tokenize, pad each line to 512 | {data['seed_tokenize_pad512_tokens_per_second']:,.0f} | "
            f"{data['seed_rows']} | {data['seed_padding_share']:.0%} |",
        ]
    )


def compile_table(path: Path) -> str:
    """torch.compile against eager, repeat by repeat: time to the first step, per-step cost, break-even steps."""
    results = json.loads(path.read_text())
    runs = [r for r in results["runs"] if "error" not in r]
    eager = {(r["spec"], r["repeat"]): r for r in runs if not r["compile"]}
    lines = [
        f"`{path.name}`: {results['settings']['steps'] - results['settings']['warmup']} measured steps per run, "
        f"load average {results['machine_before']['loadavg'][0]:.1f} before, "
        f"{results['machine_after']['loadavg'][0]:.1f} after\n",
        "| configuration | repeat (compile cache) | first step, eager | first step, compiled | s/step, eager | "
        "s/step, compiled | compiled vs eager (CPU time) | break-even steps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        twin = eager.get((run["spec"].replace(":compile=1", ""), run["repeat"]))
        if not run["compile"] or twin is None:
            continue
        speedup = run["useful_tokens_per_cpu_second_x_threads"] / twin["useful_tokens_per_cpu_second_x_threads"]
        saved = twin["step_seconds"] - run["step_seconds"]
        extra = run["first_step_seconds"] - twin["first_step_seconds"]
        lines.append(
            f"| {twin['spec']} | {run['repeat']} ({'cold' if run['repeat'] == 0 else 'cached'}) | "
            f"{twin['first_step_seconds']:.1f} s | {run['first_step_seconds']:.1f} s | {twin['step_seconds']:.2f} | "
            f"{run['step_seconds']:.2f} | {speedup:.2f}x | {f'{extra / saved:,.0f}' if saved > 0 else 'never'} |"
        )
    return "\n".join(lines)


def precision_table(path: Path) -> str:
    """bf16 options against fp32 (or the first row): speed, and the share of each precision's own matmul peak."""
    results = json.loads(path.read_text())
    rows = [r for r in results["summary"] if "error" not in r]
    reference = rows[0]
    machine = results["machine_before"]
    lines = [
        f"`{path.name}`: {machine['cpu']} ({', '.join(machine['cpu_flags'])}; oneDNN bf16 linear kernel: "
        f"{', '.join(results.get('onednn_bf16_kernels') or ['not recorded'])}), one thread, "
        f"{results['settings']['steps'] - results['settings']['warmup']} measured steps per run, medians over "
        f"{results['settings']['repeats']} repeat(s), load average {machine['loadavg'][0]:.1f} before, "
        f"{results['machine_after']['loadavg'][0]:.1f} after\n",
        f"| configuration | s/step | useful tok/s (CPU time) | vs {reference['spec']} | share of the matmul peak "
        "(CPU time) | matmul peak GFLOP/s | share of the `F.linear` peak |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        speed = row["useful_tokens_per_cpu_second_x_threads"]
        lines.append(
            f"| {row['spec']} | {row['step_seconds']:.2f} | {speed:,.0f} | "
            f"{speed / reference['useful_tokens_per_cpu_second_x_threads']:.2f}x | {row['mfu_cpu_time']:.0%} | "
            f"{row['matmul_peak_flops'] / 1e9:,.0f} | {row['mfu_linear_peak']:.0%} |"
        )
    return "\n".join(lines)


def moving_average(values: list[float], window: int = 50) -> list[float]:
    return [sum(values[i - window : i]) / window for i in range(window, len(values) + 1)]


def precision_quality_table(path: Path) -> str:
    """bf16 options against fp32 over the same steps, with fp32 under another seed as the noise; the loss curves
    (50-step moving averages) are drawn next to the JSON."""
    results = json.loads(path.read_text())
    runs = [r for r in results["runs"] if "error" not in r]
    final_loss = {row["spec"]: row["final_loss"] for row in results["summary"] if "error" not in row}
    reference = next(r for r in runs if r["precision"] == "fp32" and r["seed"] == 0)
    smooth_reference = moving_average(reference["losses"])
    lines = [
        f"`{path.name}`: {len(reference['losses'])} steps per run, batch {reference['batch']}, "
        f"{reference['input']} inputs, one thread\n",
        "| configuration | s/step | final loss (mean of the last tenth of the steps) | vs fp32 | "
        "mean gap to fp32's curve |",
        "|---|---|---|---|---|",
    ]
    for run in runs:
        gap = [abs(a - b) for a, b in zip(moving_average(run["losses"]), smooth_reference)]
        lines.append(
            f"| {run['spec']} | {run['step_seconds']:.2f} | {final_loss[run['spec']]:.3f} | "
            f"{final_loss[run['spec']] - final_loss[reference['spec']]:+.3f} | {sum(gap) / len(gap):.3f} |"
        )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for run in runs:
        ax.plot(range(50, len(run["losses"]) + 1), moving_average(run["losses"]), label=run["spec"], lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (50-step moving average)")
    ax.set_ylim(top=smooth_reference[0] + 0.5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=120)
    plt.close(fig)
    return "\n".join(lines)


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results")
    if (root / "masking_and_data.json").is_file():
        print(masking_table(root / "masking_and_data.json") + "\n")
    for name in ("train_throughput.json", "train_experiments.json", "train_layout.json"):
        if (root / name).is_file():
            print(training_table(root / name) + "\n")
    for path in sorted(root.glob("precision*.json")):
        if path.name != "precision_quality.json":
            print(precision_table(path) + "\n")
    if (root / "precision_quality.json").is_file():
        print(precision_quality_table(root / "precision_quality.json") + "\n")
    for path in sorted(root.glob("compile*.json")):
        print(compile_table(path) + "\n")


if __name__ == "__main__":
    main()
