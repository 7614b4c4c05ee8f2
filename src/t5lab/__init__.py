"""t5lab: pre-train, fine-tune and evaluate T5-family encoder-decoder models."""

__version__ = "0.1.0"
