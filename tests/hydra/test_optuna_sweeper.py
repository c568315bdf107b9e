"""A real sweeper through hpctrack's launcher: hydra-optuna-sweeper asks for its trials in batches.

The study of ``n_trials`` becomes ONE hpctrack sweep of ``n_trials`` runs, named after the app, and
the best value in Optuna's ``optimization_results.yaml`` is the one ``hpctrack table`` shows.
"""

from __future__ import annotations

from hydra_sweeper import check_one_sweep_of_the_study, run_study


def test_an_optuna_study_over_three_batches_is_one_sweep(hpctrack_root, tmp_path):
    proc = run_study(tmp_path, "hpctrack_local")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Best value" in proc.stderr + proc.stdout
    check_one_sweep_of_the_study(tmp_path)
