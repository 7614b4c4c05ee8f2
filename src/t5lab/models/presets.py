"""T5 v1.1 model presets and model construction.

Presets follow T5 v1.1: gated-GELU feed-forward, untied input embedding and output layer, no dropout
during pre-training. The vocabulary size comes from the tokenizer.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch
from transformers import AutoConfig, PreTrainedTokenizerBase, T5Config, T5ForConditionalGeneration

from t5lab.data.hub import is_offline
from t5lab.errors import ConfigError

# The preset of a new model when neither --model_name_or_path nor --config_name is given.
DEFAULT_PRESET = "t5-tiny"

# One table of sizes. Parameters with T5's 32,128-row vocabulary: tiny 6.1M, mini 17.7M, small 60.5M,
# base 223M, large 750M (embeddings and output layer are 2 x vocab x d_model of that).
PRESETS: dict[str, dict[str, int]] = {
    "t5-tiny": dict(d_model=128, d_ff=384, num_layers=4, num_decoder_layers=4, num_heads=4, d_kv=32),
    "t5-mini": dict(d_model=256, d_ff=1024, num_layers=4, num_decoder_layers=4, num_heads=4, d_kv=64),
    "t5-small": dict(d_model=512, d_ff=1024, num_layers=8, num_decoder_layers=8, num_heads=6, d_kv=64),
    "t5-base": dict(d_model=768, d_ff=2048, num_layers=12, num_decoder_layers=12, num_heads=12, d_kv=64),
    "t5-large": dict(d_model=1024, d_ff=2816, num_layers=24, num_decoder_layers=24, num_heads=16, d_kv=64),
}
VOCAB_MULTIPLE = 128  # pad the embedding rows to a multiple of 128 for faster matmuls (as t5's 32128)


def padded_vocab_size(tokenizer: PreTrainedTokenizerBase) -> int:
    """``len(tokenizer)`` rounded up to a multiple of 128."""
    return -(-len(tokenizer) // VOCAB_MULTIPLE) * VOCAB_MULTIPLE


def preset_config(name: str, tokenizer: PreTrainedTokenizerBase, dropout_rate: float = 0.0) -> T5Config:
    """The T5Config of a preset, sized for ``tokenizer``."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'; available: {', '.join(PRESETS)}.")
    return T5Config(
        **PRESETS[name],
        vocab_size=padded_vocab_size(tokenizer),
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        dropout_rate=dropout_rate,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )


def new_model(config: T5Config) -> T5ForConditionalGeneration:
    """A randomly initialised model; T5 v1.1-style configs get an untied, correctly scaled output layer.

    transformers 5 forces ``tie_word_embeddings=True`` on every T5Config (keeping the v1.1 flag only as
    ``scale_decoder_outputs=False``), so a v1.1 model built from a config would tie its output layer to the
    unit-variance embedding without the d_model**-0.5 rescaling: logits of std ~sqrt(d_model) and a first
    loss near 60 instead of ln(vocab). Here the output layer is untied (encoder and decoder still share one
    embedding) and drawn with std d_model**-0.5, so initial logits have unit scale.
    """
    v1_1 = not getattr(config, "scale_decoder_outputs", True)
    if v1_1:
        config.tie_word_embeddings = False
    model = T5ForConditionalGeneration(config)
    if v1_1:
        model.set_input_embeddings(model.shared)
        with torch.no_grad():
            model.lm_head.weight.normal_(mean=0.0, std=config.d_model**-0.5)
    return model


def set_dropout(model: T5ForConditionalGeneration, rate: float) -> None:
    """Set every dropout layer of ``model`` (and its config, so that it is saved) to ``rate``."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = rate
    model.config.dropout_rate = rate


class _UntiedOnPurpose(logging.Filter):
    """Drops transformers' "will NOT tie them" warning, which it gives for every T5 v1.1 checkpoint (untied input
    embedding and output layer, ``tie_word_embeddings: false``) because T5's class declares the tie regardless."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "so we will NOT tie them" not in record.getMessage()


@contextlib.contextmanager
def _quiet_intended_untie(untied: bool) -> Iterator[None]:
    logger = logging.getLogger("transformers.modeling_utils")
    quiet = _UntiedOnPurpose()
    if untied:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def build_model(
    tokenizer: PreTrainedTokenizerBase,
    model_name_or_path: str | None = None,
    config_name: str | None = None,
    cache_dir: str | None = None,
    revision: str = "main",
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
    for_training: bool = True,
) -> T5ForConditionalGeneration:
    """A model from a checkpoint (hub id or dir), or randomly initialised from a preset or an HF config.

    ``attn_implementation`` (sdpa, eager, flex_attention) replaces transformers' default (sdpa for T5).
    """
    if attn_implementation == "flex_attention" and for_training and not torch.cuda.is_available():
        raise ConfigError(
            f"--attn_implementation flex_attention cannot train on CPU (torch {torch.__version__} has no CPU "
            "backward pass for it); use sdpa (the default) or eager, or train on a GPU."
        )
    if model_name_or_path:
        try:
            # the file's value: T5Config reports True whatever config.json says
            saved, _ = T5Config.get_config_dict(model_name_or_path, cache_dir=cache_dir, revision=revision)
            with _quiet_intended_untie(saved.get("tie_word_embeddings") is False):
                model = T5ForConditionalGeneration.from_pretrained(
                    model_name_or_path,
                    cache_dir=cache_dir,
                    revision=revision,
                    trust_remote_code=trust_remote_code,
                    use_safetensors=None,
                )
        except (OSError, ValueError) as exc:
            offline = " (the hub is offline here: HF_HUB_OFFLINE is set)" if is_offline() else ""
            raise ConfigError(
                f"cannot load model '{model_name_or_path}'{offline}: {str(exc).splitlines()[0]}"
            ) from None
        if model.config.vocab_size < len(tokenizer):
            raise ConfigError(
                f"the tokenizer has {len(tokenizer)} tokens but model '{model_name_or_path}' only "
                f"{model.config.vocab_size} embeddings; use the tokenizer the model was trained with."
            )
    else:
        name = config_name or DEFAULT_PRESET
        if name in PRESETS:
            config = preset_config(name, tokenizer)
        else:
            try:
                config = AutoConfig.from_pretrained(
                    name, cache_dir=cache_dir, revision=revision, trust_remote_code=trust_remote_code
                )
            except (OSError, ValueError):
                raise ConfigError(f"unknown preset or config '{name}'; presets: {', '.join(PRESETS)}.") from None
            config.vocab_size = padded_vocab_size(tokenizer)
        model = new_model(config)
    if attn_implementation:
        model.set_attn_implementation(attn_implementation)
    # The Trainer would otherwise pass num_items_in_batch, which T5's loss ignores, and skip dividing the
    # loss by the accumulation steps: the logged loss would grow with gradient accumulation.
    model.accepts_loss_kwargs = False
    return model
