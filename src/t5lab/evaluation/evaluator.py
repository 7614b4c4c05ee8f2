"""Evaluation of a text-to-text model on task splits: decode every split, parse with its task, score.

The Trainer's own evaluation compares logits with labels; a T5 task is scored on decoded text (generation or
rank classification) by the task's metrics, which is what :class:`FinetuneTrainer` does in ``evaluate``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from t5lab.evaluation.decoding import decode, rank_classify
from t5lab.evaluation.naming import AVERAGE, EVAL_PREFIX, split_metric_prefix
from t5lab.tasks.examples import EvaluationSet
from t5lab.tasks.scoring import compute_metrics
from t5lab.training.trainer import T5LabTrainer

EVAL_MODES = ("generate", "rank")


class FinetuneTrainer(T5LabTrainer):
    """Evaluation = decode every evaluation set, parse with its task, score with the task's metrics.

    ``eval_mode`` is ``generate`` (``num_beams``, ``length_penalty``, at most ``max_target_length`` new tokens
    unless ``--generation_max_length`` says otherwise) or ``rank`` (score each label word; classification only).
    """

    def __init__(
        self,
        *args: Any,
        evaluation_sets: list[EvaluationSet],
        eval_mode: str = "generate",
        num_beams: int = 1,
        length_penalty: float = 1.0,
        max_target_length: int = 128,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.evaluation_sets = evaluation_sets
        self.eval_mode = eval_mode
        self.num_beams = num_beams
        self.length_penalty = length_penalty
        self.max_target_length = max_target_length
        self.last_predictions: dict[str, list[str]] = {}

    def predict_texts(self, evaluation_set: EvaluationSet) -> tuple[list[str], dict[str, float]]:
        """The model's text prediction for each example, and the teacher-forced loss when labels exist."""
        if self.eval_mode == "rank" and evaluation_set.task.kind == "classification":
            loss = {}
            if "labels" in evaluation_set.dataset.column_names:
                output = self.evaluation_loop(
                    self.get_eval_dataloader(evaluation_set.dataset), "rank", prediction_loss_only=True
                )
                loss = {"loss": output.metrics[f"{EVAL_PREFIX}_loss"]}
            texts = rank_classify(
                self.model,
                self.processing_class,
                evaluation_set.dataset["input_ids"],
                evaluation_set.task.label_words,
                self.args.per_device_eval_batch_size,
            )
            return texts, loss
        # max_length counts the decoder start token, so this allows max_target_length generated tokens
        limit = self.args.generation_max_length or self.max_target_length
        output = self.predict(
            evaluation_set.dataset,
            metric_key_prefix=EVAL_PREFIX,
            max_length=limit + 1,
            num_beams=self.num_beams,
            length_penalty=self.length_penalty,
        )
        loss = {"loss": output.metrics[f"{EVAL_PREFIX}_loss"]} if f"{EVAL_PREFIX}_loss" in output.metrics else {}
        # Under data parallelism Seq2SeqTrainer gathers with accelerator.gather, which keeps the examples the
        # sampler repeated to even out the processes' last batches; they come after all the real ones, in order.
        return decode(self.processing_class, output.predictions[: len(evaluation_set.dataset)]), loss

    def evaluate(
        self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = EVAL_PREFIX, **kwargs
    ) -> dict[str, float]:
        several = len(self.evaluation_sets) > 1
        metrics: dict[str, float] = {}
        scores = []
        for evaluation_set in self.evaluation_sets:
            texts, loss = self.predict_texts(evaluation_set)
            self.last_predictions[evaluation_set.name] = texts
            results = {
                **loss,
                **compute_metrics(evaluation_set.task, texts, evaluation_set.references, evaluation_set.groups),
            }
            prefix = split_metric_prefix(evaluation_set.name, several, metric_key_prefix)
            metrics.update({f"{prefix}_{k}": float(v) for k, v in results.items()})
            scores.append(results[evaluation_set.task.metric_to_optimize])
        if several:
            metrics[f"{metric_key_prefix}_{AVERAGE}"] = float(np.mean(scores))
            losses = [v for k, v in metrics.items() if k.endswith("_loss")]
            if losses:
                metrics[f"{metric_key_prefix}_loss"] = float(np.mean(losses))
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics
