"""The run a process works for, told through its environment.

A job's run is opened by the job's first process (the launcher's entry point, or a plain
``python train.py``). Everything that process starts inherits its environment: the ranks a
framework spawns (Lightning's DDP, ``torch.multiprocessing``), the command of an
``hpctrack launch --exec`` job and the ``hpctrack log`` calls inside it, ``srun`` steps. So
each knows its run, and which attempt of it this is, without a broadcast (MLflow users pass
the run id from rank 0 by hand), and a requeued attempt exports its own number.

``HPCTRACK_RUN_DIR``
    The run's directory (``ROOT/sweeps/<sweep id>/runs/<job>``), absolute.
``HPCTRACK_RUN_ID``
    ``<sweep id>/<job>``: what ``hpctrack show`` takes.
``HPCTRACK_ATTEMPT``
    1, then 2, 3, ... each time a requeue or resume reopens the run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional

from .errors import ConfigError

if TYPE_CHECKING:
    from .run import Run

__all__ = ["RunIdentity", "RUN_DIR_ENV", "RUN_ID_ENV", "ATTEMPT_ENV", "export_identity", "identity_from_env"]

RUN_DIR_ENV = "HPCTRACK_RUN_DIR"
RUN_ID_ENV = "HPCTRACK_RUN_ID"
ATTEMPT_ENV = "HPCTRACK_ATTEMPT"


@dataclass(frozen=True)
class RunIdentity:
    """Which run, and which attempt of it, a process works for.

    Attributes
    ----------
    run_dir:
        The run's directory, absolute.
    run_id:
        ``<sweep id>/<job index>``.
    attempt:
        The attempt's number, from 1.
    """

    run_dir: Path
    run_id: str
    attempt: int

    @property
    def sweep_dir(self) -> Path:
        """The sweep's directory (the run's is ``runs/<job>`` in it)."""
        return self.run_dir.parent.parent

    @property
    def job_index(self) -> int:
        """The job's index in its sweep."""
        return int(self.run_id.rsplit("/", 1)[1])

    def environ(self) -> Dict[str, str]:
        """The variables that tell a process this identity."""
        return {RUN_DIR_ENV: str(self.run_dir), RUN_ID_ENV: self.run_id, ATTEMPT_ENV: str(self.attempt)}


def export_identity(run: "Run") -> Optional[RunIdentity]:
    """Put ``run``'s identity into this process's environment, for every process it starts.

    When the run ends, the variables are withdrawn (what they held before comes back), so that
    what the process starts afterwards (a second training, a test session's next job) does not
    claim the ended run. Returns the identity, or None (nothing exported) for a run that does not
    know its id: a rank other than 0 that could not learn rank 0's run.
    """
    if run.run_id is None:
        return None
    identity = RunIdentity(run_dir=Path(os.path.abspath(run.run_dir)), run_id=run.run_id, attempt=run.attempt)
    told = identity.environ()
    before = {name: os.environ.get(name) for name in told}
    os.environ.update(told)

    def withdraw(status: Any, error_line: Optional[str]) -> None:
        if all(os.environ.get(name) == value for name, value in told.items()):  # not since told another run
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    run._on_finish.append(withdraw)
    return identity


def identity_from_env(environ: Optional[Mapping[str, str]] = None) -> Optional[RunIdentity]:
    """The run this process works for, from ``HPCTRACK_RUN_DIR``/``_RUN_ID``/``_ATTEMPT``; None outside a run.

    Raises
    ------
    ConfigError
        The variables are there but do not make an identity (one of them missing, an attempt
        that is not a whole number, a run directory that is not absolute, a run id that does
        not end in the run directory's job index): the message names the variable.
    """
    from . import settings

    names = (RUN_DIR_ENV, RUN_ID_ENV, ATTEMPT_ENV)
    if environ is None:
        values = {name: (settings.get(name) or "").strip() for name in names}
    else:
        values = {name: environ.get(name, "").strip() for name in names}
    if not any(values.values()):
        return None
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ConfigError(f"{missing[0]} is not set, but {', '.join(n for n in values if n not in missing)} is: "
                          "a job's run is told by all three (unset them all outside a job)")  # fmt: skip
    run_dir = Path(values[RUN_DIR_ENV])
    if not run_dir.is_absolute():
        raise ConfigError(f"{RUN_DIR_ENV}={values[RUN_DIR_ENV]!r} is not an absolute path")
    if not values[ATTEMPT_ENV].isdigit() or int(values[ATTEMPT_ENV]) < 1:
        raise ConfigError(f"{ATTEMPT_ENV}={values[ATTEMPT_ENV]!r} is not an attempt number (1, 2, ...)")
    run_id = values[RUN_ID_ENV]
    sweep_id, _, job = run_id.rpartition("/")
    if not sweep_id or job != run_dir.name or run_dir.parent.parent.name != sweep_id:
        raise ConfigError(f"{RUN_ID_ENV}={run_id!r} does not name the run in {RUN_DIR_ENV}={run_dir} "
                          "(<sweep id>/<job> of ROOT/sweeps/<sweep id>/runs/<job>)")  # fmt: skip
    return RunIdentity(run_dir=run_dir, run_id=run_id, attempt=int(values[ATTEMPT_ENV]))
