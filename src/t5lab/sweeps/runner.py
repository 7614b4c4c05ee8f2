"""``t5lab sweep FILE``: run a sweep's trials with Optuna, on this machine or against a shared storage.

The study lives in an Optuna storage: a SQLite file by default (``OUTPUT_DIR/optuna.db``), or any SQLAlchemy
URL (PostgreSQL, MySQL) that several machines share. ``--workers K`` keeps K trials running at once, each a
subprocess started from an argument list, in its own output dir ``OUTPUT_DIR/STUDY/trial-NNNN`` (its output
in ``trial-NNNN.log``). ``--trials N`` is the size of the whole study, shared by every worker and every
machine: rerunning the command resumes the study and runs only the trials still missing.

A trial that crashes is recorded as failed and the sweep goes on. A trial interrupted (Ctrl-C, SIGTERM,
e.g. a SLURM time limit) or whose worker died (Optuna's heartbeat) is queued again with the same
parameters and resumes from its last checkpoint in the same output dir.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console

from t5lab.errors import ConfigError
from t5lab.sweeps import wandb_yaml
from t5lab.sweeps.layout import locations, study_folder, worker_environments
from t5lab.sweeps.trial import TrialFailed, check_metric, check_program, evaluations, expand_command, read_objective
from t5lab.sweeps.wandb_yaml import SweepSpec
from t5lab.training.checkpointing import PREEMPTION_SIGNALS, Preempted

console = Console(stderr=True, soft_wrap=True)
DEFAULT_TRIALS = 20
POLL_SECONDS = 1.0  # how often a running trial's logged evaluations are read (for pruning)
HEARTBEAT_SECONDS = 60  # a trial whose worker is silent for two of these is failed and queued again
# A stopped trial gets this long after SIGTERM (to finish its step and save a checkpoint) before SIGKILL: under
# the 120 s warning the SLURM templates ask for.
STOP_SECONDS = 90
MAX_RETRIES = 3


def open_storage(url: str) -> RDBStorage:
    """An Optuna RDB storage with heartbeats, so that trials of dead workers are failed and retried."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)  # heartbeats are stable in practice since Optuna 2.9
            return RDBStorage(
                url,
                heartbeat_interval=HEARTBEAT_SECONDS,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES),
            )
    except Exception as exc:  # SQLAlchemy's URL, driver and connection errors have no common base
        raise ConfigError(f"--storage {url}: {str(exc).splitlines()[0]}") from None


def retries(trials: list[FrozenTrial]) -> dict[int, int]:
    """Each stopped or failed trial that was queued again -> the number of the trial that took its place.

    Optuna's retry callbacks record a retry's whole chain in ``retry_history`` (its ``failed_trial`` is the first
    of the chain), so a trial stopped twice still maps to its immediate successor.
    """
    return {t.system_attrs["retry_history"][-1]: t.number for t in trials if t.system_attrs.get("retry_history")}


def _fingerprint(spec: SweepSpec) -> dict[str, Any]:
    """What makes two sweep files the same study; JSON round-tripped as Optuna stores it."""
    return json.loads(
        json.dumps(
            {
                "method": spec.method,
                "metric": spec.metric_name,
                "goal": spec.goal,
                "parameters": spec.parameters,
                "command": spec.command,
                "program": spec.program,
                "early_terminate": spec.early_terminate,
            }
        )
    )


def open_study(spec: SweepSpec, storage: RDBStorage, name: str, space: dict[str, BaseDistribution]) -> optuna.Study:
    """Create the study, or load it when it exists; a study made from a different sweep is refused."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # TPE's constant_liar
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            direction=spec.goal,
            load_if_exists=True,
            sampler=wandb_yaml.sampler(spec, space),
            pruner=wandb_yaml.pruner(spec),
        )
    saved, current = study.user_attrs.get("sweep"), _fingerprint(spec)
    if saved is None:
        study.set_user_attr("sweep", current)
        study.set_user_attr("sweep_file", str(spec.path.resolve()))
    elif saved != current:
        differing = ", ".join(sorted(k for k in current if saved.get(k) != current[k]))
        raise ConfigError(
            f"study '{name}' in {storage.url} was made from a different sweep (differs: {differing}); "
            "give another --study name or another --storage."
        )
    return study


def _suggest(trial: optuna.Trial, name: str, distribution: BaseDistribution) -> Any:
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    suggest = trial.suggest_float if isinstance(distribution, FloatDistribution) else trial.suggest_int
    return suggest(name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)


def _terminate(process: subprocess.Popen) -> None:
    """Stop a trial and everything it started (launchers start more processes)."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def _last_line(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def _wait_for(threads: list[threading.Thread]) -> None:
    # Polling, not join(): a join interrupted by Ctrl-C takes its thread for finished (CPython bpo-45274).
    while any(thread.is_alive() for thread in threads):
        time.sleep(0.2)


