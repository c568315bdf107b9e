"""The one length limit on names: sweep names, param keys, metric and summary keys, tags.

255 characters is what a file name may hold on the filesystems clusters use, and
far more than a name a person reads in a table. A longer name is refused where it
enters (``--name``, an override, ``start_run``, ``run.log``, ``run.summary``),
before anything is written; data that holds one anyway is still read and shown.
"""

from __future__ import annotations

from .errors import ConfigError

__all__ = ["MAX_NAME_LENGTH", "check_name", "check_sweep_name"]

MAX_NAME_LENGTH = 255


def check_name(what: str, name: str, fix: str = "") -> str:
    """``name`` if it is at most :data:`MAX_NAME_LENGTH` characters, else a one-line ConfigError.

    ``what`` names the kind (``sweep name``, ``param key``); ``fix`` says what to do instead.
    """
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigError(f"{what} {name[:40] + '...'!r} is {len(name)} characters long; at most {MAX_NAME_LENGTH} "
                          "are allowed" + (f" ({fix})" if fix else ""))  # fmt: skip
    return name


def check_sweep_name(name: str, where: str) -> str:
    """``name`` if it can name a sweep: :func:`check_name`, not empty, not ``latest`` (which always
    means the newest sweep) and without ``/`` (``SWEEP/JOB`` names a run); else a one-line ConfigError
    that names ``where`` it was given (``--name``)."""
    check_name("sweep name", name, f"give a shorter {where}")
    if not name.strip():
        raise ConfigError(f"a sweep name cannot be empty ({where})")
    if name == "latest":
        raise ConfigError(f"'latest' always means the newest sweep, so no sweep can be found by that name; "
                          f"choose another {where}")  # fmt: skip
    if "/" in name:
        raise ConfigError(f"sweep name {name!r} holds a '/', which names a run (SWEEP/JOB); use '-' or '_' in {where}")
    return name
