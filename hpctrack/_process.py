"""Processes on this host: alive or not, and telling a live process from a later one given its pid.

Neutral ground for every backend and reader: the local runner records these
identities, ``status`` asks whether a writer's process still runs, and
``cancel`` signals only a process that is provably still the job's.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Dict, Optional

__all__ = ["pid_alive", "process_identity", "signal_when_parent_ends", "why_not_ours"]


def pid_alive(pid: int) -> bool:
    """True when ``pid`` is a live (not zombie) process on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def process_identity(pid: int) -> Dict[str, Any]:
    """What tells the live process ``pid`` on this host apart from a later one given the same pid.

    ``{"host", "pid", "start", "boot"}``: its start time in clock ticks since
    boot and the boot id; ``{}`` when it cannot be read (no such process, no /proc).
    """
    try:
        with open(f"/proc/{pid}/stat") as fh:
            start = int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return {}
    return {"host": socket.gethostname(), "pid": pid, "start": start, "boot": _boot_id()}


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def why_not_ours(recorded: Dict[str, Any], names: str) -> Optional[str]:
    """Why the process ``recorded`` (host, pid, start, boot) must not be signalled; None when it may be.

    It may be only on the host that recorded it, while it is alive with the
    recorded start time and boot, and while its command line names ``names``
    (the run's or the sweep's directory): a pid alone may have been reused.
    """
    host = recorded.get("host")
    if host and host != socket.gethostname():
        return f"runs on {host}, not on this host; cancel it there"
    try:
        pid = int(recorded["pid"])
    except (KeyError, TypeError, ValueError):
        return "has no process recorded"
    now = process_identity(pid)
    if not now or not pid_alive(pid):
        return "has already gone"
    if "start" in recorded and (recorded.get("start"), recorded.get("boot")) != (now["start"], now["boot"]):
        return f"has already gone (pid {pid} is now another process)"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "has already gone"
    if names not in cmdline:
        return f"has already gone (pid {pid} is now another process)"
    return None


#: prctl(2) option: the signal the kernel sends this process when its parent ends.
_PR_SET_PDEATHSIG = 1


def signal_when_parent_ends(parent: int, signum: int) -> bool:
    """Have ``signum`` sent to this process when its parent ``parent`` ends; sent at once if it already has.

    A local job's task must not outlive its controller: a task left running after
    its controller died (a cancel that interrupted the controller while it started
    the task, a kill of the job id) is out of reach of every later cancel. Linux
    only (``prctl(PR_SET_PDEATHSIG)``); returns False where it cannot be set.
    """
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    # Set only now: a parent that ended before (this process already handed on) never sends it.
    if os.getppid() != parent:
        signal.raise_signal(signum)
    return True
