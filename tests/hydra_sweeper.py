"""hydra-optuna-sweeper through hpctrack's launcher: its environment (made once), a study, and its checks.

hydra-optuna-sweeper 1.2.0 (the newest) requires optuna<3, while ``hpctrack launch --optimize``
needs optuna>=4 (its journal storage): the two cannot share one environment, so the sweeper's tests
run the app with this environment's python. It has hpctrack installed editable from this checkout.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import run_cli
from filelock import FileLock

REPO = Path(__file__).resolve().parent.parent
#: What the environment holds besides hpctrack.
REQUIREMENTS = ["hydra-optuna-sweeper==1.2.0"]


def sweeper_python() -> Path:
    """The python of the environment, made on first use (pip, about half a minute) and reused after."""
    key = hashlib.sha256(" ".join([sys.version, *REQUIREMENTS]).encode()).hexdigest()[:12]
    venv = REPO / ".cache" / f"optuna-sweeper-{key}"
    python = venv / "bin" / "python"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(venv) + ".lock"):  # test workers share one environment
        if not (venv / "ready").exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", str(REPO), *REQUIREMENTS],
                                 capture_output=True, text=True)  # fmt: skip
            if pip.returncode != 0:
                raise RuntimeError(f"could not make the sweeper's environment {venv}:\n{pip.stdout}{pip.stderr}")
            (venv / "ready").write_text("\n".join(REQUIREMENTS) + "\n")
    return python


APP = REPO / "tests" / "hydra" / "app" / "quadratic.py"


def run_study(tmp_path: Path, launcher: str, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python quadratic.py --multirun hydra/sweeper=optuna ...``: 6 trials, 2 per batch."""
    return subprocess.run(
        [str(sweeper_python()), str(APP), "--multirun", "hydra/sweeper=optuna", f"hydra/launcher={launcher}",
         "hydra.sweeper.n_trials=6", "hydra.sweeper.n_jobs=2", "hydra.sweeper.sampler.seed=1",
         "x=interval(-5,5)", "y=interval(-5,5)", f"hydra.sweep.dir={tmp_path / 'multirun'}",
         "hydra.launcher.progress=false", *extra],
        cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=dict(os.environ),
    )  # fmt: skip


def check_one_sweep_of_the_study(tmp_path: Path, *root: str) -> None:
    """One sweep named after the app, with every trial, and Optuna's best value is the table's best."""
    listing = json.loads(run_cli("ls", "--format", "json", *root, check=True).stdout)
    assert len(listing) == 1, listing
    status = json.loads(run_cli("status", "quadratic", "--format", "json", *root, check=True).stdout)
    assert status["summary"] == "6 jobs: 6 COMPLETED", status["summary"]
    assert [j["job"] for j in status["jobs"]] == list(range(6))
    rows = json.loads(run_cli("table", "quadratic", "--format", "json", *root, check=True).stdout)
    assert len(rows) == 6 and len({(r["x"], r["y"]) for r in rows}) == 6  # six distinct trials
    for row in rows:
        assert row["loss"] == pytest.approx((row["x"] - 2) ** 2 + (row["y"] + 1) ** 2)
    results = yaml.safe_load((tmp_path / "multirun" / "optimization_results.yaml").read_text())
    best = min(rows, key=lambda r: r["loss"])
    assert results["best_value"] == pytest.approx(best["loss"])
    assert results["best_params"] == {"x": pytest.approx(best["x"]), "y": pytest.approx(best["y"])}
    # Hydra's output directory of each trial is its own, and linked with its run both ways
    shown = json.loads(run_cli("show", "quadratic/4", "--format", "json", *root, check=True).stdout)
    assert shown["hydra"]["output_dir"] == str(tmp_path / "multirun" / "4")
    link = json.loads((tmp_path / "multirun" / "4" / ".hpctrack_run").read_text())
    assert link["run_id"] == shown["run_id"]
