"""A Lightning 2.x logger that records into hpctrack's run: ``Trainer(logger=HpctrackLogger())``.

What it does with each of Lightning's calls:

- **Placement.** ``save_dir`` is the run's directory, ``name`` and ``version`` are empty, so
  Lightning's ``ModelCheckpoint`` writes into ``<run dir>/checkpoints/`` and ``trainer.log_dir``
  is the run's directory: a requeued attempt of the run finds its checkpoints there.
- **Hyper-parameters.** ``log_hyperparams`` (the module's and datamodule's, merged by Lightning)
  adds what the run has not recorded to its params, beside the Hydra config. A key recorded
  with the same value is left alone; one recorded with another value keeps the recorded value,
  and the new one goes into this attempt's record (``params_changed``). It never raises.
- **Metrics.** ``log_metrics`` is ``run.log`` at Lightning's step (the next step when it gives
  none); a point Lightning repeats at the same step (its ``epoch``) is logged once.
- **Checkpoints.** Each file ``ModelCheckpoint`` saves becomes a checkpoint of the run
  (``checkpoints/<seq>/``, see :mod:`hpctrack.checkpoint`) holding a hard link to the file (no
  copy) and ``lightning.json``: its path, the monitor and the score.
- **End.** ``finalize("success")`` leaves the run open (it completes when the job or script
  ends); ``"failed"`` ends it ``failed`` (``interrupted`` for Ctrl-C or SIGTERM) with the error;
  ``"finished"``, which only Lightning's SLURM auto-requeue handler sends, closes the attempt as
  requeued: the requeued job reopens the same run as its next attempt, Lightning resumes from
  its HPC checkpoint (``hpc_ckpt_<n>.ckpt`` in ``default_root_dir``), and the steps the new
  attempt logs again replace the earlier attempt's (exactly-once histories).
- **Ranks.** Only global rank 0 writes; every other rank gets a no-op ``experiment``.
- **Failures.** A logging call that fails is a warning (``HpctrackLoggerWarning``, once per
  kind of failure); training goes on.

The run is the job's own under ``hpctrack launch`` (opened before the script starts), or a
one-run sweep made when the logger is created for a plain ``python train.py``. Either way it is
known before Lightning starts other ranks, so they inherit it (``hpctrack.identity``).
"""

from __future__ import annotations

import _thread
import importlib.util
import json
import os
import signal
import sys
import threading
import time
import warnings
import weakref
from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Set, Tuple, Union

from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities.rank_zero import rank_zero_only

if TYPE_CHECKING:
    from ..run import Run

__all__ = ["HpctrackLogger", "HpctrackLoggerWarning", "LIGHTNING_META", "RANK_MODULE"]

#: What a checkpoint of the run made from a Lightning checkpoint file says about it (in ``checkpoints/<seq>/``).
LIGHTNING_META = "lightning.json"
#: The module Lightning's DDP launcher runs again for ranks 1.. of a launched job (see :func:`_rank_command`).
RANK_MODULE = "hpctrack.integrations._lightning_rank"
#: How a job of a launcher starts: the main module Lightning would otherwise run again for each rank
#: (submitit's job, a command per job, a run packed beside others in a SLURM task).
_JOB_MAIN_MODULES = ("submitit.core._submit", "hpctrack.launch.job", "hpctrack.launch.slurm._packed")


class HpctrackLoggerWarning(UserWarning):
    """A logging call of :class:`HpctrackLogger` failed; training went on."""


