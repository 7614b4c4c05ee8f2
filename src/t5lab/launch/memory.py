"""Memory per GPU for model states under DDP and each ZeRO stage, from a model's parameter count.

The formula is the ZeRO paper's (Rajbhandari et al., 2020, section 5): mixed-precision Adam keeps, per
parameter, 2 bytes of bf16 weights, 2 bytes of bf16 gradients and K = 12 bytes of optimizer state (fp32
master weights, momentum, variance). On N GPUs:

    DDP     (2 + 2 + K) P              ZeRO-2  2 P + (2 + K) P / N
    ZeRO-1  (2 + 2) P + K P / N        ZeRO-3  (2 + 2 + K) P / N

ZeRO-3 with the optimizer offloaded keeps the optimizer state (fp32 master weights included) in host memory:
(2 + 2) P / N on the GPU. Offloading the parameters as well (``--deepspeed zero3_offload``) leaves on the GPU only
the layers being computed on. Activations, buffers and fragmentation come on top of every figure.
``python -m t5lab.launch.memory [GPUS]`` prints the table of the README.
"""

from __future__ import annotations

import sys

import torch
from transformers import T5Config, T5ForConditionalGeneration

from t5lab.models.presets import PRESETS

T5_VOCAB_SIZE = 32128
# T5 v1.1 XL: the 3B model, for the table only (too large for a t5lab preset to be useful on one GPU).
T5_XL = dict(d_model=2048, d_ff=5120, num_layers=24, num_decoder_layers=24, num_heads=32, d_kv=64)
MODELS = {"t5-base": PRESETS["t5-base"], "t5-large": PRESETS["t5-large"], "t5-xl (3B)": T5_XL}
WEIGHT_BYTES, GRADIENT_BYTES, OPTIMIZER_BYTES = 2, 2, 12


def parameter_count(dims: dict[str, int], vocab_size: int = T5_VOCAB_SIZE) -> int:
    """Exact parameter count of a T5 v1.1 model (untied output layer), built on the meta device (no memory)."""
    config = T5Config(**dims, vocab_size=vocab_size, feed_forward_proj="gated-gelu", tie_word_embeddings=False)
    with torch.device("meta"):
        model = T5ForConditionalGeneration(config)
    return sum(p.numel() for p in model.parameters())


def model_state_bytes(parameters: int, num_gpus: int) -> dict[str, float]:
    """Bytes per GPU of weights, gradients and optimizer state under DDP, ZeRO-1/2/3 and ZeRO-3 with the
    optimizer offloaded."""
    p, n = parameters, num_gpus
    return {
        "DDP": (WEIGHT_BYTES + GRADIENT_BYTES + OPTIMIZER_BYTES) * p,
        "ZeRO-1": (WEIGHT_BYTES + GRADIENT_BYTES) * p + OPTIMIZER_BYTES * p / n,
        "ZeRO-2": WEIGHT_BYTES * p + (GRADIENT_BYTES + OPTIMIZER_BYTES) * p / n,
        "ZeRO-3": (WEIGHT_BYTES + GRADIENT_BYTES + OPTIMIZER_BYTES) * p / n,
        "ZeRO-3 + optimizer offload": (WEIGHT_BYTES + GRADIENT_BYTES) * p / n,
    }


def memory_table(num_gpus: int = 8) -> str:
    """A Markdown table: for each model, its parameters and the GiB per GPU of each scheme on ``num_gpus`` GPUs."""
    schemes = list(model_state_bytes(1, 1))
    lines = [f"| model | parameters | {' | '.join(schemes)} |", "|---" * (len(schemes) + 2) + "|"]
    for name, dims in MODELS.items():
        count = parameter_count(dims)
        gib = [f"{b / 2**30:.1f}" for b in model_state_bytes(count, num_gpus).values()]
        lines.append(f"| {name} | {count / 1e6:,.0f}M | {' | '.join(gib)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    gpus = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    print(f"GiB per GPU for model states (bf16 weights and gradients, fp32 Adam), {gpus} GPUs:\n")
    print(memory_table(gpus))
