"""AdamWScale: nanoT5's Adam variant whose step is scaled by each parameter's RMS (as Adafactor does).

The schedules (linear, cosine, cosine_with_min_lr, constant_with_warmup, inverse_sqrt, ...) are the
Trainer's own, chosen with ``--lr_scheduler_type``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch.optim import Optimizer


class AdamWScale(Optimizer):
    """AdamW whose learning rate is multiplied by max(1e-3, RMS(parameter)), as in nanoT5.

    This lets one learning rate suit parameters of very different scales, which helps T5 pre-training
    converge with AdamW at Adafactor-like rates (e.g. 2e-2 with cosine decay).
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        correct_bias: bool = True,
    ) -> None:
        if lr < 0.0 or eps < 0.0 or not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"invalid AdamWScale hyperparameters: lr={lr}, betas={betas}, eps={eps}")
        super().__init__(
            params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, correct_bias=correct_bias)
        )

    @staticmethod
    def _rms(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.norm(2) / (tensor.numel() ** 0.5)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise RuntimeError("AdamWScale does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(grad, alpha=1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                denom = exp_avg_sq.sqrt().add_(group["eps"])
                step_size = group["lr"]
                if group["correct_bias"]:
                    step_size *= math.sqrt(1.0 - beta2 ** state["step"]) / (1.0 - beta1 ** state["step"])
                step_size = step_size * max(1e-3, self._rms(p).item())
                p.addcdiv_(exp_avg, denom, value=-step_size)
                if group["weight_decay"] > 0.0:
                    p.add_(p, alpha=-group["lr"] * group["weight_decay"])
        return loss


def optimizer_cls_and_kwargs(
    name: str, learning_rate: float, weight_decay: float, betas: tuple[float, float], eps: float
):
    """The Trainer's ``optimizer_cls_and_kwargs`` for t5lab's own optimizers, or None for the Trainer's."""
    if name == "adamwscale":
        return AdamWScale, dict(lr=learning_rate, weight_decay=weight_decay, betas=betas, eps=eps)
    return None