class HpctrackLogger(Logger):
    """Lightning's ``Logger`` for hpctrack: ``Trainer(logger=HpctrackLogger())``.

    Parameters
    ----------
    cfg:
        The config to record as the run's params, as ``hpctrack.start_run(cfg)`` does. By
        default, in a Hydra app, the job's Hydra config (``.hydra/config.yaml`` of its output
        directory), unless the script already started its run with a config.
    run:
        A run the script started itself (``hpctrack.start_run(cfg)``); by default the job's
        run under an hpctrack launcher, else a new one-run sweep (``name``, ``tags``, ``root``,
        ``store`` as for :func:`hpctrack.start_run`).

    Raises
    ------
    ConfigError
        Bad input (a bad ``HPCTRACK_*`` setting, root or name), before anything is written.
    StoreError
        A plain script's new run could not be written (a full disk): said before training starts.
    """

    def __init__(
        self,
        cfg: Any = None,
        *,
        run: Optional["Run"] = None,
        name: Optional[str] = None,
        tags: Optional[Mapping[str, Any]] = None,
        root: Optional[str] = None,
        store: str = "hdf5",
    ) -> None:
        super().__init__()
        self._warned: Set[Tuple[str, str]] = set()
        self._points: Dict[str, Tuple[int, float]] = {}  # key -> the (step, value) logged last
        self._saved: Set[str] = set()  # checkpoint files already recorded
        self._trainer: Optional[Any] = None  # a weak reference to the Trainer, from log_graph
        self._requeue_signal: Optional[_RequeueSignal] = None  # SLURM's requeue signal, for Lightning's handler
        # Now, not on first use: a plain script's run must exist before Lightning starts the
        # other ranks, so that they inherit it (HPCTRACK_RUN_DIR, ...), and a launched job's
        # ranks must run the job again, not the scheduler's entry point.
        self._run: Optional["Run"] = run if run is not None else _start(cfg, name, tags, root, store)
        if run is not None and cfg is not None:
            run.record_config(cfg)
        _rank_command()
        writer = self._writer()
        if writer is not None:
            self._requeue_signal = _RequeueSignal(writer)
            self._requeue_signal.hold()

    # -- where Lightning puts its files --------------------------------------------------------

    @property
    def name(self) -> str:
        """Empty: Lightning's checkpoint directory ``save_dir/name/version/checkpoints`` is the run's."""
        return ""

    @property
    def version(self) -> str:
        """Empty (see :attr:`name`); the run's id is :attr:`run_id`."""
        return ""

    @property
    def save_dir(self) -> Optional[str]:
        """The run's directory: ``trainer.log_dir``, and where ``ModelCheckpoint`` writes (``checkpoints/``)."""
        return str(self._run.run_dir) if self._run is not None else None

    @property
    def root_dir(self) -> Optional[str]:
        """The run's directory, as :attr:`save_dir`."""
        return self.save_dir

    @property
    def log_dir(self) -> Optional[str]:
        """The run's directory, as :attr:`save_dir`."""
        return self.save_dir

    @property
    def run_id(self) -> Optional[str]:
        """The run's id, ``<sweep id>/<job>`` (what ``hpctrack show`` takes); the same on every rank."""
        return self._run.run_id if self._run is not None else None

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The :class:`hpctrack.Run` (on global rank 0; a no-op object on the other ranks)."""
        return self._run

    # -- what Lightning records ------------------------------------------------------------

    @rank_zero_only
    def log_hyperparams(self, params: Union[Dict[str, Any], Namespace], *args: Any, **kwargs: Any) -> None:
        """Add the module's and datamodule's hyper-parameters to the run's params (see the module's docs)."""
        run = self._writer()
        if run is None:
            return
        try:
            from ..run import flatten_config

            given = flatten_config(vars(params) if isinstance(params, Namespace) else dict(params))
            recorded = run.recorded_params()
            new = {k: v for k, v in given.items() if k not in recorded}
            changed = {k: {"recorded": recorded[k], "logged": v} for k, v in given.items()
                       if k in recorded and recorded[k] != v}  # fmt: skip
            if changed:
                earlier = dict(run.attempt_note("params_changed") or {})
                run.note_attempt("params_changed", {**earlier, **changed})
                keys = ", ".join(sorted(changed))
                print(f"hpctrack: run {run.run_id}: hyper-parameters {keys} differ from the values the run "
                      "recorded; the recorded values stay, this attempt's record has the new ones",
                      file=sys.stderr, flush=True)  # fmt: skip
            if new or changed:
                run.log_params(new)  # writes the attempt's record too
        except Exception as err:
            self._warn("log_hyperparams", err)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: Optional[int] = None) -> None:
        """``run.log(metrics, step=step)``: at Lightning's step, or the run's next when it gives none."""
        run = self._writer()
        if run is None:
            return
        values: Dict[str, float] = {}
        for key, value in metrics.items():
            try:
                number = float(value.item() if hasattr(value, "item") else value)
            except (TypeError, ValueError, RuntimeError) as err:  # a tensor of several values, a string
                self._warn(f"log_metrics({key!r})", err)
                continue
            # Lightning adds `epoch` to every call; two calls at one step would log it twice.
            if step is not None and self._points.get(key) == (step, number):
                continue
            values[key] = number
        if not values:
            return
        try:
            run.log(values, step=step)
        except Exception as err:
            self._warn("log_metrics", err)
            return
        if step is not None:
            self._points.update((key, (step, number)) for key, number in values.items())

    @rank_zero_only
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Not recorded; Lightning calls it when fitting starts, where this logger learns its Trainer."""
        try:
            trainer = model.trainer
        except Exception:  # a module not attached to a Trainer (called by hand)
            return
        self._trainer = weakref.ref(trainer)
        try:
            run = self._writer()
            resumed = getattr(trainer, "ckpt_path", None)  # restored before Lightning logs hyper-parameters
            if run is not None and resumed and trainer.state.fn == "fit":  # not test(ckpt_path="best")
                run.note_attempt("resumed_from", _relative(Path(resumed), run.run_dir))
            if self._requeue_signal is not None:
                self._requeue_signal.lend(trainer)
        except Exception as err:
            self._warn("log_graph", err)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        """Record the file ``ModelCheckpoint`` just saved as a checkpoint of the run (a hard link, no copy)."""
        run = self._writer()
        if run is None:
            return
        try:
            path = _just_saved(checkpoint_callback)
            if path is None or path in self._saved or os.path.islink(path) or not os.path.isfile(path):
                return  # save_last="link" links to a file already recorded
            self._record_checkpoint(run, checkpoint_callback, Path(path))
            self._saved.add(path)
        except Exception as err:
            self._warn("after_save_checkpoint", err)

    @rank_zero_only
    def save(self) -> None:
        """Nothing: ``run.log`` buffers, and the run writes in the background (see :mod:`hpctrack.run`)."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """The end of Lightning's fit, validate or test: ``success``, ``failed`` or ``finished`` (SLURM requeue)."""
        run = self._writer()
        if run is None:
            return
        try:
            if status == "finished":
                # Only Lightning's SLURM auto-requeue handler says "finished": it saves its HPC
                # checkpoint next and requeues the job, which reopens this run.
                run.prepare_requeue("Lightning's SLURM auto-requeue")
            elif status == "failed":
                self._fail(run)
            else:
                if self._requeue_signal is not None:
                    self._requeue_signal.give_back()  # Lightning's teardown restored the default action
                run.flush()  # the run ends with the job or script; what fit logged is stored now
        except Exception as err:
            self._warn(f"finalize({status!r})", err)

    # -- helpers ---------------------------------------------------------------------------

    def _writer(self) -> Optional["Run"]:
        """The run, when this process writes it (global rank 0) and it has not ended."""
        run = self._run
        if run is None or not run.writes or run.finished:
            return None
        return run

    def _warn(self, what: str, err: BaseException) -> None:
        key = (what.split("(")[0], type(err).__name__)
        if key in self._warned:
            return  # once per kind of failure: a store that stopped writing fails every step
        self._warned.add(key)
        from ..errors import HpctrackError
        from ..store.base import one_line

        line = one_line(err) if isinstance(err, HpctrackError) else f"{type(err).__name__}: {one_line(err)}"
        warnings.warn(f"hpctrack: {what} failed, training goes on: {line}", HpctrackLoggerWarning, stacklevel=3)

    def _fail(self, run: "Run") -> None:
        """``finalize("failed")``: Lightning calls it while it handles the exception that stopped training."""
        from .._types import RunStatus

        if run.requeued:
            return  # the attempt was closed for a requeue (submitit's exit, Lightning's SIGTERM after it)
        error = sys.exc_info()[1]
        if error is None:
            run.finish(RunStatus.FAILED, error="Lightning reported the training failed")
        elif _is_sigterm_exit(error):  # Lightning's own exit after a SIGTERM (a SystemExit without a code)
            run.finish(RunStatus.INTERRUPTED, error="terminated by SIGTERM")
        else:  # as leaving the run's `with` block with it: failed, interrupted for Ctrl-C
            run.__exit__(type(error), error, error.__traceback__)

    def _record_checkpoint(self, run: "Run", callback: ModelCheckpoint, path: Path) -> None:
        score = callback.best_k_models.get(str(path), callback.current_score)
        trainer = self._trainer() if self._trainer is not None else None
        global_step = int(trainer.global_step) if trainer is not None else None
        # hpctrack's step of a checkpoint is the last step it holds (a restart continues after it);
        # Lightning's global_step counts the steps taken, and logs the n-th one at step n - 1.
        step = global_step - 1 if global_step else None
        meta: Dict[str, Any] = {
            "path": _relative(path, run.run_dir),
            "file": None,
            "monitor": callback.monitor,
            "score": _number(score),
            "best": str(path) == callback.best_model_path,
            "global_step": global_step,
        }
        with run.checkpoint(step=step) as directory:
            try:
                os.link(path, directory / path.name)
                meta["file"] = path.name
            except OSError:  # another filesystem, or no hard links: the record names the file
                pass
            (directory / LIGHTNING_META).write_text(json.dumps(meta))


