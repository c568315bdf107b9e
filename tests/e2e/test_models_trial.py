"""The model registry under a new user's mistakes and an attacker's plants, through ``python -m hpctrack models``.

Each test reproduces one finding of a trial: FIFOs given as payloads, symlinks planted inside the
registry, a damaged alias in one model, hand-edited alias files, broken pipes and misleading advice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import error_lines, run_cli

pytestmark = pytest.mark.e2e


def _registry(root, n: int = 2):
    from registry_fixtures import sweep_with_artifacts

    return sweep_with_artifacts(root, n)


def _one_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """``run_cli`` with a bounded wait: a command that hangs is a failure, not a stuck suite."""
    try:
        return run_cli(*args, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hpctrack {' '.join(args)} hung (still running after {timeout} s)")


def _register(*extra: str, run: str = "src/0", artifact: str = "artifacts/model.bin", name: str = "m"):
    return run_cli("models", "register", run, "--artifact", artifact, "--name", name, *extra, check=True)


def test_a_fifo_is_refused_in_one_line_without_hanging_and_nothing_is_staged(hpctrack_root):
    m = _registry(hpctrack_root)
    os.mkfifo(m.run_path(0) / "artifacts" / "pipe")
    os.mkfifo(m.run_path(0) / "artifacts" / "model_dir" / "sub" / "pipe")
    _one_error(_cli("models", "register", "src/0", "--artifact", "artifacts/pipe", "--name", "m"),
               "not a regular file", "pipe")  # fmt: skip
    _one_error(_cli("models", "register", "src/0", "--artifact", "artifacts/model_dir", "--name", "m"),
               "not a regular file", "sub/pipe")  # fmt: skip
    assert not (hpctrack_root / "registry" / "m").exists()
    # an existing model: the refusal leaves no staging directory either
    _register(name="m2")
    _one_error(_cli("models", "register", "src/0", "--artifact", "artifacts/model_dir", "--name", "m2"),
               "not a regular file")  # fmt: skip
    staging = hpctrack_root / "registry" / "m2" / ".staging"
    assert not staging.exists() or list(staging.iterdir()) == []
    assert run_cli("models", "verify").stdout.strip() == "registry ok"
