"""t5lab: pre-train, fine-tune and evaluate T5-family encoder-decoder models.

The commands are also Python functions (docs/api.md): ``from t5lab import pretrain, finetune, evaluate, predict``.
"""

__version__ = "0.1.0"

from t5lab.api import evaluate, finetune, predict, pretrain  # noqa: E402  (light: they import on first call)

__all__ = ["__version__", "evaluate", "finetune", "predict", "pretrain"]