class _PreemptionSignal(BaseException):
    """Raised in the main thread by SIGTERM/SIGUSR1, like KeyboardInterrupt by Ctrl-C."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


def _raise_preemption(signum: int, frame: object) -> None:
    raise _PreemptionSignal(signal.Signals(signum).name)


class _Interrupted(Exception):
    """The sweep is stopping (Ctrl-C, SIGTERM or SIGUSR1) while this trial runs."""

    def __init__(self, number: int) -> None:
        super().__init__(f"trial {number} interrupted")
        self.number = number


class SweepRunner:
    """K workers sharing one study: each creates a trial while the study is short of ``trials``, runs it, repeats."""

    def __init__(
        self,
        spec: SweepSpec,
        study: optuna.Study,
        space: dict[str, BaseDistribution],
        trial_root: Path,
        trials: int,
        workers: int,
        requeue: Callable[[optuna.Study, FrozenTrial], None],
    ) -> None:
        self.spec, self.study, self.space, self.trial_root, self.requeue = spec, study, space, trial_root, requeue
        self.trials, self.workers = trials, workers
        self.fixed = {k: v for k, v in spec.fixed.items() if k != "output_dir"}
        self.environments = worker_environments(workers)
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []
        # Checking the budget and creating the trial happen under this lock, so this process never overshoots it
        # (workers in other processes, e.g. a SLURM array, may add one when two finish at the same instant).
        self._budget_lock = threading.Lock()
        self._local = threading.local()

    def run(self) -> None:
        """Run the missing trials.

        Ctrl-C, SIGTERM or SIGUSR1 (a SLURM preemption or time limit) stops the running trials, which save a
        checkpoint, and queues them again for the next run; after a signal the sweep raises :class:`Preempted`,
        whose exit code the SLURM templates requeue on.
        """
        threads = [threading.Thread(target=self._worker, args=(i,), daemon=True) for i in range(self.workers)]
        previous = {}
        if threading.current_thread() is threading.main_thread():  # only it may set signal handlers
            previous = {signum: signal.signal(signum, _raise_preemption) for signum in PREEMPTION_SIGNALS}
            # Ctrl-C stops the sweep even when its parent started it with SIGINT ignored (a background job of a
            # script, a test runner's worker), which Python would otherwise keep.
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            for thread in threads:
                thread.start()
            _wait_for(threads)
        except (KeyboardInterrupt, _PreemptionSignal) as stop:
            console.print("Stopping: running trials are stopped and will resume when the sweep is run again.")
            for signum in previous:  # a repeated signal must not cut the orderly stop short
                signal.signal(signum, signal.SIG_IGN)
            self.stopping.set()
            _wait_for(threads)
            if isinstance(stop, _PreemptionSignal):
                raise Preempted(
                    f"stopped by {stop.signal_name}; the running trials are queued again and resume from their "
                    "checkpoints: rerun (requeue) the same command to continue the sweep."
                ) from None
            raise
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if self.errors:
            raise self.errors[0]

    def _may_start(self) -> bool:
        trials = self.study.get_trials(deepcopy=False)
        done = [t.value for t in trials if t.state == TrialState.COMPLETE]
        if self.spec.target is not None and any(
            v >= self.spec.target if self.spec.goal == "maximize" else v <= self.spec.target for v in done
        ):
            return False
        if any(t.state == TrialState.WAITING for t in trials):
            return True  # trials queued again after an interruption run first
        retried = retries(trials)  # a retry takes its original's place
        return sum(t.number not in retried for t in trials) < self.trials

    def _release_budget(self) -> None:
        if getattr(self._local, "holds_budget", False):
            self._local.holds_budget = False
            self._budget_lock.release()

    def _worker(self, index: int) -> None:
        try:
            while not self.stopping.is_set():
                self._budget_lock.acquire()
                self._local.holds_budget = True
                try:
                    if not self._may_start():
                        return
                    self.study.optimize(lambda trial: self._objective(index, trial), n_trials=1, catch=(TrialFailed,))
                except _Interrupted as interrupted:
                    trial = next(t for t in self.study.get_trials(deepcopy=False) if t.number == interrupted.number)
                    self.requeue(self.study, trial)
                finally:
                    self._release_budget()
        except BaseException as exc:  # reported by run(), in the main thread
            self.errors.append(exc)
            self.stopping.set()

    def _objective(self, worker: int, trial: optuna.Trial) -> float:
        self._release_budget()  # the trial exists: another worker may now create the next one
        params = {name: _suggest(trial, name, distribution) for name, distribution in self.space.items()}
        # A trial queued again after an interruption keeps its original's dir, and so resumes its checkpoint.
        output_dir = Path(trial.user_attrs.get("output_dir") or self.trial_root / f"trial-{trial.number:04d}")
        trial.set_user_attr("output_dir", str(output_dir))
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        argv = expand_command(
            self.spec.command,
            {**self.fixed, **params, "output_dir": str(output_dir)},
            self.spec.program,
            output_dir.with_name(f"{output_dir.name}.args.json"),
        )
        trial.set_user_attr("command", argv)
        log = output_dir.with_name(f"{output_dir.name}.log")
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        console.print(f"trial {trial.number} started (worker {worker}): {shown}")
        start = time.monotonic()
        try:
            code = self._run(trial, argv, self.environments[worker], log, output_dir)
            if code != 0:
                raise TrialFailed(f"exit code {code}: {_last_line(log)} (log: {log})")
            value = read_objective(output_dir, self.spec.metric_name)
        except TrialFailed as failure:
            trial.set_user_attr("error", str(failure))
            console.print(f"[red]trial {trial.number} failed[/]: {failure}", markup=True, highlight=False)
            raise
        except optuna.TrialPruned as pruned:
            console.print(f"trial {trial.number} pruned: {pruned}")
            raise
        console.print(
            f"trial {trial.number} finished in {time.monotonic() - start:.1f} s: {self.spec.metric} = {value:.4g}"
        )
        return value

    def _run(self, trial: optuna.Trial, argv: list[str], env: dict[str, str], log: Path, output_dir: Path) -> int:
        """Run the trial's program, reporting each evaluation it logs to the pruner; its exit code."""
        with log.open("a", encoding="utf-8") as out:  # "a": a resumed trial's log keeps its first part
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
            )  # its own process group: Ctrl-C is ours to pass on
        try:
            reported = 0
            while True:
                try:
                    code = process.wait(timeout=POLL_SECONDS)
                except subprocess.TimeoutExpired:
                    code = None
                for value in evaluations(output_dir, self.spec.metric_name)[reported:]:
                    reported += 1
                    trial.report(value, reported)  # step = evaluations so far, W&B's hyperband "iteration"
                    if code is None and trial.should_prune():
                        raise optuna.TrialPruned(f"after {reported} evaluations, {self.spec.metric} = {value:.4g}")
                if code is not None:
                    return code
                if self.stopping.is_set():
                    raise _Interrupted(trial.number)
        finally:
            _terminate(process)


