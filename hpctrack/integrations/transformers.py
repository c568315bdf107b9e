"""Hugging Face ``Trainer`` into hpctrack: ``Trainer(..., callbacks=[HpctrackCallback()])``.

Only the world process zero records (``state.is_world_process_zero``); every other process of
the training does nothing at all. What it records, into the job's run under ``hpctrack launch``
(its job's process opened it), else into a one-run sweep it starts on the first event, as
:func:`hpctrack.start_run` does for a plain script:

- **Params.** ``TrainingArguments`` as ``hf.args.<field>`` and the model's config as
  ``hf.model.<field>`` (:data:`ARGS_PREFIX`, :data:`MODEL_PREFIX`), beside the Hydra config's
  keys. Every field is recorded, each value whole however long it is (a nested mapping such as
  ``id2label`` is one param); keys that look like secrets are masked, as everywhere in hpctrack.
- **Metrics.** Every number of a ``Trainer`` log at ``state.global_step``, named as
  WandbCallback names them: ``eval_loss`` -> ``eval/loss``, ``test_acc`` -> ``test/acc``, any
  other ``x`` -> ``train/x``; a key that already holds a ``/`` is kept as it is. The
  end-of-training values (``train_runtime``, ``train_loss``, ...; :data:`SUMMARY_KEYS`) go to
  the run's summary. A value that is not a number (a string, a list) is skipped, with one
  warning per key. A key is logged once per step: the same value again (``epoch`` in the
  evaluation's log, the metrics ``on_evaluate`` repeats) is not logged twice.
- **Checkpoints.** Each ``checkpoint-N`` directory the ``Trainer`` saves is recorded as a
  checkpoint of the run (``runs/<i>/checkpoints/<seq>/``, step N) holding only a reference to
  it (:data:`CHECKPOINT_REF`); the ``Trainer``'s files stay where they are, never copied.
- **Resume.** A ``Trainer`` resumed from ``checkpoint-N`` continues the run at step N + 1:
  the steps it replays supersede what an earlier attempt logged after step N (the newest
  attempt wins), so each step is in the history once. :func:`last_checkpoint` gives the
  ``checkpoint-N`` to resume from after ``hpctrack resume`` or a requeue.

A failure to record (a full disk, a run that has ended) is a :class:`HpctrackCallbackWarning`,
never an exception in the training loop: the first failure of each event is shown, later ones
are counted and told at the end of training.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import sys
import warnings
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Dict, Iterator, Mapping, Optional, Set, Tuple, Union, cast

from transformers import TrainerCallback  # the integration's framework: imported with this module only

from .._names import MAX_NAME_LENGTH
from ..checkpoint import CHECKPOINTS_DIR, Checkpoint, Checkpoints

if TYPE_CHECKING:
    from ..run import Run

__all__ = [
    "HpctrackCallback",
    "HpctrackCallbackWarning",
    "last_checkpoint",
    "metric_name",
    "ARGS_PREFIX",
    "MODEL_PREFIX",
    "SUMMARY_KEYS",
    "CHECKPOINT_REF",
]

#: Param keys of ``TrainingArguments``' fields.
ARGS_PREFIX = "hf.args."
#: Param keys of the model config's fields.
MODEL_PREFIX = "hf.model."
#: Values of the ``Trainer``'s end-of-training log that are one number per run: the run's summary
#: (WandbCallback's list, and the token rate the ``Trainer`` adds when it counts tokens).
SUMMARY_KEYS = frozenset(
    {"train_runtime", "train_samples_per_second", "train_steps_per_second", "train_tokens_per_second",
     "train_loss", "total_flos"}
)  # fmt: skip
#: The file in a run's checkpoint that names the ``Trainer``'s ``checkpoint-N`` directory (JSON).
CHECKPOINT_REF = "transformers.json"
_PREFIXES = ("eval", "test")
#: Where the frames between the user's code and a warning are: hpctrack, transformers, contextlib.
_INSIDE = (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,
    os.path.dirname(os.path.abspath(sys.modules["transformers"].__file__ or "")) + os.sep,
    os.path.abspath(contextlib.__file__),
)


class HpctrackCallbackWarning(UserWarning):
    """HpctrackCallback could not record something, or skipped a value; the training goes on."""


def metric_name(key: str) -> str:
    """The run's metric name for a ``Trainer`` log key: ``eval_x`` -> ``eval/x``, ``test_x`` -> ``test/x``,
    ``x`` -> ``train/x``; a key holding a ``/`` is already named and stays as it is."""
    if "/" in key:
        return key
    for prefix in _PREFIXES:
        if key.startswith(prefix + "_"):
            return f"{prefix}/{key[len(prefix) + 1 :]}"
    return f"train/{key}"


def _number(value: Any) -> Optional[Union[int, float]]:
    """``value`` as a Python number (a one-element tensor or array too), or None when it is not one."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real):
        return value  # type: ignore[return-value]  # int, float and numpy's scalars
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, (str, bytes)):
        try:
            got = item()  # a tensor or array of one element; more elements raise
        except (TypeError, ValueError, RuntimeError):
            return None
        if isinstance(got, numbers.Real):
            return int(got) if isinstance(got, bool) else got  # type: ignore[return-value]
    return None


def _same(a: float, b: float) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def _run_dir_of(run: Optional["Run"]) -> Optional[Path]:
    """The run directory of ``run``, else of this process's run (open here, or told by the environment)."""
    if run is not None:
        return Path(run.dir)
    from ..identity import identity_from_env
    from ..run import current_run

    active = current_run()
    if active is not None:
        return Path(active.dir)
    identity = identity_from_env()
    return identity.run_dir if identity is not None else None


def _reference(checkpoint: Checkpoint, run_dir: Path) -> Optional[Path]:
    """The ``checkpoint-N`` directory a run's checkpoint names, or None for a checkpoint that names none."""
    try:
        with open(checkpoint.path / CHECKPOINT_REF) as fh:
            ref = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(ref, dict):
        return None
    # Inside the run directory (the usual relative output_dir under `hpctrack launch`) it is kept relative,
    # so a sweep moved elsewhere still finds it.
    if isinstance(ref.get("in_run"), str):
        inside = Path(ref["in_run"])
        return None if inside.is_absolute() or ".." in inside.parts else run_dir / inside
    return Path(ref["path"]) if isinstance(ref.get("path"), str) else None


def last_checkpoint(run: Optional["Run"] = None) -> Optional[str]:
    """The newest ``checkpoint-N`` directory the run recorded that is still there, or None.

    ``trainer.train(resume_from_checkpoint=last_checkpoint())`` starts afresh on a run's
    first attempt, and continues from the run's newest checkpoint after ``hpctrack resume``
    or a requeue. The run is ``run``, else the one this process works for (the job's, from
    ``HPCTRACK_RUN_DIR``, on every rank); None outside a job.
    """
    run_dir = _run_dir_of(run)
    if run_dir is None:
        return None
    for checkpoint in reversed(Checkpoints(run_dir / CHECKPOINTS_DIR).all()):
        target = _reference(checkpoint, run_dir)
        if target is not None and target.is_dir():
            return str(target)
    return None


