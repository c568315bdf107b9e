"""Named points where a fault test can stop a real process (``HPCTRACK_TEST_PAUSE_AT``).

A test sets ``HPCTRACK_TEST_PAUSE_AT=<point>``; the process that reaches that point sends
itself SIGSTOP, so the test can see it stopped (``/proc/<pid>/stat``) and ``kill -9`` it
exactly there instead of at a random instant. Unset (always, outside tests), a point costs
one environment lookup.
"""

from __future__ import annotations

import os
import signal

__all__ = ["pause_point"]


def pause_point(name: str) -> None:
    """Stop this process (SIGSTOP) when ``HPCTRACK_TEST_PAUSE_AT`` names ``name``."""
    from . import settings

    wanted = settings.get("HPCTRACK_TEST_PAUSE_AT")
    if wanted and wanted == name and hasattr(signal, "SIGSTOP"):
        os.kill(os.getpid(), signal.SIGSTOP)
