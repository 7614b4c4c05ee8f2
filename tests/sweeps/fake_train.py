"""A stand-in trial program for sweep tests: logs an evaluation of --x per step as the Trainer does
(metrics.jsonl), then writes eval_results.json. Starts in milliseconds, so runner tests stay fast.
$FAKE_PAUSE (seconds before each evaluation) overrides --pause, so a test can slow down one run of a sweep."""

import argparse
import json
import os
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--output_dir", required=True)
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--crash_above", type=float)
parser.add_argument("--evals", type=int, default=2)
parser.add_argument("--pause", type=float, default=0.0)
args = parser.parse_args()
output_dir = Path(args.output_dir)
output_dir.mkdir(parents=True, exist_ok=True)
if args.crash_above is not None and args.x > args.crash_above:
    sys.exit("training diverged: loss is nan")
for step in range(1, args.evals + 1):
    time.sleep(float(os.environ.get("FAKE_PAUSE", args.pause)))
    with (output_dir / "metrics.jsonl").open("a") as log:
        log.write(json.dumps({"step": step, "eval_score": args.x}) + "\n")
(output_dir / "eval_results.json").write_text(json.dumps({"eval_score": args.x, "eval_loss": 1.0 - args.x}))
