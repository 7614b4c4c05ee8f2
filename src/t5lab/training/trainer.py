"""The Trainer used by every recipe: the stock Seq2SeqTrainer plus a tokens/s figure in its logs, atomic
checkpoints, preemption handling and a policy for non-finite steps (see :mod:`t5lab.training.checkpointing`),
and t5lab's model card in place of the Trainer's."""

from __future__ import annotations

import errno
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from transformers import Seq2SeqTrainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from t5lab.evaluation.pretraining import PretrainingDiagnostics
from t5lab.training.checkpointing import (
    CheckpointWriteError,
    NonFiniteError,
    Preempted,
    PreemptionHandler,
    check_checkpoint_matches_model,
    commit_checkpoint,
    find_resumable_checkpoint,
    staging_root,
)

# Written into each checkpoint: counters of t5lab's own that a resumed run continues from.
T5LAB_STATE_FILE = "t5lab_state.json"
# A save that fails with less free space than this left on the output disk failed because the disk is full.
_FULL_DISK_BYTES = 16 * 2**20


# Files of t5lab's own bookkeeping that a hub upload of the output dir must skip: the staging folder of a
# checkpoint being written (the Trainer pushes at every save, possibly while the next one is staged), the run
# lock and a tokenizer save in progress. upload_folder adds huggingface_hub's DEFAULT_IGNORE_PATTERNS to every
# call, and the Trainer offers no hook for its own patterns, so t5lab's are added to that list once.
HUB_IGNORE_PATTERNS = [
    ".incomplete",
    ".incomplete/*",
    "**/.incomplete/**",
    ".t5lab.lock",
    ".tokenizer-*",
    ".tokenizer-*/*",
]


def skip_bookkeeping_in_hub_uploads() -> None:
    """Keep t5lab's staging folders and lock out of every hub upload of this process."""
    from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS

    DEFAULT_IGNORE_PATTERNS.extend(p for p in HUB_IGNORE_PATTERNS if p not in DEFAULT_IGNORE_PATTERNS)


