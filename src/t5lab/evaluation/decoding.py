"""Turning a model's outputs into text predictions: generation, or rank classification over label words."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.modeling_outputs import BaseModelOutput


def decode(tokenizer: PreTrainedTokenizerBase, ids: Sequence[Sequence[int]]) -> list[str]:
    """Generated ids -> stripped strings (pads, -100 and special tokens removed)."""
    cleaned = [[int(i) for i in row if int(i) >= 0] for row in ids]
    return [text.strip() for text in tokenizer.batch_decode(cleaned, skip_special_tokens=True)]


@torch.no_grad()
def rank_classify(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    input_ids: Sequence[Sequence[int]],
    label_words: Sequence[str],
    batch_size: int = 32,
) -> list[str]:
    """Pick, for each input, the label word with the highest total log-likelihood under the model.

    Never produces an invalid prediction: the answer is always one of ``label_words``.
    """
    model.eval()
    device = model.device
    encoded = tokenizer(list(label_words), padding=True, return_tensors="pt")
    label_ids = encoded["input_ids"].to(device)  # [K, T], EOS included, as in fine-tuning targets
    label_mask = encoded["attention_mask"].to(device)
    num_labels = len(label_words)
    choices: list[str] = []
    for start in range(0, len(input_ids), batch_size):
        rows = [list(r) for r in input_ids[start : start + batch_size]]
        batch = tokenizer.pad({"input_ids": rows}, return_tensors="pt").to(device)
        encoder_outputs = model.get_encoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        hidden = encoder_outputs.last_hidden_state.repeat_interleave(num_labels, dim=0)
        attention = batch["attention_mask"].repeat_interleave(num_labels, dim=0)
        labels = label_ids.repeat(len(rows), 1)
        logits = model(
            encoder_outputs=BaseModelOutput(last_hidden_state=hidden), attention_mask=attention, labels=labels
        ).logits
        token_logprobs = torch.log_softmax(logits.float(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        scores = (token_logprobs * label_mask.repeat(len(rows), 1)).sum(-1).view(len(rows), num_labels)
        choices.extend(label_words[i] for i in scores.argmax(dim=-1).tolist())
    return choices


def unspellable(tokenizer: PreTrainedTokenizerBase, words: Sequence[str]) -> list[str]:
    """The words that come back different after encoding and decoding: generation can never produce them."""
    return [w for w in words if decode(tokenizer, [tokenizer(w)["input_ids"]])[0] != w]
