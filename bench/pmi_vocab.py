"""Build time and peak memory of the PMI vocabulary of the 10M-word Gutenberg corpus (what `t5lab pmi build` does).

    OMP_NUM_THREADS=1 nice -n 5 python bench/pmi_vocab.py [CORPUS] --tokenizer_name runs/tok-gut-8k

Reads the corpus through t5lab's corpus machinery, as the command does; without --tokenizer_name an 8k tokenizer
is trained on the corpus first (not timed). Writes the figures to bench/results/pmi_vocab.json and the
vocabulary to --vocab_out.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from t5lab.data.pipeline import Corpus, corpus_texts
from t5lab.data.pmi import NgramCounts, write_pmi_vocab
from t5lab.data.tokenizer import load_tokenizer, save_tokenizer, train_tokenizer

DATA = Path(os.environ.get("T5LAB_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
GUTENBERG = DATA / "corpus" / "gutenberg-10M" / "train.txt"


def cpu_model() -> str:
    """lscpu's model name (the machine the figures were measured on)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    names = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")]
    return names[0] if names else "unknown"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", default=str(GUTENBERG))
    parser.add_argument(
        "--tokenizer_name",
        default=None,
        help="Tokenizer dir, e.g. runs/tok-gut-8k (default: an 8k one trained on the corpus first).",
    )
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--min_count", type=int, default=10)
    parser.add_argument("--max_n", type=int, default=5)
    parser.add_argument("--vocab_out", default="runs/pmi-gut-8k.txt")
    parser.add_argument("--out", default="bench/results/pmi_vocab.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.tokenizer_name:
            tokenizer_name = args.tokenizer_name
        else:
            tokenizer_name = tmp
            lines = Path(args.corpus).read_text(encoding="utf-8").splitlines()
            save_tokenizer(train_tokenizer(lines, 8000, 100, 200_000), tmp)
            del lines
        tokenizer = load_tokenizer(tokenizer_name)
        rss_before = peak_rss_mb()
        start = time.perf_counter()
        texts = corpus_texts(Corpus(train_file=args.corpus), seed=42, cache_dir=str(Path(tmp) / "hf"), limit=None)
        counts = NgramCounts(texts, tokenizer, args.max_n, args.min_count)
        counted = time.perf_counter()
        ngrams = counts.top(args.size)
        write_pmi_vocab(ngrams, args.vocab_out)
        end = time.perf_counter()
    result = {
        "corpus": str(Path(args.corpus).resolve()),
        "tokenizer": tokenizer_name if args.tokenizer_name else "8k, trained on the corpus",
        "vocab_size": len(tokenizer),
        "size": args.size,
        "min_count": args.min_count,
        "max_n": args.max_n,
        "minutes": round((end - start) / 60, 2),
        "minutes_read_tokenize_count": round((counted - start) / 60, 2),
        "minutes_score_write": round((end - counted) / 60, 3),
        "peak_rss_mb": round(peak_rss_mb()),
        "peak_rss_mb_before_build": round(rss_before),
        "words": counts.words,
        "lines": counts.lines,
        "positions": dict(zip(range(1, args.max_n + 1), counts.positions)),
        "frequent_ngrams": dict(zip(range(1, args.max_n + 1), counts.frequent)),
        "ngrams_per_length": {n: sum(1 for g in ngrams if g.n == n) for n in range(2, args.max_n + 1)},
        "top20": [{"text": g.text, "n": g.n, "count": g.count, "pmi": round(g.pmi, 4)} for g in ngrams[:20]],
        "vocab_file": args.vocab_out,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "threads": {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "RAYON_NUM_THREADS")},
        "nice": os.nice(0),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "top20"}, indent=2, ensure_ascii=False))
    for g in ngrams[:20]:
        print(f"{g.pmi:8.3f} {g.count:8,}  {g.text}")


if __name__ == "__main__":
    main()