class T5LabTrainer(Seq2SeqTrainer):
    """Seq2SeqTrainer that logs ``tokens_per_second`` (non-pad input + target tokens, all processes), writes
    checkpoints atomically, stops cleanly on SIGTERM/SIGUSR1 and applies ``--on_nonfinite``."""

    def __init__(
        self,
        *args: Any,
        optimizer_cls_and_kwargs: tuple | None = None,
        diagnostics: PretrainingDiagnostics | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # Seq2SeqTrainer does not forward this Trainer argument; the Trainer reads it in create_optimizer.
        self.optimizer_cls_and_kwargs = optimizer_cls_and_kwargs
        self.diagnostics = diagnostics
        self._tokens_since_log: torch.Tensor | int = 0
        self._last_log_time = time.perf_counter()
        self.nonfinite_skipped = 0
        self._step_loss_finite: torch.Tensor | bool = True
        self._preemption = PreemptionHandler()
        self.preempted_by: str | None = None
        self._staging_root: Path | None = None
        self.add_callback(_ReliabilityCallback(self))
        if self.args.push_to_hub:
            skip_bookkeeping_in_hub_uploads()

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any):
        if isinstance(resume_from_checkpoint, str):
            check_checkpoint_matches_model(resume_from_checkpoint, self.model.config)
            state_file = Path(resume_from_checkpoint) / T5LAB_STATE_FILE
            if state_file.is_file():
                self.nonfinite_skipped = json.loads(state_file.read_text(encoding="utf-8")).get("nonfinite_skipped", 0)
        in_main_thread = threading.current_thread() is threading.main_thread()
        if in_main_thread:  # signal handlers can only be set there
            self._preemption.install()
        try:
            return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
        finally:
            if in_main_thread:
                self._preemption.restore()

    def _run_epoch(self, *args: Any, **kwargs: Any) -> None:
        # Resuming from a checkpoint taken at max_steps (a run killed while writing its final outputs), the
        # Trainer would train one step more before checking the limit; the rerun must only finish the run.
        if 0 < self.state.max_steps <= self.state.global_step:
            self.control.should_training_stop = True
            return
        super()._run_epoch(*args, **kwargs)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **kwargs):
        loss, logits, labels = super().prediction_step(model, inputs, prediction_loss_only, ignore_keys, **kwargs)
        if self.diagnostics is not None and "labels" in inputs:
            with torch.no_grad(), self.autocast_smart_context_manager():
                self.diagnostics.update(
                    model, self._prepare_inputs(inputs), logits[0] if isinstance(logits, tuple) else logits
                )
        return loss, logits, labels

    def evaluation_loop(
        self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"
    ):
        if self.diagnostics is not None:
            self.diagnostics.reset()
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        if self.diagnostics is not None:
            if self.args.world_size > 1:
                gathered: list = [None] * self.args.world_size
                torch.distributed.all_gather_object(gathered, self.diagnostics.sums)
                self.diagnostics.reset()
                self.diagnostics.merge(gathered)
            output.metrics.update({f"{metric_key_prefix}_{k}": v for k, v in self.diagnostics.metrics().items()})
        return output

    def training_step(self, model, inputs, num_items_in_batch=None):
        # Kept as a tensor: converting here would force a device sync every step.
        self._tokens_since_log = (
            self._tokens_since_log + inputs["attention_mask"].sum() + (inputs["labels"] != -100).sum()
        )
        loss = super().training_step(model, inputs, num_items_in_batch)
        self._step_loss_finite = torch.isfinite(loss).all() & self._step_loss_finite
        return loss

    def _get_grad_norm(self, model, grad_norm=None):
        # Called once per optimizer step, after backward and clipping and before optimizer.step(): the one
        # place where a bad update can still be dropped and where every process can agree on stopping.
        grad_norm = super()._get_grad_norm(model, grad_norm)
        finite = torch.isfinite(torch.as_tensor(grad_norm)).all().cpu() & torch.as_tensor(self._step_loss_finite).cpu()
        nonfinite = not bool(finite)
        self._step_loss_finite = True
        flags = [nonfinite, self._preemption.signal_name is not None]
        if self.args.world_size > 1:
            agreed = torch.tensor(flags, dtype=torch.int32, device=self.args.device)
            torch.distributed.all_reduce(agreed, op=torch.distributed.ReduceOp.MAX)
            flags = [bool(v) for v in agreed.tolist()]
        nonfinite, preempted = flags
        if preempted and self.preempted_by is None:
            self.preempted_by = self._preemption.signal_name or "a preemption signal on another process"
        if nonfinite:
            self._handle_nonfinite(model, grad_norm)
        return grad_norm

    def _handle_nonfinite(self, model, grad_norm) -> None:
        step = self.state.global_step + 1
        if getattr(self.args, "on_nonfinite", "stop") == "skip":
            # Optimizers leave parameters without a gradient untouched (no moment update): the step is dropped.
            model.zero_grad(set_to_none=True)
            self.nonfinite_skipped += 1
            return
        last, _ = find_resumable_checkpoint(self.args.output_dir) if Path(self.args.output_dir).is_dir() else (None, [])
        raise NonFiniteError(
            f"non-finite loss or gradient norm ({float(grad_norm):g}) at step {step}; the last good checkpoint is "
            f"{last or 'none (no checkpoint saved yet)'}. Lower --learning_rate, or pass --on_nonfinite skip to "
            "drop such steps; rerunning resumes from that checkpoint."
        )

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            now = time.perf_counter()
            tokens = float(self._tokens_since_log) * self.args.world_size
            logs["tokens_per_second"] = round(tokens / max(now - self._last_log_time, 1e-9), 1)
            self._tokens_since_log, self._last_log_time = 0, now
        if self.nonfinite_skipped and ("loss" in logs or "train_runtime" in logs):
            logs["nonfinite_skipped"] = self.nonfinite_skipped
        super().log(logs, start_time)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        # The Trainer pickles its arguments into training_args.bin: keep tokens (--hub_token) out of it.
        tokens = {name: value for name, value in vars(self.args).items() if name.endswith("_token") and value}
        for name in tokens:
            setattr(self.args, name, None)
        try:
            super()._save(output_dir, state_dict)
        finally:
            for name, value in tokens.items():
                setattr(self.args, name, value)

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        """No warning for the tied input embeddings (``encoder/decoder.embed_tokens`` share ``shared``): safetensors
        stores them once, so loading the best checkpoint always "misses" them, and they are loaded through
        ``shared``. Any other missing or unexpected key is still reported."""
        seen: set[int] = set()
        tied = set()
        for name, parameter in self.model.named_parameters(remove_duplicate=False):
            if id(parameter) in seen:
                tied.add(name)
            seen.add(id(parameter))
        super()._issue_warnings_after_load(
            load_result._replace(missing_keys=[key for key in load_result.missing_keys if key not in tied])
        )

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """Write nothing: ``README.md`` is t5lab's model card (:mod:`t5lab.training.model_card`), which the recipe
        writes before its final push. The Trainer calls this in every ``push_to_hub``, and its draft would
        replace t5lab's card in the folder it uploads."""

    def _get_output_dir(self, trial) -> str:
        # While a checkpoint is being saved, the Trainer's writes go to the staging folder.
        return str(self._staging_root) if self._staging_root is not None else super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = Path(super()._get_output_dir(trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staged = staging_root(run_dir) / name
        self._staging_root = staged.parent
        try:
            super()._save_checkpoint(model, trial)
            if self.args.should_save:
                (staged / T5LAB_STATE_FILE).write_text(
                    json.dumps({"nonfinite_skipped": self.nonfinite_skipped}) + "\n", encoding="utf-8"
                )
        except (OSError, RuntimeError, SafetensorError) as exc:
            # torch and safetensors report a full disk as a failed write of their own, without ENOSPC
            disk_full = (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or shutil.disk_usage(
                run_dir
            ).free < _FULL_DISK_BYTES
            if self.args.should_save:
                shutil.rmtree(staged.parent, ignore_errors=True)
            last, _ = find_resumable_checkpoint(run_dir)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if disk_full and not isinstance(exc, OSError):
                reason = f"no space left on device: {reason}"
            raise CheckpointWriteError(
                f"could not write {name} in {run_dir} ({reason}); the previous checkpoint "
                f"{last or '(none)'} is intact. "
                "Free disk space or fix permissions, then rerun the same command to resume."
            ) from exc
        finally:
            self._staging_root = None
        self.accelerator.wait_for_everyone()  # every process has written its RNG state
        if self.state.best_global_step:  # the Trainer pointed at the staging copy; point at the final folder
            best = run_dir / f"{PREFIX_CHECKPOINT_DIR}-{self.state.best_global_step}"
            if self.state.best_global_step == self.state.global_step or best.is_dir():
                self.state.best_model_checkpoint = str(best)
        if self.args.should_save:
            self.state.save_to_json(str(staged / "trainer_state.json"))
            commit_checkpoint(staged, run_dir / name)
            rotate_checkpoints(
                str(run_dir), self.args.save_total_limit, self.state.best_model_checkpoint, use_mtime=True
            )
        self.accelerator.wait_for_everyone()  # nobody stops before the checkpoint is in place


class _ReliabilityCallback(TrainerCallback):
    """Turn a preemption signal into a checkpoint at this step's end, then stop with :class:`Preempted`."""

    def __init__(self, trainer: T5LabTrainer) -> None:
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        signal_name = self.trainer._preemption.signal_name
        if signal_name and args.world_size == 1:  # one process needs no agreement: act at this very step
            self.trainer.preempted_by = signal_name
        if self.trainer.preempted_by:
            control.should_save, control.should_training_stop, control.should_evaluate = True, True, False
        return control

    def on_save(self, args, state, control, **kwargs):
        if self.trainer.preempted_by:
            checkpoint = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            cause = "Ctrl-C (SIGINT)" if self.trainer.preempted_by == "SIGINT" else self.trainer.preempted_by
            raise Preempted(
                f"stopped by {cause} at step {state.global_step} after saving {checkpoint}; "
                "rerun the same command to resume from it.",
                self.trainer.preempted_by,
            )


class EpochToCollator(TrainerCallback):
    """Tell a collator the epoch before each pass, so its randomness differs across epochs."""

    def __init__(self, collator: Any) -> None:
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.collator.epoch = int(state.epoch or 0)
