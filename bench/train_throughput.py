"""Pre-training speed, side by side: t5lab's pipeline against the seed-style baseline, and variants.

Every configuration trains the same model on the same corpus (WikiText-2 raw, test split) for a few steps
in its own process, with the HF Trainer; configurations alternate over repeats (the machine is shared and
noisy) and the report gives medians. For each run it records:

- useful tokens/s: non-pad encoder inputs + non-pad (label != -100) targets per second of training;
- MFU: model FLOPs of the shapes processed (``common.t5_training_flops``) per second, divided by the
  torch.matmul peak measured in the same process just before training, in the same precision and threads;
- data wait: the share of step time spent between steps (fetching and collating the next batch);
- peak RSS of the process;
- the same rates per CPU second of the training process (scaled by its thread count): on a shared machine
  the neighbours take wall-clock time but not this process's CPU time, so these are the steadier figures.

    python bench/train_throughput.py --out bench/results/train_throughput.json            # the main table
    python bench/train_throughput.py --suite experiments --out bench/results/train_experiments.json

Configurations are strings ``pipeline:preset:precision[:option=value...]``; pipeline is ours (t5lab pre-training),
seed (the seed-style baseline) or ft (t5lab fine-tuning on the bundled t5lab/docsource task, inputs up to the input
length); precision is fp32, bf16 (autocast over fp32 weights, the Trainer's ``--bf16``) or bf16w (bf16 weights, no
fp32 copy); options: threads, procs (via torchrun, gloo), optim (a Trainer ``--optim``, or adamw_sr: torchao's
AdamW with bf16 stochastic rounding), attn (sdpa/eager), workers (dataloader workers), compile (torch.compile),
batch, input (input length), seed.

Each invocation gives its workers one fresh torch.compile cache (``TORCHINDUCTOR_CACHE_DIR``): with
``--repeats 2`` a compiled configuration's first repeat compiles from scratch and the second loads torch's
cached artefacts (FX graph and AOTAutograd caches), and ``first_step_seconds`` records both, from which the
break-even number of steps follows:

    python bench/train_throughput.py --suite compile --repeats 2 --out bench/results/compile.json

FLOPs are counted by torch's FlopCounterMode on one forward and backward pass of the first batch, before
training (the formula in ``common`` is checked against it and scaled to it). Each run also records its per-step
losses, which the precision-quality suite compares over 1,000 steps:

    python bench/train_throughput.py --suite precision --out bench/results/precision.json
    python bench/train_throughput.py --suite precision-levers --steps 8 --out bench/results/precision_levers.json
    python bench/train_throughput.py --suite precision-quality --steps 1000 --repeats 1 \
        --out bench/results/precision_quality.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SUITES = {
    # One thread per process: on a shared machine, CPU-time figures of a single thread are not skewed by
    # OpenMP threads spinning while their sibling is descheduled.
    "main": [
        "ours:t5-tiny:fp32",
        "seed:t5-tiny:fp32",
        "ours:t5-tiny:bf16",
        "seed:t5-tiny:bf16",
        "ours:t5-small:fp32:batch=4",
        "seed:t5-small:fp32:batch=4",
        "ours:t5-small:bf16:batch=4",
        "seed:t5-small:bf16:batch=4",
    ],
    "experiments": [
        "ours:t5-small:fp32:batch=4",
        "ours:t5-small:fp32:batch=4:attn=eager",
        "ours:t5-small:fp32:batch=4:optim=adamw_torch_fused",
        "ours:t5-small:fp32:batch=4:workers=1",
        "ours:t5-small:fp32:batch=4:compile=1",
        "ours:t5-small:fp32:batch=4:threads=2",
        "ours:t5-small:fp32:batch=4:procs=2",
    ],
    # Process/thread layouts on all cores: compare wall-clock tokens/s (alternated, same invocation).
    "layout": [
        "ours:t5-small:fp32:batch=4:threads=2",
        "ours:t5-small:fp32:batch=4:procs=2",
        "ours:t5-small:bf16:batch=4:threads=2",
        "ours:t5-small:bf16:batch=4:procs=2",
    ],
    # bf16 options side by side on the shape (t5-small, batch 8, 512/114, one thread)
    "precision": [
        "ours:t5-small:fp32",
        "ours:t5-small:bf16",
        "ours:t5-small:bf16w",
        "ours:t5-small:bf16w:optim=adamw_sr",
    ],
    # what else moves bf16 towards its matmul peak: eager attention (bf16 bmm instead of SDPA's math path), and
    # torch.compile (fuses the casts, softmax and norms left between the matmuls)
    "precision-levers": [
        "ours:t5-small:bf16",
        "ours:t5-small:bf16:attn=eager",
        "ours:t5-small:bf16:compile=1",
        "ours:t5-small:bf16w:optim=adamw_sr:attn=eager",
        "ours:t5-small:bf16w:optim=adamw_sr:compile=1",
        "ours:t5-small:bf16w:optim=adamw_sr:attn=eager:compile=1",
    ],
    # 1,000 steps of t5-tiny: the bf16 loss curves against fp32, and fp32 against itself (another seed) as the noise
    "precision-quality": [
        "ours:t5-tiny:fp32:input=128",
        "ours:t5-tiny:fp32:input=128:seed=1",
        "ours:t5-tiny:bf16:input=128",
        "ours:t5-tiny:bf16w:input=128",
        "ours:t5-tiny:bf16w:input=128:optim=adamw_sr",
    ],
    # torch.compile's time to the first step, cold and cached (--repeats 2), against its gain per step
    "compile": [
        "ours:t5-tiny:fp32:batch=32:input=128",
        "ours:t5-tiny:fp32:batch=32:input=128:compile=1",
        "ours:t5-small:fp32:batch=4",
        "ours:t5-small:fp32:batch=4:compile=1",
    ],
    # Not run yet (no GPU was available): t5-base pre-training on one GPU in bf16, with and without compile.
    # t5-base, nanoT5's batch 128 x 512/114 in bf16: the attention kernels, with torch.compile on and off
    "gpu": [
        "ours:t5-base:bf16:batch=128:workers=4",
        "ours:t5-base:bf16:batch=128:workers=4:compile=1",
        "ours:t5-base:bf16:batch=128:workers=4:attn=eager",
        "ours:t5-base:bf16:batch=128:workers=4:attn=flex_attention:compile=1",
        "ours:t5-base:bf16w:batch=128:workers=4:optim=adamw_sr:compile=1",
        # fine-tuning (t5lab/docsource, paragraphs up to 512 tokens, padded per batch to a multiple of 8)
        "ft:t5-base:bf16:batch=128:workers=4",
        "ft:t5-base:bf16:batch=128:workers=4:compile=1",
    ],
}


def parse_config(spec: str) -> dict:
    pipeline, preset, precision, *options = spec.split(":")
    config = {
        "spec": spec,
        "pipeline": pipeline,
        "preset": preset,
        "precision": precision,
        "threads": 1,
        "procs": 1,
        "optim": "adamw_torch",
        "attn": "sdpa",
        "workers": 0,
        "compile": 0,
        "batch": None,
        "input": 512,
        "seed": 0,
    }
    for option in options:
        key, value = option.split("=")
        config[key] = value if key in ("optim", "attn") else int(value)
    if pipeline == "seed" and "optim" not in spec:
        config["optim"] = "trainer_default"
    return config


def worker(config: dict, tokenizer_dir: str, steps: int, warmup: int, batch: int, result_path: str) -> None:
    """Train one configuration for ``steps`` steps and write its measurements (rank 0) to ``result_path``."""
    import torch

    torch.set_num_threads(config["threads"])
    from baselines.seed_style import SeedStyleCollator, tokenize_lines
    from common import corpus_lines, machine, matmul_peak_flops, peak_rss_mib, t5_training_flops
    from datasets import Dataset, disable_progress_bars
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback

    from t5lab.data.collators import PretrainingCollator
    from t5lab.data.objectives import Denoiser, objective_for_tokenizer
    from t5lab.data.packing import pack
    from t5lab.data.tokenizer import load_tokenizer
    from t5lab.models.presets import build_model
    from t5lab.training.arguments import T5LabTrainingArguments
    from t5lab.training.trainer import T5LabTrainer

    disable_progress_bars()
    dtype = torch.bfloat16 if config["precision"] in ("bf16", "bf16w") else torch.float32
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peak, peak_per_cpu_second = matmul_peak_flops(dtype, device)
    linear_peak, _ = matmul_peak_flops(dtype, device, op="linear")
    tokenizer = load_tokenizer(tokenizer_dir)
    lines = corpus_lines()
    torch.manual_seed(config["seed"])
    model = build_model(tokenizer, config_name=config["preset"])
    model.config._attn_implementation = config["attn"]
    if config["precision"] == "bf16w":
        model.to(torch.bfloat16)
    optimizer = None
    if config["optim"] == "adamw_sr":
        from torchao.optim import _AdamW

        optimizer = (_AdamW, {"lr": 1e-3, "weight_decay": 0.0, "bf16_stochastic_round": True})
    common_args = dict(
        per_device_train_batch_size=batch,
        max_steps=steps,
        report_to="none",
        save_strategy="no",
        logging_steps=10_000,
        disable_tqdm=True,
        bf16=config["precision"] == "bf16",
        weight_decay=0.0,
        use_cpu=device == "cpu",
        dataloader_num_workers=config["workers"],
        torch_compile=bool(config["compile"]),
        seed=config["seed"],
        learning_rate=1e-3,
    )
    out = tempfile.mkdtemp()
    optim_name = "adamw_torch" if optimizer else config["optim"]
    if config["pipeline"] == "ours":
        objective = objective_for_tokenizer([Denoiser("span")], config["input"], tokenizer)
        lengths = objective.lengths
        train = pack(Dataset.from_dict({"text": lines}), tokenizer, lengths.raw_length).with_format("numpy")
        collator = PretrainingCollator(objective, model.config.decoder_start_token_id)
        args = T5LabTrainingArguments(output_dir=out, optim=optim_name, **common_args)
        trainer_cls = T5LabTrainer
    elif config["pipeline"] == "ft":  # fine-tuning: a real task's examples, padded per batch as finetune does
        from t5lab.data.collators import FinetuneCollator
        from t5lab.tasks.bundled import write_docsource
        from t5lab.tasks.examples import load_examples, task_list, tokenize_examples

        task = task_list("t5lab/docsource")[0]
        examples = load_examples(task, ("train",), data_dir=str(write_docsource(out).parent))["train"]
        train = tokenize_examples(examples, tokenizer, config["input"], max_target_length=8)
        collator = FinetuneCollator(tokenizer, model=model, label_pad_token_id=-100, pad_to_multiple_of=8)
        args = T5LabTrainingArguments(output_dir=out, optim=optim_name, **common_args)
        trainer_cls = T5LabTrainer
    else:
        train = tokenize_lines(tokenizer, lines, 512, batch_size=batch)
        collator = SeedStyleCollator(
            vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id
        )
        extra = {} if config["optim"] == "trainer_default" else {"optim": config["optim"]}
        args = Seq2SeqTrainingArguments(output_dir=out, **common_args, **extra)
        trainer_cls = Seq2SeqTrainer

    record = {"begin": [], "end": [], "cpu_begin": [], "cpu_end": [], "useful": [], "shapes": [], "losses": []}

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            record["begin"].append(time.perf_counter())
            record["cpu_begin"].append(time.process_time())

        def on_step_end(self, args, state, control, **kwargs):
            if device == "cuda":
                torch.cuda.synchronize()
            record["end"].append(time.perf_counter())
            record["cpu_end"].append(time.process_time())

    class Measured(trainer_cls):
        def training_step(self, model, inputs, num_items_in_batch=None):
            record["useful"].append(
                int((inputs["input_ids"] != tokenizer.pad_token_id).sum() + (inputs["labels"] != -100).sum())
            )
            record["shapes"].append(
                (inputs["input_ids"].shape[0], inputs["input_ids"].shape[1], inputs["labels"].shape[1])
            )
            loss = super().training_step(model, inputs, num_items_in_batch)
            record["losses"].append(float(loss))
            return loss

    extra_args = {"optimizer_cls_and_kwargs": optimizer} if optimizer else {}
    trainer = Measured(
        model=model, args=args, train_dataset=train, data_collator=collator, callbacks=[Timer()], **extra_args
    )
    # FLOPs of one step, counted on the first batch before training: a FlopCounterMode active during the first
    # compiled call makes torch.compile fall back to eager for the whole run (seen with torch 2.13)
    first = {k: v.to(trainer.args.device) for k, v in next(iter(trainer.get_train_dataloader())).items()}
    with FlopCounterMode(display=False) as counter, torch.autocast(device, torch.bfloat16, enabled=args.bf16):
        model(**first).loss.backward()
    model.zero_grad(set_to_none=True)
    counted_shape = (first["input_ids"].shape[0], first["input_ids"].shape[1], first["labels"].shape[1])
    trainer.train()
    if not trainer.is_world_process_zero():
        return
    world = trainer.args.world_size
    begin, end = record["begin"][warmup:], record["end"][warmup:]
    wall = end[-1] - begin[0]
    cpu_begin, cpu_end = record["cpu_begin"][warmup:], record["cpu_end"][warmup:]
    cpu = cpu_end[-1] - cpu_begin[0]
    data_wait_cpu = sum(b - e for e, b in zip(cpu_end[:-1], cpu_begin[1:]))
    threads = torch.get_num_threads()
    data_wait = sum(b - e for e, b in zip(end[:-1], begin[1:]))
    useful = sum(record["useful"][warmup:]) * world
    # the formula per step, scaled to what FlopCounterMode counted on the first batch
    counted_per_formula = counter.get_total_flops() / t5_training_flops(model.config, *counted_shape)
    flops = sum(t5_training_flops(model.config, *shape) for shape in record["shapes"][warmup:]) * world
    flops *= counted_per_formula
    processed = sum(b * (i + t) for b, i, t in record["shapes"][warmup:]) * world
    n_params = sum(p.numel() for p in model.parameters())
    Path(result_path).write_text(
        json.dumps(
            {
                **config,
                "batch": batch,
                "world_size": world,
                "params": n_params,
                "measured_steps": len(begin),
                "step_seconds": wall / len(begin),
                # from the first step's start to its end: compilation happens here
                "first_step_seconds": record["end"][0] - record["begin"][0],
                "compiled": torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0,
                "useful_tokens_per_second": useful / wall,
                "processed_tokens_per_second": processed / wall,
                "useful_share": useful / processed,
                "achieved_flops": flops / wall,
                "matmul_peak_flops": peak * world,
                "mfu": flops / wall / (peak * world),
                "linear_peak_flops": linear_peak * world,
                "mfu_linear_peak": flops / wall / (linear_peak * world),
                "counted_flops_per_formula": counted_per_formula,
                "losses": record["losses"],
                "data_wait_share": data_wait / wall,
                # Per CPU second of this process, scaled to its threads: what the run does with the cores it gets.
                "useful_tokens_per_cpu_second_x_threads": useful / world / cpu * threads,
                "mfu_cpu_time": flops / world / cpu / peak_per_cpu_second,
                "data_wait_cpu_share": data_wait_cpu / cpu,
                "matmul_peak_flops_per_cpu_second": peak_per_cpu_second,
                "peak_rss_mib": peak_rss_mib(),
                "machine": machine(),
                "peak_gpu_memory_mib": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
            }
        )
    )


def run_config(
    config: dict, tokenizer_dir: str, steps: int, warmup: int, batch: int, timeout: float, compile_cache: str
) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        payload = json.dumps(config)
        env = dict(
            os.environ,
            OMP_NUM_THREADS=str(config["threads"]),
            TOKENIZERS_PARALLELISM="false",
            HF_HUB_OFFLINE="1",
            TORCHINDUCTOR_CACHE_DIR=compile_cache,
        )
        worker_args = [
            str(HERE / "train_throughput.py"),
            "--worker",
            payload,
            "--tokenizer_dir",
            tokenizer_dir,
            "--steps",
            str(steps),
            "--warmup",
            str(warmup),
            "--batch",
            str(batch),
            "--result",
            result.name,
        ]
        if config["procs"] > 1:
            command = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nproc_per_node",
                str(config["procs"]),
                "--master_port",
                "29517",
                *worker_args,
            ]
        else:
            command = [sys.executable, *worker_args]
        started = time.time()
        try:
            completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {**config, "error": f"did not finish within {timeout} s"}
        if completed.returncode != 0:
            print(f"{config['spec']} failed:\n{completed.stderr[-3000:]}", file=sys.stderr)
            return {
                **config,
                "error": completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else "failed",
            }
        measured = json.loads(Path(result.name).read_text())
        measured["process_seconds"] = round(time.time() - started, 1)
        return measured


def summarize(runs: list[dict]) -> list[dict]:
    import statistics

    rows = []
    for spec in dict.fromkeys(r["spec"] for r in runs):
        ok = [r for r in runs if r["spec"] == spec and "error" not in r]
        if not ok:
            rows.append({"spec": spec, "error": next(r["error"] for r in runs if r["spec"] == spec)})
            continue
        row = {"spec": spec, "params": ok[0]["params"], "batch": ok[0]["batch"], "repeats": len(ok)}
        for key in (
            "useful_tokens_per_second",
            "useful_tokens_per_cpu_second_x_threads",
            "processed_tokens_per_second",
            "useful_share",
            "mfu",
            "mfu_cpu_time",
            "achieved_flops",
            "matmul_peak_flops",
            "data_wait_share",
            "data_wait_cpu_share",
            "peak_rss_mib",
            "step_seconds",
            "mfu_linear_peak",
            "counted_flops_per_formula",
        ):
            row[key] = statistics.median(r[key] for r in ok)
        # the loss at the end of the run: mean of the last tenth of the steps (for the precision-quality suite)
        row["final_loss"] = statistics.median(
            statistics.mean(r["losses"][-max(1, len(r["losses"]) // 10) :]) for r in ok
        )
        # per repeat, not a median: a compiled configuration's first repeat compiles with an empty cache
        row["first_step_seconds"] = [r["first_step_seconds"] for r in ok]
        rows.append(row)
    by_spec = {r["spec"]: r for r in rows if "error" not in r}
    for row in rows:
        if "error" in row:
            continue
        twin = by_spec.get(row["spec"].replace("ours:", "seed:", 1)) if row["spec"].startswith("ours:") else None
        if twin:
            # Ratios from runs of the same repeat (A/B alternated), then the median.
            pairs = [
                (a, b)
                for a in runs
                for b in runs
                if a["spec"] == row["spec"]
                and b["spec"] == twin["spec"]
                and a.get("repeat") == b.get("repeat")
                and "error" not in a
                and "error" not in b
            ]
            for key in ("useful_tokens_per_second", "useful_tokens_per_cpu_second_x_threads"):
                row[f"{key}_vs_seed"] = statistics.median(a[key] / b[key] for a, b in pairs)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default="main")
    parser.add_argument("--configs", nargs="*", help="explicit configurations instead of a suite")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the measurements")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900, help="seconds per configuration")
    parser.add_argument("--out", default="bench/results/train_throughput.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer_dir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        config = json.loads(args.worker)
        worker(config, args.tokenizer_dir, args.steps, args.warmup, config.get("batch") or args.batch, args.result)
        return

    from common import bench_tokenizer, machine, onednn_kernels

    before = machine()
    # which oneDNN kernels a bf16 linear layer runs here (e.g. brg:avx512_core_amx): whether matmuls reach AMX
    kernels = onednn_kernels()
    specs = args.configs or SUITES[args.suite]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        bench_tokenizer(Path(tmp) / "tok")
        for repeat in range(args.repeats):
            for spec in specs:
                measured = run_config(
                    parse_config(spec),
                    str(Path(tmp) / "tok"),
                    args.steps,
                    args.warmup,
                    args.batch,
                    args.timeout,
                    str(Path(tmp) / "compile-cache"),
                )
                measured["repeat"] = repeat
                runs.append(measured)
                shown = {
                    k: measured.get(k)
                    for k in (
                        "useful_tokens_per_second",
                        "useful_tokens_per_cpu_second_x_threads",
                        "mfu",
                        "mfu_cpu_time",
                        "data_wait_share",
                        "peak_rss_mib",
                        "error",
                    )
                }
                print(spec, json.dumps(shown), flush=True)
                results = {
                    "machine_before": before,
                    "machine_after": machine(),
                    "onednn_bf16_kernels": kernels,
                    "settings": vars(args),
                    "summary": summarize(runs),
                    "runs": runs,
                }
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps(results, indent=2))
    for row in results["summary"]:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