def run_sweep(
    spec: SweepSpec,
    trials: int | None = None,
    workers: int = 1,
    storage: str | None = None,
    study_name: str | None = None,
    output_dir: str | None = None,
) -> optuna.Study:
    """Validate the sweep (metric included) before anything runs, then run its missing trials; returns the study."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}.")
    space = wandb_yaml.search_space(spec)
    if "output_dir" in space:
        raise ConfigError("parameter 'output_dir' cannot be searched: each trial gets its own output dir.")
    check_program(spec)
    check_metric(spec)
    root, url, name = locations(spec, output_dir, storage, study_name)
    budget = trials or spec.run_cap or (wandb_yaml.grid_size(space) if spec.method == "grid" else DEFAULT_TRIALS)
    if spec.method == "grid" and budget > wandb_yaml.grid_size(space):
        console.print(f"The grid has {wandb_yaml.grid_size(space)} points; running no more trials than that.")
        budget = wandb_yaml.grid_size(space)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial's start and end are reported below
    storage = open_storage(url)
    study = open_study(spec, storage, name, space)
    counted = len([t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING])
    console.print(
        f"Sweep '{name}' ({spec.method}, {spec.goal} {spec.metric}): {counted} of {budget} trials in {url}; "
        f"{workers} worker(s); trial outputs in {study_folder(root, name)}"
    )
    # An interrupted trial is queued again the way Optuna queues the trial of a dead worker.
    requeue = storage.get_heartbeat_stale_trial_callback()
    SweepRunner(spec, study, space, study_folder(root, name), budget, workers, requeue).run()
    return study
