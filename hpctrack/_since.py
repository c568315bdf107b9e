"""``--since``: a duration back from now (``30d``, ``12h``) or a date (``2026-10-01``), as epoch seconds."""

from __future__ import annotations

import re
import time
from typing import Optional

from .errors import ConfigError

__all__ = ["parse_since"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S")


def parse_since(text: str, now: Optional[float] = None) -> float:
    """The moment ``text`` names, in epoch seconds: ``30d`` is 30 days before ``now``; a date is local time.

    Units: ``s``, ``m`` (minutes), ``h``, ``d``, ``w``. Dates: ``YYYY-MM-DD``, optionally
    followed by ``THH:MM[:SS]`` (or a space instead of ``T``).

    Raises
    ------
    ConfigError
        Neither a duration nor a date (one line with examples).
    """
    value = text.strip()
    match = _DURATION.fullmatch(value)
    if match:
        return (time.time() if now is None else now) - float(match.group(1)) * _UNITS[match.group(2)]
    for fmt in _DATE_FORMATS:
        try:
            return time.mktime(time.strptime(value, fmt))
        except ValueError:
            continue
    raise ConfigError(f"--since {text!r}: write a duration back from now (30d, 12h, 90m, 2w) or a date "
                      "(2026-10-01, 2026-10-01T14:30)")  # fmt: skip
