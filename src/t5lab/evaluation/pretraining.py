"""Is a pre-training run learning something transferable? Figures that answer it during the run.

Span-corruption loss alone cannot tell a model that reads its encoder from one that has only learned the
corpus's unigram distribution plus where sentinels go: both lower the loss. These figures can:

- ``encoder_gain``: the loss when each row's decoder gets ANOTHER row's encoder inputs (the batch rolled by
  one row) minus the true loss, in nats per target token. Near 0: the decoder ignores its encoder, which then
  gets little learning signal. It grows as the model learns to fill spans from their context.
- ``noise_loss`` / ``sentinel_loss``: the loss on the hidden tokens and on the sentinels and EOS separately
  (sentinels are predictable from their position alone, so they flatter the total).
- ``noise_unigram_loss``: the cross-entropy of the same noise tokens under the corpus's unigram distribution,
  the reference line a model must go below to be using any context.
- ``encoder_collapse``: mean pairwise cosine of encoder token states and their effective rank (Roy & Vetterli
  2007); a collapsed encoder (high cosine, low rank) gives fine-tuning little to work with.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

# Below this the decoder hardly uses its encoder; above USES it clearly (nats per target token).
ENCODER_GAIN_WEAK = 0.1
ENCODER_GAIN_USED = 0.5

# The figures PretrainingDiagnostics.metrics() can report (each absent when nothing was counted).
DIAGNOSTIC_METRICS = ("encoder_gain", "noise_loss", "noise_unigram_loss", "sentinel_loss")


def unigram_log_probs(token_batches: Iterable[np.ndarray], vocab_size: int) -> torch.Tensor:
    """Log-probabilities of each token id in a corpus (add-one smoothed), from batches of token ids."""
    counts = np.ones(vocab_size, dtype=np.float64)
    for tokens in token_batches:
        counts += np.bincount(np.asarray(tokens, dtype=np.int64).ravel(), minlength=vocab_size)[:vocab_size]
    return torch.from_numpy(np.log(counts / counts.sum())).float()


def dataset_unigram_log_probs(
    dataset: Any, vocab_size: int, max_rows: int = 20_000, batch_rows: int = 2_000
) -> torch.Tensor:
    """:func:`unigram_log_probs` over the ``input_ids`` of the first ``max_rows`` rows of a packed dataset
    (a map-style dataset, or a streamed one, whose head is read)."""
    if not hasattr(dataset, "__len__"):
        head = itertools.islice(iter(dataset), max_rows)
        return unigram_log_probs((np.asarray(row["input_ids"]) for row in head), vocab_size)
    rows = min(len(dataset), max_rows)
    batches = (
        np.asarray(dataset[start : min(start + batch_rows, rows)]["input_ids"]) for start in range(0, rows, batch_rows)
    )
    return unigram_log_probs(batches, vocab_size)


@dataclass
class PretrainingDiagnostics:
    """Running sums over evaluation batches of span-corrupted examples; :meth:`metrics` turns them into means.

    ``sentinel_floor`` is the smallest sentinel id: target tokens at or above it, and EOS, are the
    "sentinel" class; every other labelled token is noise (a hidden corpus token).
    """

    sentinel_floor: int
    eos_token_id: int
    unigram_log_probs: torch.Tensor | None = None
    sums: dict[str, float] = field(default_factory=dict)

    def reset(self) -> None:
        self.sums = {}

    def _add(self, name: str, value: torch.Tensor | float) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + float(value)

    @torch.no_grad()
    def update(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor], logits: torch.Tensor | None = None
    ) -> None:
        """Add one batch; ``logits`` of the true inputs may be passed to save a forward pass."""
        labels = batch["labels"]
        if logits is None:
            logits = model(**batch).logits
        token_loss = _token_losses(logits, labels)
        labelled = labels != -100
        sentinel = labelled & ((labels >= self.sentinel_floor) | (labels == self.eos_token_id))
        noise = labelled & ~sentinel
        self._add("tokens", labelled.sum())
        self._add("loss", token_loss[labelled].sum())
        self._add("noise_tokens", noise.sum())
        self._add("noise_loss", token_loss[noise].sum())
        self._add("sentinel_tokens", sentinel.sum())
        self._add("sentinel_loss", token_loss[sentinel].sum())
        if self.unigram_log_probs is not None:
            table = self.unigram_log_probs.to(labels.device)
            self._add("noise_unigram_loss", -table[labels[noise]].sum())
        if labels.shape[0] > 1:  # rolling needs a second row to borrow inputs from
            rolled = {k: v for k, v in batch.items() if k not in ("labels", "input_ids", "attention_mask")}
            rolled_logits = model(
                input_ids=batch["input_ids"].roll(1, dims=0),
                attention_mask=batch["attention_mask"].roll(1, dims=0),
                labels=labels,
                **rolled,
            ).logits
            self._add("rolled_tokens", labelled.sum())
            self._add(
                "rolled_loss_gain", _token_losses(rolled_logits, labels)[labelled].sum() - token_loss[labelled].sum()
            )

    def merge(self, other_sums: Sequence[dict[str, float]]) -> None:
        """Add the sums of other processes (gathered by the caller)."""
        for sums in other_sums:
            for name, value in sums.items():
                self._add(name, value)

    def metrics(self) -> dict[str, float]:
        """Means per target token, in nats; absent when nothing was counted."""
        s = self.sums
        out: dict[str, float] = {}
        if s.get("rolled_tokens"):
            out["encoder_gain"] = s["rolled_loss_gain"] / s["rolled_tokens"]
        if s.get("noise_tokens"):
            out["noise_loss"] = s["noise_loss"] / s["noise_tokens"]
            if "noise_unigram_loss" in s:
                out["noise_unigram_loss"] = s["noise_unigram_loss"] / s["noise_tokens"]
        if s.get("sentinel_tokens"):
            out["sentinel_loss"] = s["sentinel_loss"] / s["sentinel_tokens"]
        return {k: round(v, 4) for k, v in out.items()}


def _token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every target position (0 where the label is -100), shape [batch, length]."""
    return F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=-100, reduction="none")


def describe_encoder_gain(gain: float | None) -> str:
    """One sentence for the end of a run."""
    if gain is None:
        return "encoder use not measured (evaluation batches of one row)"
    if gain >= ENCODER_GAIN_USED:
        return f"the model uses its encoder: +{gain:.2f} nats per target token with the true inputs"
    if gain >= ENCODER_GAIN_WEAK:
        return f"the model barely uses its encoder yet: +{gain:.2f} nats per target token"
    return f"the model does not use its encoder yet: {gain:+.2f} nats per target token"


@torch.no_grad()
def encoder_collapse(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    max_length: int = 128,
    batch_size: int = 32,
    max_tokens: int = 4096,
) -> dict[str, float]:
    """Mean pairwise cosine similarity of encoder token states and their effective rank.

    Token states of the non-padding positions of ``texts`` (up to ``max_tokens``) are collected from the
    encoder's last layer; see :func:`collapse_statistics`.
    """
    model.eval()
    states = []
    collected = 0
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(
            list(texts[start : start + batch_size]),
            max_length=max_length,
            truncation=True,
            padding=True,
            return_tensors="pt",
        )
        enc = {k: v.to(model.device) for k, v in enc.items()}
        hidden = model.get_encoder()(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        states.append(hidden[enc["attention_mask"].bool()].float().cpu())
        collected += states[-1].shape[0]
        if collected >= max_tokens:
            break
    if not states:
        return {}
    return collapse_statistics(torch.cat(states)[:max_tokens])


def collapse_statistics(states: torch.Tensor) -> dict[str, float]:
    """Mean pairwise cosine (self-pairs excluded) and effective rank of token states ``[tokens, dim]``.

    Effective rank = exp(entropy of the normalised singular values) (Roy & Vetterli 2007): ``dim`` for
    isotropic states, 1 for states that all point one way.
    """
    states = states.float()
    unit = F.normalize(states, dim=-1)
    n = unit.shape[0]
    total = unit.sum(0)
    mean_cosine = float((total @ total - n) / (n * (n - 1))) if n > 1 else 1.0
    singular = torch.linalg.svdvals(states)
    p = singular / singular.sum()
    effective_rank = float(torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()))
    return {
        "mean_token_cosine": round(mean_cosine, 4),
        "effective_rank": round(effective_rank, 1),
        "tokens": n,
        "dimensions": states.shape[1],
    }