class _RequeueSignal:
    """Hands SLURM's requeue signal from the run's handler to Lightning's auto-requeue handler.

    Lightning installs its SLURM requeue handler (on SIGUSR1 by default) only on a signal
    nobody handles, and only when fitting starts. The run's handler of that signal flushes
    and ends the process; Lightning's calls ``finalize("finished")`` (which flushes and closes
    the attempt as requeued), saves its HPC checkpoint and requeues the job. So on SLURM,
    from the logger's creation, the signal is held (SLURM may send it any time before the
    limit, or on preemption); when fitting starts (``log_graph``, a moment before Lightning
    installs its handlers) it gets its default action back for Lightning to take, and one
    that came meanwhile is delivered to Lightning's handler once that is installed. When
    Lightning does not requeue on it, the run's handler takes the signal back (and one held).
    A signal something else handles (submitit's requeue on SIGUSR2) is never touched.
    """

    #: How long a signal that came early waits for Lightning's handler before it is dropped.
    DELIVER_WAIT_S = 600.0

    def __init__(self, run: "Run") -> None:
        self.run = run
        self.signum: Optional[int] = None  # the signal taken from the run's handler
        self.held = False  # it came while held

    def _free(self, signum: int) -> bool:
        """The run's handler (or the hold) has ``signum``, with only the default action under it."""
        current = signal.getsignal(signum)
        under = self.run.signal_handler_below(signum)
        return current in (self.run.handle_signal, self._hold) and under in (None, signal.SIG_DFL)

    def hold(self) -> None:
        """On SLURM: hold Lightning's default requeue signal until Lightning's handler is there."""
        signum = int(signal.SIGUSR1)
        if _main_thread() and _on_slurm() and self._free(signum):
            signal.signal(signum, self._hold)
            self.signum = signum

    def _hold(self, signum: int, frame: Any) -> None:
        self.held = True
        print(f"hpctrack: run {self.run.run_id}: {signal.Signals(signum).name} kept for Lightning's SLURM requeue "
              "handler, which fitting installs", file=sys.stderr, flush=True)  # fmt: skip

    def lend(self, trainer: Any) -> None:
        """Fitting starts: the signal to Lightning's requeue handler if it takes one, else back to the run."""
        env = getattr(getattr(trainer, "_accelerator_connector", None), "cluster_environment", None)
        wanted = None
        if isinstance(env, SLURMEnvironment) and env.auto_requeue and env.requeue_signal is not None:
            wanted = int(env.requeue_signal)
        if not _main_thread():
            return
        if wanted is not None and self._free(wanted):
            if self.signum is not None and self.signum != wanted:
                self.give_back()
            signal.signal(wanted, signal.SIG_DFL)
            self.signum = wanted
            if self.held:
                threading.Thread(target=self._deliver, args=(wanted,), daemon=True,
                                 name="hpctrack-requeue-signal").start()  # fmt: skip
        elif self.signum is not None:
            self.give_back()

    def _deliver(self, signum: int) -> None:
        # Lightning installs its handler in the main thread a moment after log_graph: the signal goes to it then.
        # Not a real signal: Lightning may restore the default action (its fit ended) between the look and
        # the delivery, and the default action of SIGUSR1 ends the process. interrupt_main runs the Python
        # handler of the moment in the main thread, and does nothing if there is none.
        deadline = time.monotonic() + self.DELIVER_WAIT_S
        while time.monotonic() < deadline:
            if signal.getsignal(signum) not in (None, signal.SIG_DFL, signal.SIG_IGN):
                self.held = False
                _thread.interrupt_main(signal.Signals(signum))
                return
            time.sleep(0.05)

    def give_back(self) -> None:
        """The run's handler has the signal again (Lightning restored its default action, or never took it)."""
        signum, self.signum = self.signum, None
        if signum is None or not _main_thread():
            return
        if signal.getsignal(signum) in (None, signal.SIG_DFL, self._hold):
            signal.signal(signum, self.run.handle_signal)
            if self.held:
                self.held = False
                signal.raise_signal(signum)  # what came while held, handled as it would have been


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _on_slurm() -> bool:
    """A SLURM task, not an interactive shell: Lightning's ``SLURMEnvironment.detect()``, without its warnings."""
    return "SLURM_NTASKS" in os.environ and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive")


