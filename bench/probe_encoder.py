"""Linear probe: does a pre-trained encoder carry more SST-2 signal than the same model randomly initialised?

Fine-tuning results mix what the encoder knows with how easily it is moved. A logistic regression on the
frozen encoder's mean-pooled outputs isolates the first: a pre-training that helps should beat the random
twin here before it can help fine-tuning.

    python bench/probe_encoder.py runs/study/pretrained-1600steps [MORE_MODELS ...] --out bench/results/probe.json
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch
from common import DATA, machine
from sklearn.linear_model import LogisticRegression
from transformers import AutoTokenizer, T5ForConditionalGeneration


def read_sst2(path: Path, limit: int) -> tuple[list[str], np.ndarray]:
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1 : limit + 1]
    return [row[0] for row in rows], np.array([int(row[1]) for row in rows])


@torch.no_grad()
def encoder_features(model: T5ForConditionalGeneration, tokenizer, texts: list[str], batch: int = 64) -> np.ndarray:
    """Mean of the encoder's last hidden states over each input's tokens."""
    model.eval()
    features = []
    for start in range(0, len(texts), batch):
        encoded = tokenizer(
            ["sst2 sentence: " + text for text in texts[start : start + batch]],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=128,
        )
        hidden = model.encoder(**encoded).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1).float()
        features.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
    return np.concatenate(features)


def probe_accuracy(train: np.ndarray, train_labels: np.ndarray, dev: np.ndarray, dev_labels: np.ndarray) -> float:
    mean, std = train.mean(0), train.std(0) + 1e-6
    classifier = LogisticRegression(max_iter=5000).fit((train - mean) / std, train_labels)
    return float(classifier.score((dev - mean) / std, dev_labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="pre-trained model dirs (each with its tokenizer)")
    parser.add_argument("--glue_dir", default=str(DATA / "glue"))
    parser.add_argument("--train_examples", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random twin")
    parser.add_argument("--out", default="bench/results/probe_encoder.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train_texts, train_labels = read_sst2(Path(args.glue_dir) / "SST-2" / "train.tsv", args.train_examples)
    dev_texts, dev_labels = read_sst2(Path(args.glue_dir) / "SST-2" / "dev.tsv", 10_000)
    results = []
    for directory in args.models:
        tokenizer = AutoTokenizer.from_pretrained(directory)
        pretrained = T5ForConditionalGeneration.from_pretrained(directory)
        torch.manual_seed(args.seed)
        twin = T5ForConditionalGeneration(pretrained.config)
        for init, model in (("pre-trained", pretrained), ("random twin", twin)):
            accuracy = probe_accuracy(
                encoder_features(model, tokenizer, train_texts),
                train_labels,
                encoder_features(model, tokenizer, dev_texts),
                dev_labels,
            )
            results.append({"model": directory, "init": init, "probe_dev_accuracy": accuracy})
            print(f"{directory} ({init}): SST-2 dev accuracy of a linear probe {accuracy:.3f}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    settings = {**vars(args), "glue_dir": Path(args.glue_dir).name}  # no machine paths in stored results
    Path(args.out).write_text(json.dumps({"machine": machine(), "settings": settings, "results": results}, indent=2))


if __name__ == "__main__":
    main()
