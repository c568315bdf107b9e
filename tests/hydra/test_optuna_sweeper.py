"""A real sweeper through hpctrack's launcher: hydra-optuna-sweeper asks for its trials in batches.

The study of ``n_trials`` becomes ONE hpctrack sweep of ``n_trials`` runs, named after the app, and
the best value in Optuna's ``optimization_results.yaml`` is the one ``hpctrack table`` shows.
"""

from __future__ import annotations

import json

from conftest import run_cli
from hydra_sweeper import check_one_sweep_of_the_study, run_study


def test_an_optuna_study_over_three_batches_is_one_sweep(hpctrack_root, tmp_path):
    proc = run_study(tmp_path, "hpctrack_local")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Best value" in proc.stderr + proc.stdout
    check_one_sweep_of_the_study(tmp_path)


def test_a_sweeper_that_needs_values_from_a_launch_that_wont_wait_is_refused_first(hpctrack_root, tmp_path):
    proc = run_study(tmp_path, "hpctrack_local", "hydra.launcher.detach=true")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "add hydra.launcher.detach=false" in proc.stderr and "--optimize" in proc.stderr
    assert json.loads(run_cli("ls", "--format", "json", check=True).stdout) == []  # nothing was submitted