class HpctrackCallback(TrainerCallback):
    """Record a ``Trainer``'s params, metrics and checkpoints in an hpctrack run.

    ``Trainer(model=..., args=..., callbacks=[HpctrackCallback()])``. See the module's
    documentation for what is recorded, and under which names.

    Parameters
    ----------
    run:
        The run to record into. By default the run of this process: the job's under
        ``hpctrack launch``, the one a ``with hpctrack.start_run(cfg)`` block opened, else a
        one-run sweep created on the first event (as ``hpctrack.start_run()`` creates it).
    """

    def __init__(self, run: Optional["Run"] = None) -> None:
        self._run = run
        self._looked = run is not None  # the run was looked for: a process that records nothing looks once
        self._step: Optional[int] = None
        self._at_step: Dict[str, float] = {}  # metric -> value logged at self._step
        self._warned: Set[Tuple[str, str]] = set()
        self._failures: Dict[str, int] = {}  # event -> failures since the last said

    @property
    def run(self) -> Optional["Run"]:
        """The run the callback records into; None before its first event, and on other processes."""
        return self._run

    # -- the Trainer's events --------------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        """Record the arguments and the model config; when resumed from ``checkpoint-N``, continue at N + 1."""
        run = None
        with self._guard("on_train_begin"):
            run = self._run_for(state)
            if run is not None:
                if state.is_hyper_param_search:
                    self._warn_once("search", "hyperparameter search: every trial logs into the same run; "
                                    "`hpctrack launch --optimize` gives each trial its own")  # fmt: skip
                self._record_params(run, args, model)
        if run is not None and state.global_step > 0:
            self._resumed(run, args, int(state.global_step))

    def on_log(self, args: Any, state: Any, control: Any, logs: Optional[Mapping[str, Any]] = None,
               **kwargs: Any) -> None:  # fmt: skip
        """Log the numbers of ``logs`` at ``state.global_step``."""
        self._log_event("on_log", args, state, logs, kwargs.get("model"))

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Optional[Mapping[str, Any]] = None,
                    **kwargs: Any) -> None:  # fmt: skip
        """Log the evaluation's metrics not already logged at this step (``evaluate`` logs them first)."""
        self._log_event("on_evaluate", args, state, metrics, kwargs.get("model"))

    def on_predict(self, args: Any, state: Any, control: Any, metrics: Optional[Mapping[str, Any]] = None,
                   **kwargs: Any) -> None:  # fmt: skip
        """Log the metrics of ``Trainer.predict`` (``test_*`` -> ``test/*``) at ``state.global_step``."""
        self._log_event("on_predict", args, state, metrics, kwargs.get("model"))

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Record the ``checkpoint-N`` directory just saved as a checkpoint of the run, at step N."""
        if not state.is_world_process_zero:
            return
        with self._guard("on_save"):
            run = self._run_for(state, args, kwargs.get("model"))
            if run is None:
                return
            step = int(state.global_step)
            directory = Path(os.path.abspath(os.path.join(args.output_dir, f"checkpoint-{step}")))
            if not directory.is_dir():
                self._warn_once(("save", str(directory)), f"the Trainer's checkpoint {directory} is not there; "
                                "the run records no checkpoint for this save")  # fmt: skip
                return
            ref: Dict[str, Any] = {"format_version": 1, "path": str(directory), "global_step": step,
                                   "epoch": state.epoch, "best_metric": state.best_metric,
                                   "best_model_checkpoint": state.best_model_checkpoint}  # fmt: skip
            # Resolved both ways: the job's working directory is the run's, but getcwd() names it without links.
            real, run_dir = Path(os.path.realpath(directory)), Path(os.path.realpath(run.dir))
            if real.is_relative_to(run_dir):
                ref["in_run"] = str(real.relative_to(run_dir))
            # run.checkpoint writes the metrics logged so far first: the record is never newer than the history.
            with run.checkpoint(step=step) as recorded:
                (recorded / CHECKPOINT_REF).write_text(json.dumps(ref, indent=1))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Write what is buffered (the script may go on after training), and tell failures not yet told."""
        if not state.is_world_process_zero:
            return
        with self._guard("on_train_end"):
            if self._run is not None and not self._run.finished:
                self._run.flush()
        for event, count in sorted(self._failures.items()):
            if count:
                self._warn(f"{count} more failures of {event} were not shown; the run misses what they recorded")
        self._failures = {event: 0 for event in self._failures}

    # -- recording -------------------------------------------------------------------------------

    def _run_for(self, state: Any, args: Any = None, model: Any = None) -> Optional["Run"]:
        """The run to record into, found (or made) on the world process zero's first event; else None."""
        if not state.is_world_process_zero:
            return None
        if self._looked:
            return self._run
        self._looked = True
        from ..identity import identity_from_env
        from ..run import current_run

        if current_run() is None:
            identity = identity_from_env()
            if identity is not None:
                # A process its job started (torchrun inside the job, say): the job's own process is the
                # run's one writer, and a second sweep here would split the run in two.
                self._warn(f"this process records nothing: its job's run {identity.run_id} is written by the "
                           "job's own process (call trainer.train() there, or hpctrack.start_run() before it)")  # fmt: skip
                return None
        from .hydra_job import start_framework_run

        # The job's run (or a new one-run sweep), with the Hydra job's config unless the script recorded one.
        self._run = start_framework_run()
        if args is not None:  # an event before on_train_begin (evaluate before train): the params first
            self._record_params(self._run, args, model)
        return self._run

    def _record_params(self, run: "Run", args: Any, model: Any) -> None:
        params: Dict[str, Any] = {ARGS_PREFIX + str(k): v for k, v in args.to_dict().items()}
        config = getattr(model, "config", None)
        if config is not None:
            fields = config if isinstance(config, Mapping) else config.to_dict()
            params.update({MODEL_PREFIX + str(k): v for k, v in fields.items()})
        for key in [k for k in params if len(k) > MAX_NAME_LENGTH]:
            del params[key]
            self._warn_once(("key", key), f"param {key[:40]}... is not recorded: its name is longer than "
                            f"{MAX_NAME_LENGTH} characters")  # fmt: skip
        run.log_params(params, flatten=False)

    def _resumed(self, run: "Run", args: Any, step: int) -> None:
        """The Trainer restored a checkpoint of ``step``: the run continues after it (this attempt's points win).

        A store that lost the steps before it (``StoreError``) is raised, as ``run.latest_checkpoint()``
        raises it: training on would leave a gap in the run's history.
        """
        recorded: Optional[Checkpoint] = None
        path: Optional[str] = None
        with self._guard("on_train_begin"):
            run_dir = Path(os.path.abspath(run.dir))
            for checkpoint in reversed(Checkpoints(run_dir / CHECKPOINTS_DIR).all()):
                if checkpoint.step == step and _reference(checkpoint, run_dir) is not None:
                    recorded = checkpoint
                    break
            if recorded is None:
                guess = os.path.abspath(os.path.join(args.output_dir, f"checkpoint-{step}"))
                path = guess if os.path.isdir(guess) else None
        run.restored_from(step, checkpoint=recorded, path=path)

    def _log_event(self, event: str, args: Any, state: Any, values: Optional[Mapping[str, Any]], model: Any) -> None:
        if not state.is_world_process_zero or not values:
            return
        with self._guard(event):
            run = self._run_for(state, args, model)
            if run is not None:
                self._log(run, int(state.global_step), values)

    def _log(self, run: "Run", step: int, values: Mapping[str, Any]) -> None:
        if step != self._step:
            self._step, self._at_step = step, {}
        points: Dict[str, float] = {}
        for key, value in values.items():
            number = _number(value)
            if number is None:
                self._warn_once(("value", str(key)), f"{key!r} is not logged: a {type(value).__name__}, not a "
                                "number (the Trainer keeps it in state.log_history)")  # fmt: skip
                continue
            if key in SUMMARY_KEYS:
                run.summary[key] = number
                continue
            name = metric_name(str(key))
            seen = self._at_step.get(name)
            if seen is not None:
                if not _same(seen, number):
                    # evaluate() after train() ends at the step of the last evaluation: the history keeps
                    # one value per step (the first), the summary has the latest.
                    run.summary[name] = number
                    self._warn_once(("again", name), f"{name} logged again at step {step} with another value: the "
                                    "history keeps the first, the summary the latest (give evaluate() a "
                                    "metric_key_prefix to keep both as metrics)")  # fmt: skip
                continue  # logged at this step already (epoch in every log, evaluate's metrics twice)
            points[name] = number
        if points:
            run.log(points, step=step)
            self._at_step.update(points)

    # -- warnings: recording never stops the training --------------------------------------------

    @contextlib.contextmanager
    def _guard(self, event: str) -> Iterator[None]:
        try:
            yield
        except Exception as err:  # a tracking failure must never end the training (lightning#12833)
            from ..store.base import one_line

            if event not in self._failures:
                self._failures[event] = 0
                self._warn(f"{event} could not record: {type(err).__name__}: {one_line(err)}; the training goes on")
            else:
                self._failures[event] += 1

    def _warn_once(self, what: Any, message: str) -> None:
        key = (type(what).__name__, repr(what))
        if key not in self._warned:
            self._warned.add(key)
            self._warn(message)

    @staticmethod
    def _warn(message: str) -> None:
        # Said at the script's line that runs the Trainer (trainer.train()), not inside hpctrack or transformers.
        level, frame = 1, cast(Optional[FrameType], sys._getframe(0))
        while frame is not None and frame.f_code.co_filename.startswith(_INSIDE):
            frame, level = frame.f_back, level + 1
        warnings.warn(f"hpctrack: HpctrackCallback: {message}", HpctrackCallbackWarning, stacklevel=level)
