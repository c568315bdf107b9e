"""The README's quick start installs and runs on every supported Python found on PATH.

Each ``python3.X`` on PATH (X >= 10, as ``requires-python`` says) gets a fresh venv, ``pip install -e
'.[examples]'`` (pip reuses the wheels it already downloaded), and a tiny version of the quick start's
sweep and table. ``vermin`` (tests/unit/test_static_checks.py) covers the versions that are not installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest
from conftest import EXAMPLE, REPO

OLDEST = (3, 10)


def _pythons_on_path() -> Dict[str, str]:
    """``{"3.11": path}``: the first working ``python3.X`` on PATH for each supported X."""
    found: Dict[str, str] = {}
    for minor in range(OLDEST[1], 20):
        path = shutil.which(f"python3.{minor}")
        if path is None:
            continue
        try:
            proc = subprocess.run([path, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                                  text=True, timeout=60)  # fmt: skip
        except OSError:
            continue
        if proc.returncode == 0 and proc.stdout.split() == ["3", str(minor)]:  # not a shim of an absent version
            found[f"3.{minor}"] = path
    return found


PYTHONS = _pythons_on_path()


def test_a_supported_python_is_on_path():
    assert PYTHONS, "no python3.X (X >= 10) on PATH"


@pytest.mark.e2e
@pytest.mark.parametrize("version", sorted(PYTHONS, key=lambda v: int(v.split(".")[1])))
def test_quick_start_installs_and_runs(version: str, tmp_path: Path):
    venv = tmp_path / "venv"
    made = subprocess.run([PYTHONS[version], "-m", "venv", str(venv)], capture_output=True, text=True, timeout=300)
    if made.returncode != 0:
        pytest.skip(f"python{version} cannot create a venv here (Debian: apt-get install python{version}-venv): "
                    f"{made.stderr.strip().splitlines()[-1:] }")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", HPCTRACK_ROOT=str(tmp_path / "root"),
               XDG_CONFIG_HOME=str(tmp_path / "xdg"))  # fmt: skip

    def run(*args: str, timeout: float = 900) -> str:
        proc = subprocess.run(list(args), cwd=tmp_path, capture_output=True, text=True, env=env, timeout=timeout)
        assert proc.returncode == 0, (
            f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
        return proc.stdout

    run(str(venv / "bin" / "pip"), "install", "-q", "-e", f"{REPO}[examples]")
    # The quick start's sweep, tiny: two learning rates, one seed, one epoch.
    out = run(str(venv / "bin" / "hpctrack"), "launch", str(EXAMPLE), "optimizer.lr=0.01,0.1", "seed=0", "epochs=1",
              "--no-progress")  # fmt: skip
    assert re.search(r"2 jobs: 2 COMPLETED", out), out
    table = run(str(venv / "bin" / "hpctrack"), "table", "latest", "--grouped", "-m", "val/acc:max", "-m",
                "val/loss:last", "-m", "test/acc")  # fmt: skip
    rows: List[str] = [
        line.split()[0] for line in table.splitlines()[1:] if line.strip() and line.split()[0][0].isdigit()
    ]
    assert sorted(rows) == ["0.01", "0.1"], table