def _start(cfg: Any, name: Optional[str], tags: Optional[Mapping[str, Any]], root: Optional[str],
           store: str) -> "Run":  # fmt: skip
    """The job's run under a launcher, else a new one-run sweep; its config recorded (the Hydra job's by default)."""
    from .hydra_job import start_framework_run

    return start_framework_run(cfg, name=name, tags=tags, root=root, store=store)


def _just_saved(callback: ModelCheckpoint) -> Optional[str]:
    """The file ``ModelCheckpoint`` saved last: its own record of it, else the newest it knows of."""
    path = getattr(callback, "_last_checkpoint_saved", None)
    if path:
        return str(path)
    known = [p for p in (callback.last_model_path, callback.best_model_path, *callback.best_k_models) if p]
    existing = [str(p) for p in known if os.path.isfile(p)]
    return max(existing, key=os.path.getmtime) if existing else None


def _relative(path: Path, run_dir: Path) -> str:
    """``path`` relative to the run's directory when inside it (``checkpoints/x.ckpt``), else absolute."""
    try:
        return path.resolve().relative_to(run_dir.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def _number(value: Any) -> Optional[float]:
    if value is None:
        return None
    try:
        return float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError, RuntimeError):
        return None


def _is_sigterm_exit(error: BaseException) -> bool:
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    return isinstance(error, SIGTERMException)


def _rank_command() -> None:
    """Make Lightning's DDP launcher start the other ranks of a launched job as the same job.

    Lightning starts ranks 1.. by running the main module again with the same arguments
    (``python -m <module> <sys.argv[1:]>``, plus ``hydra.run.dir=...`` overrides when Hydra is
    configured). A job of ``hpctrack launch`` runs as ``python -m submitit.core._submit
    FOLDER``: run again, that is submitit's whole job a second time, which refuses Hydra's
    overrides and writes the job's result file. Pointed at :data:`RANK_MODULE` instead, each
    rank runs the same job of the sweep; ``LOCAL_RANK`` makes its run one that writes nothing.
    """
    from ..identity import identity_from_env

    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if main is None or spec is None or spec.name not in _JOB_MAIN_MODULES:
        return
    identity = identity_from_env()
    found = importlib.util.find_spec(RANK_MODULE)
    if identity is None or found is None:
        return
    main.__spec__ = found
    sys.argv[1:] = [str(identity.sweep_dir), str(identity.job_index)]
