"""The Zarr backend is an extra: without zarr installed, ``--store zarr`` says how to get it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import EXAMPLE, error_lines


def _without_zarr(tmp_path: Path) -> dict:
    """An environment whose ``import zarr`` fails, as it does where the extra is not installed."""
    shadow = tmp_path / "no-zarr"
    (shadow / "zarr").mkdir(parents=True)
    (shadow / "zarr" / "__init__.py").write_text("raise ImportError('No module named zarr')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(shadow), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def test_store_zarr_without_zarr_is_one_line_naming_the_extra(hpctrack_root, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hpctrack", "launch", str(EXAMPLE), "seed=0", "--store", "zarr"],
        capture_output=True,
        text=True,
        timeout=240,
        env=_without_zarr(tmp_path),
    )
    assert proc.returncode == 1, proc.stderr
    assert error_lines(proc.stderr) == [
        "Error: the zarr store needs the zarr package: pip install 'hpctrack[zarr]' (zarr 3 needs Python >= 3.11)"
    ], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not hpctrack_root.exists() or not any((hpctrack_root / "sweeps").glob("*")), "nothing is written"


def test_hdf5_default_needs_no_zarr(hpctrack_root, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hpctrack", "launch", str(EXAMPLE), "seed=0", "epochs=1"],
        capture_output=True,
        text=True,
        timeout=240,
        env=_without_zarr(tmp_path),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
