"""Load a T5 tokenizer, or train a SentencePiece unigram one with T5's special ids.

A trained tokenizer has T5's layout: ``<pad>``=0, ``</s>``=1, ``<unk>``=2, the learned pieces, then the
sentinels in reverse so that ``<extra_id_0>`` has the highest id. It is saved so that
``AutoTokenizer.from_pretrained(dir)`` gives back the same ids. Two transformers 5 traps are avoided:
``T5Tokenizer(vocab_file=...)`` ignores the file, and adding sentinels through ``tokenizers`` numbers them
ascending; here the vocabulary list is built explicitly from the SentencePiece model.
"""

from __future__ import annotations

import io
import os
import shutil
import string
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2
from transformers import AutoTokenizer, PreTrainedTokenizerBase, T5Tokenizer

from t5lab.data.hub import is_offline
from t5lab.errors import ConfigError

SPECIAL_PIECES = ("<pad>", "</s>", "<unk>")
REQUIRED_CHARS = "".join(c for c in string.printable if not c.isspace())


def _nonempty_lines(texts: Iterable[str], limit: int) -> Iterator[str]:
    count = 0
    for text in texts:
        for line in text.splitlines():
            line = line.strip()
            if line:
                yield line
                count += 1
                if count >= limit:
                    return


def train_tokenizer(
    texts: Iterable[str], vocab_size: int, num_sentinels: int = 100, max_sentences: int = 200_000
) -> PreTrainedTokenizerBase:
    """Train a SentencePiece unigram tokenizer with T5's special ids and ``num_sentinels`` sentinels.

    ``vocab_size`` counts everything (specials, pieces and sentinels). On a corpus too small for that many
    pieces the vocabulary is smaller; the model takes its size from ``len(tokenizer)``.
    """
    num_pieces = vocab_size - num_sentinels
    if num_pieces < 100:
        raise ConfigError(
            f"--vocab_size {vocab_size} leaves too few pieces after {num_sentinels} sentinels; "
            f"use >= {num_sentinels + 100}."
        )
    model_bytes = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=_nonempty_lines(texts, max_sentences),
            model_writer=model_bytes,
            model_type="unigram",
            vocab_size=num_pieces,
            hard_vocab_limit=False,
            pad_id=0,
            eos_id=1,
            unk_id=2,
            bos_id=-1,
            pad_piece="<pad>",
            eos_piece="</s>",
            unk_piece="<unk>",
            character_coverage=0.9995,
            # Rare ASCII (e.g. "_" in label words such as not_entailment) must not become <unk>, which
            # decoding drops: a generated label would never parse back.
            required_chars=REQUIRED_CHARS,
            normalization_rule_name="nmt_nfkc",
            max_sentence_length=16384,
            num_threads=os.cpu_count() or 1,
            minloglevel=2,
        )
    except RuntimeError as exc:
        raise ConfigError(f"tokenizer training failed: {str(exc).splitlines()[-1]}") from None
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model_bytes.getvalue())
    return _t5_tokenizer_from_proto(proto, num_sentinels)


def _t5_tokenizer_from_proto(proto: sentencepiece_model_pb2.ModelProto, num_sentinels: int) -> PreTrainedTokenizerBase:
    vocab = [(piece.piece, piece.score) for piece in proto.pieces]
    if tuple(p for p, _ in vocab[:3]) != SPECIAL_PIECES:
        raise ValueError(f"SentencePiece model must start with {SPECIAL_PIECES}")
    sentinels = [f"<extra_id_{i}>" for i in range(num_sentinels)]
    vocab += [(token, 0.0) for token in reversed(sentinels)]
    tokenizer = T5Tokenizer(
        vocab=vocab,
        extra_ids=num_sentinels,
        additional_special_tokens=sentinels,
        _spm_precompiled_charsmap=proto.normalizer_spec.precompiled_charsmap or None,
        model_max_length=1_000_000,
    )
    tokenizer._t5lab_sentencepiece = proto.SerializeToString()  # saved beside tokenizer.json by save_tokenizer
    return tokenizer


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, output_dir: str | Path) -> None:
    """Save in HF format (plus ``spiece.model`` for a trained tokenizer, for SentencePiece users).

    Written to a temp folder first and moved in with ``tokenizer.json`` last: a run killed while saving leaves
    no tokenizer.json, so its rerun trains the tokenizer again instead of loading half a file.
    """
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    for leftover in output.glob(".tokenizer-*"):  # from a save that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=output, prefix=".tokenizer-"))
    try:
        tokenizer.save_pretrained(str(staging))
        model = getattr(tokenizer, "_t5lab_sentencepiece", None)
        if model is not None:
            (staging / "spiece.model").write_bytes(model)
        for path in sorted(staging.iterdir(), key=lambda p: p.name == "tokenizer.json"):
            os.replace(path, output / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_tokenizer(
    name_or_path: str, cache_dir: str | None = None, revision: str = "main", trust_remote_code: bool = False
) -> PreTrainedTokenizerBase:
    """Load any T5 tokenizer (hub id or local dir)."""
    looks_local = os.path.isabs(name_or_path) or name_or_path.startswith((".", "~")) or name_or_path.count("/") > 1
    if looks_local and not os.path.isdir(os.path.expanduser(name_or_path)):
        raise ConfigError(
            f"{name_or_path} is not a directory holding a model or tokenizer (hub ids look like "
            "org/name); check the path given to --model_name_or_path or --tokenizer_name."
        )
    try:
        return AutoTokenizer.from_pretrained(
            name_or_path, cache_dir=cache_dir, revision=revision, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as exc:
        offline = " (the hub is offline here: HF_HUB_OFFLINE is set)" if is_offline() else ""
        raise ConfigError(f"cannot load tokenizer '{name_or_path}'{offline}: {str(exc).splitlines()[0]}") from None


def sentinel_ids(tokenizer: PreTrainedTokenizerBase) -> np.ndarray:
    """Ids of ``<extra_id_0>``, ``<extra_id_1>``, ... in order; a tokenizer without them is an error."""
    vocab = tokenizer.get_vocab()
    ids = []
    while f"<extra_id_{len(ids)}>" in vocab:
        ids.append(vocab[f"<extra_id_{len(ids)}>"])
    if not ids:
        raise ConfigError(
            "the tokenizer has no <extra_id_N> sentinel tokens, which span corruption needs; "
            "use a T5 tokenizer or --tokenizer_name train."
        )
    if tokenizer.eos_token_id is None:
        raise ConfigError("the tokenizer has no EOS token; use a T5 tokenizer or --tokenizer_name train.")
    return np.asarray(ids, dtype=np.int64)


def add_mode_tokens(tokenizer: PreTrainedTokenizerBase, tokens: list[str]) -> int:
    """Add UL2's mode tokens (``[NLU]``, ``[NLG]``, ``[S2S]``) as special tokens, never split or lower-cased;
    tokens already present keep their ids, so a resumed run gets the same ids. Returns how many were added."""
    return tokenizer.add_tokens(tokens, special_tokens=True) if tokens else 0
