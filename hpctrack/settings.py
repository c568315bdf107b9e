"""Every ``HPCTRACK_*`` environment variable, parsed in one place.

A bad value names the variable, what it must be, and how to fix it, in one
line (:class:`~hpctrack.errors.ConfigError`), wherever it is read: in the CLI,
in a job, or in a background thread. Values are read when asked for, not
cached, so tests and jobs may change the environment.

The scheduler's identity of the current job (SLURM, submitit's local
executor) is read here too, with one precedence, by every module that needs it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from .errors import ConfigError

__all__ = ["Setting", "SETTINGS", "get", "describe", "scheduler_job_id"]


@dataclass(frozen=True)
class Setting:
    """One environment variable: its type, default, lower bound and meaning."""

    name: str
    kind: str  # "float", "int", "bool", "str"
    default: Any
    help: str
    minimum: Optional[float] = None  # inclusive
    positive: bool = False  # strictly greater than 0


_BOOL_TRUE = ("1", "true", "yes", "on")
_BOOL_FALSE = ("0", "false", "no", "off", "")

SETTINGS: Dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("HPCTRACK_ROOT", "str", None, "the storage root (see `--root`)"),
        Setting("HPCTRACK_DEBUG", "bool", False, "full tracebacks instead of one-line errors"),
        Setting(
            "HPCTRACK_FLUSH_INTERVAL_S",
            "float",
            5.0,
            "seconds between background writes of a run's buffered metrics",
            positive=True,
        ),
        Setting(
            "HPCTRACK_FLUSH_MAX_POINTS",
            "int",
            100_000,
            "buffered points that trigger a write before the interval",
            minimum=1,
        ),
        Setting("HPCTRACK_CHECKPOINT_KEEP", "int", 2, "checkpoints kept per run by save_checkpoint", minimum=1),
        Setting(
            "HPCTRACK_LOCK_TTL_S",
            "float",
            60.0,
            "seconds without a heartbeat after which a lock's holder is presumed dead",
            positive=True,
        ),
        Setting(
            "HPCTRACK_STALL_AFTER_S",
            "float",
            300.0,
            "a running job with no run.log call for this long (and 10x its step interval) is stalled",
            positive=True,
        ),
        Setting(
            "HPCTRACK_STALL_FACTOR",
            "float",
            10.0,
            "a running job is stalled after this many of its median step intervals without a run.log call",
            positive=True,
        ),
        Setting(
            "HPCTRACK_REGISTRY_STAGING_TTL_S",
            "float",
            86400.0,
            "seconds after which `hpctrack models gc` removes a registration's staging directory left by a "
            "process on another host (one on this host goes as soon as its process is gone)",
            positive=True,
        ),
        Setting(
            "HPCTRACK_TEST_PAUSE_AT",
            "str",
            "",
            "for fault tests only: a process that reaches the named point stops itself (SIGSTOP) there",
        ),
        Setting(
            "HPCTRACK_SECRET_KEYS",
            "str",
            "",
            "comma-separated patterns of config keys to mask as secrets, added to the built-in rule; "
            "'!pattern' exempts keys (e.g. 'license,*_dsn,!pad_token')",
        ),
        # Set by hpctrack for the processes of a job (hpctrack.identity), not by users.
        Setting("HPCTRACK_RUN_DIR", "str", None, "the directory of the run this job's processes work for"),
        Setting("HPCTRACK_RUN_ID", "str", None, "the id (<sweep id>/<job>) of the run this job's processes work for"),
        Setting("HPCTRACK_ATTEMPT", "str", None, "the attempt of that run (1, 2, ...)"),
        Setting("HPCTRACK_CODE_DIR", "str", None, "an --exec job's code: the snapshot of its launch directory"),
    )
}


def _parse(setting: Setting, raw: str) -> Any:
    text = raw.strip()
    if setting.kind == "str":
        return raw
    if setting.kind == "bool":
        if text.lower() in _BOOL_TRUE:
            return True
        if text.lower() in _BOOL_FALSE:
            return False
        raise ValueError("must be 1/0, true/false, yes/no or on/off")
    cast: Callable[[str], Any] = int if setting.kind == "int" else float
    try:
        value = cast(text)
    except ValueError:
        raise ValueError(f"must be {'an integer' if setting.kind == 'int' else 'a number'}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    if setting.positive and value <= 0:
        raise ValueError("must be greater than 0")
    if setting.minimum is not None and value < setting.minimum:
        raise ValueError(f"must be at least {setting.minimum:g}")
    return value


def get(name: str) -> Any:
    """The value of setting ``name`` from the environment, or its default.

    Raises
    ------
    ConfigError
        The variable is set to a value of the wrong type or out of range; the
        message names the variable and says how to fix it.
    """
    setting = SETTINGS[name]
    raw = os.environ.get(name)
    if raw is None or (raw.strip() == "" and setting.kind != "str"):
        return setting.default
    try:
        return _parse(setting, raw)
    except ValueError as err:
        raise ConfigError(f"{name}={raw!r} {err} ({setting.help}); fix it or unset it "
                          f"(default {setting.default!r})") from None  # fmt: skip


def describe() -> Dict[str, Dict[str, Any]]:
    """Every setting with its current raw value and default, for documentation and ``--help``."""
    return {name: {"value": os.environ.get(name), "default": s.default, "help": s.help} for name, s in SETTINGS.items()}


def scheduler_job_id() -> Optional[str]:
    """The scheduler's id of the current job: ``ARRAY_TASK`` for a SLURM array task, else SLURM's
    job id, else submitit's local job id; None outside a scheduler."""
    env = os.environ
    if "SLURM_JOB_ID" in env:
        array, task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
        return f"{array}_{task}" if array and task else env["SLURM_JOB_ID"]
    return env.get("SUBMITIT_LOCAL_JOB_ID")
