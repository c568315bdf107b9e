"""Sweeps with files to register, and processes stopped at a named point to be killed there.

The sweeps are written with the library's own writers (``tests/synthetic.py``); the payloads
are plain files in each run's ``artifacts/``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

from synthetic import dead_pid, ended_sweep  # noqa: F401 - dead_pid: re-exported for the registry tests

SWEEP_ID = "20260101-000000-rgst"


def sweep_with_artifacts(root: Path, n: int = 3, size: int = 4096, name: str = "src"):
    """A completed sweep of ``n`` runs, each with ``artifacts/model.bin`` (random bytes) and a
    directory ``artifacts/model_dir`` of two files."""
    manifest = ended_sweep(root, n, sweep_id=SWEEP_ID, name=name)
    for i in range(n):
        folder = manifest.run_path(i) / "artifacts"
        (folder / "model_dir" / "sub").mkdir(parents=True, exist_ok=True)
        (folder / "model.bin").write_bytes(os.urandom(size + i))
        (folder / "model_dir" / "weights.bin").write_bytes(os.urandom(size))
        (folder / "model_dir" / "sub" / "config.txt").write_text(f"run {i}\n")
    return manifest


def _state(pid: int) -> Optional[str]:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()[0]


def stopped_at(point: str, code: str, env: Optional[Dict[str, str]] = None, timeout_s: float = 120) -> subprocess.Popen:
    """Run ``python -c code`` with ``HPCTRACK_TEST_PAUSE_AT=point`` and wait until it stopped itself there."""
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **(env or {}),
                            "HPCTRACK_TEST_PAUSE_AT": point}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while _state(proc.pid) != "T":
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the process ended (exit {proc.returncode}) before reaching {point}: {err.decode()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the process did not reach {point} within {timeout_s} s")
        time.sleep(0.02)
    return proc


def kill9(proc: subprocess.Popen) -> None:
    """SIGKILL and reap (a zombie would still count as alive)."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stdout.close() if proc.stdout else None
    proc.stderr.close() if proc.stderr else None


def lines(text: str) -> List[str]:
    return [line for line in text.splitlines() if line.strip()]
