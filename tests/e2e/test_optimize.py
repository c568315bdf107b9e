"""``hpctrack launch --optimize``: a study run by a detached driver, through the CLI, with real processes.

The driver is killed with SIGKILL mid-study and started again by ``hpctrack resume``; the study
ends with exactly its trials, each run once. A pruner stops the clearly worse trials early.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SCRIPTS, error_lines, run_cli, wait_for

pytestmark = pytest.mark.e2e


def status_json(ref: str) -> dict:
    return json.loads(run_cli("status", ref, "--format", "json", check=True).stdout)


def manifest_of(root: Path) -> dict:
    (path,) = (root / "sweeps").glob("*/sweep.json")
    return json.loads(path.read_text())


def journal_trials(sweep_dir: Path) -> list:
    """The study's trials as Optuna's journal in the sweep directory has them."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(sweep_dir / "study" / "journal.log")))
    return optuna.load_study(study_name=sweep_dir.name, storage=storage).get_trials(deepcopy=False)


def launch_study(*args: str) -> subprocess.CompletedProcess:
    return run_cli("launch", "quadratic.py", *args, cwd=SCRIPTS)


def test_study_survives_kill_9_of_its_driver_and_ends_with_exactly_its_trials(hpctrack_root):
    proc = launch_study(
        "x=interval(-2,2)",
        "y=choice(-0.2,1.5)",
        "steps=3",
        "sleep_s=0.2",
        "--optimize",
        "loss:last:min",
        "--trials",
        "12",
        "-j",
        "3",
        "--name",
        "quad",
    )
    assert proc.returncode == 0, proc.stderr
    assert "12 trials, 3 at a time, driven by pid" in proc.stdout
    # The launch returned while the study goes on: its driver is a process of its own.
    m = manifest_of(hpctrack_root)
    assert m["format_version"] == 2 and m["study"]["objective"]["selector"] == "loss:last"
    sweep_dir = hpctrack_root / "sweeps" / m["id"]

    # Mid-study: some trials submitted, not all; the driver holds the study's lease.
    m = wait_for(
        "4 trials submitted", lambda: (lambda m: m if len(m["jobs"]) >= 4 else None)(manifest_of(hpctrack_root))
    )
    assert len(m["jobs"]) < 12
    assert status_json("quad")["study"]["driver"] == "running"
    pid = int(m["study"]["driver"]["pid"])
    os.kill(pid, signal.SIGKILL)
    wait_for("driver dead", lambda: status_json("quad")["study"]["driver"] == "dead")
    killed_at = len(manifest_of(hpctrack_root)["jobs"])
    shown = run_cli("status", "quad", check=True).stdout
    assert "`hpctrack resume quad` starts it again" in shown
    # Trials that were running go on and end while no driver runs; nothing new is submitted.
    wait_for("running trials ended", lambda: all(j["state"] not in ("PENDING", "RUNNING")
                                                 for j in status_json("quad")["jobs"]))  # fmt: skip
    assert len(manifest_of(hpctrack_root)["jobs"]) == killed_at

    resumed = run_cli("resume", "quad", check=True)
    assert "driver started again" in resumed.stdout
    again = run_cli("resume", "quad", check=True)  # a second resume never starts a second driver
    assert "nothing to resume" in again.stdout
    wait_for("study finished", lambda: status_json("quad")["study"]["driver"] == "finished", timeout_s=300)

    m = manifest_of(hpctrack_root)
    status = status_json("quad")
    assert len(m["jobs"]) == 12 and [j["state"] for j in status["jobs"]] == ["COMPLETED"] * 12
    assert sorted(p.name for p in (sweep_dir / "runs").iterdir()) == sorted(str(i) for i in range(12))
    trials = journal_trials(sweep_dir)
    assert len(trials) == 12 and all(t.state.name == "COMPLETE" for t in trials)
    jobs = sorted(t.user_attrs["job"] for t in trials)
    assert jobs == list(range(12))  # each trial is one job, each job one trial: none lost, none twice
    for trial in trials:  # the job ran the trial's parameters
        overrides = m["jobs"][trial.user_attrs["job"]]["overrides"]
        assert f"x={trial.params['x']!r}" in overrides and f"y={trial.params['y']!r}" in overrides
    assert m["study"]["restarts"] == 1
    # The optimum is at x=0.3, y=-0.2 (loss 0.033 at the last step): the study gets near it.
    table = json.loads(run_cli("table", "quad", "--format", "json", check=True).stdout)
    assert sorted(row["trial"] for row in table) == list(range(12))
    best = min(row["objective"] for row in table)
    assert best < 0.5, table
    assert status["study"]["done"] == 12 and status["study"]["best"]["value"] == pytest.approx(best)
    plot = run_cli("plot", "quad", "--optimization", "-o", str(hpctrack_root.parent / "opt.png"), check=True)
    assert (hpctrack_root.parent / "opt.png").stat().st_size > 0, plot.stderr


def test_pruner_stops_clearly_worse_trials_early_and_records_them_pruned(hpctrack_root):
    steps = 20
    # Seed 18 draws x = 0.9, 0.03 first, then mostly far from the optimum (0.3): 2.27, -1.91, 2.11, 1.5, 1.0, ...
    proc = launch_study(
        "x=interval(-3,3)",
        f"steps={steps}",
        "sleep_s=0.25",
        "stop_s=4",  # a pruned trial's job takes a while to stop: the study is finished only once it has
        "hydra.sweeper.seed=18",
        "--optimize",
        "loss:last:min",
        "--trials",
        "10",
        "-j",
        "2",
        "--prune",
        "median",
        "--sampler",
        "random",
        "--name",
        "pr",
    )
    assert proc.returncode == 0, proc.stderr
    # "finished" is said only once every trial's job has ended: a pruned trial's job still stopping is waited for.
    status = wait_for("study finished", lambda: (s := status_json("pr"))["study"]["driver"] == "finished" and s,
                      timeout_s=300, every_s=0.2)  # fmt: skip
    assert all(j["state"] not in ("PENDING", "RUNNING") for j in status["jobs"]), status["summary"]
    pruned = [j for j in status["jobs"] if j["state"] == "PRUNED"]
    completed = [j for j in status["jobs"] if j["state"] == "COMPLETED"]
    assert len(pruned) >= 3, status["summary"]
    assert len(pruned) + len(completed) == 10 and status["study"]["pruned"] == len(pruned)
    m = manifest_of(hpctrack_root)
    sweep_dir = hpctrack_root / "sweeps" / m["id"]
    trials = {t.user_attrs["job"]: t for t in journal_trials(sweep_dir)}
    best = min(trials[j["job"]].value for j in completed)
    for job in pruned:
        assert job["last_step"] is not None and job["last_step"] < steps - 1  # stopped early
        assert job["error"].startswith("pruned at step")
        trial = trials[job["job"]]
        assert trial.state.name == "PRUNED"
        # clearly worse: at the step it was stopped, it was already worse than the best trial ended
        assert trial.intermediate_values[max(trial.intermediate_values)] > best
    # PRUNED shows everywhere, and nothing resubmits it.
    assert "PRUNED" in run_cli("ls", check=True).stdout
    table = json.loads(run_cli("table", "pr", "--format", "json", check=True).stdout)
    assert {row["job"] for row in table if row["state"] == "PRUNED"} == {j["job"] for j in pruned}
    assert "nothing to resume" in run_cli("resume", "pr", check=True).stdout
    assert len(manifest_of(hpctrack_root)["jobs"]) == 10


def test_cancel_stops_the_driver_then_its_trials(hpctrack_root):
    proc = launch_study(
        "x=interval(-2,2)",
        "steps=200",
        "sleep_s=0.2",
        "--optimize",
        "loss:min",
        "--trials",
        "6",
        "-j",
        "2",
        "--name",
        "long",
    )
    assert proc.returncode == 0, proc.stderr
    wait_for("trials running", lambda: sum(j["state"] == "RUNNING" for j in status_json("long")["jobs"]) == 2)
    out = run_cli("cancel", "long", check=True)
    assert "driver stopped" in out.stderr + out.stdout
    status = wait_for("trials cancelled", lambda: (lambda s: s if all(j["state"] == "CANCELLED" for j in s["jobs"])
                                                   else None)(status_json("long")))  # fmt: skip
    assert status["study"]["driver"] == "stopped"
    assert len(status["jobs"]) == 2  # the driver stopped first: no trial was submitted after the cancel
    assert status["study"]["cancelled"] == 2 and status["study"]["failed"] == 0

    # resume continues the study: the cancelled trials are asked again, with their parameters
    cancelled_x = sorted(j["overrides"][0] for j in status["jobs"])
    assert "driver started again" in run_cli("resume", "long", check=True).stdout
    status = wait_for("two trials running again", lambda: (lambda s: s if sum(j["state"] == "RUNNING" for j in
                      s["jobs"]) == 2 else None)(status_json("long")))  # fmt: skip
    rerun = sorted(j["overrides"][0] for j in status["jobs"][2:4])
    assert rerun == cancelled_x
    run_cli("cancel", "long", check=True)


@pytest.mark.parametrize(
    "args, message",
    [
        (["x=interval(0,1)", "--optimize", "loss:min", "--trials", "0"], "--trials must be at least 1"),
        (["x=interval(0,1)", "--optimize", "loss", "--trials", "3"], "says no direction"),
        (["x=interval(0,1)", "--optimize", "loss:avg:min", "--trials", "3"], "unknown statistic 'avg'"),
        (["x=interval(1,0)", "--optimize", "loss:min", "--trials", "3"], "needs LOW < HIGH"),
        (["x=0.5", "--optimize", "loss:min", "--trials", "3"], "needs a search space"),
        (["z=interval(0,1)", "--optimize", "loss:min", "--trials", "3"], "'z'"),
        (["x=interval(0,1)", "--optimize", "loss:min"], "--optimize needs --trials"),
        (["x=interval(0,1)", "--trials", "3"], "--trials is an option of --optimize"),
        (["x=interval(0,1)", "--optimize", "loss:min", "--trials", "3", "--prune", "early"], "--prune must be one of"),
        (["x=interval(0,1)", "--optimize", "loss:min:min:min", "--trials", "3"], "one statistic at most"),
        (["x=interval(0,1)", "--optimize", "loss:min:foo", "--trials", "3"], "--optimize loss:min:min"),
        (["x=interval(0,1)"], "needs a study: add --optimize"),
    ],
)
def test_bad_study_is_one_line_before_anything_is_written(hpctrack_root, args, message):
    proc = launch_study(*args)
    assert proc.returncode == 1, proc.stdout
    (line,) = error_lines(proc.stderr)
    assert message in line
    assert not list((hpctrack_root / "sweeps").glob("*")) if (hpctrack_root / "sweeps").exists() else True


def test_without_optuna_optimize_names_the_extra(hpctrack_root):
    blocked = "import sys; sys.modules['optuna'] = None; from hpctrack.cli import main; main()"
    proc = subprocess.run([sys.executable, "-c", blocked, "launch", "quadratic.py", "x=interval(0,1)", "--optimize",
                           "loss:min", "--trials", "3"], cwd=SCRIPTS, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 1
    (line,) = error_lines(proc.stderr)
    assert "pip install 'hpctrack[optimize]'" in line
    assert not hpctrack_root.exists() or not list((hpctrack_root / "sweeps").glob("*"))


def test_a_trial_asked_before_the_driver_died_is_submitted_once_on_resume(hpctrack_root):
    """The driver died after asking a trial and recording its job on it, before the job reached the sweep."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    proc = launch_study("x=interval(-2,2)", "y=choice(-0.2,1.5)", "steps=10", "sleep_s=0.3", "--optimize",
                        "loss:min", "--trials", "4", "-j", "1", "--name", "gap")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    m = wait_for("first trial running", lambda: (lambda m: m if len(m["jobs"]) == 1 and m["jobs"][0]["state"] ==
                                                 "RUNNING" else None)(manifest_of(hpctrack_root)))  # fmt: skip
    os.kill(int(m["study"]["driver"]["pid"]), signal.SIGKILL)
    wait_for("driver dead", lambda: status_json("gap")["study"]["driver"] == "dead")
    sweep_dir = hpctrack_root / "sweeps" / m["id"]
    # What the dead driver left: the trial asked, its job index recorded on it, the job never added.
    storage = JournalStorage(JournalFileBackend(str(sweep_dir / "study" / "journal.log")))
    study = optuna.load_study(study_name=sweep_dir.name, storage=storage)
    assert len(manifest_of(hpctrack_root)["jobs"]) == 1
    trial = study.ask({"x": FloatDistribution(-2, 2), "y": CategoricalDistribution([-0.2, 1.5])})
    trial.set_user_attr("job", 1)

    assert "driver started again" in run_cli("resume", "gap", check=True).stdout
    wait_for("study finished", lambda: status_json("gap")["study"]["driver"] == "finished", timeout_s=300)
    m = manifest_of(hpctrack_root)
    trials = journal_trials(sweep_dir)
    assert len(m["jobs"]) == 4 and len(trials) == 4
    assert sorted(t.user_attrs["job"] for t in trials) == [0, 1, 2, 3]
    assert f"x={trial.params['x']!r}" in m["jobs"][1]["overrides"]  # the asked trial became job 1, with its params
    assert all(t.state.name == "COMPLETE" for t in trials)


def test_trials_whose_runs_never_logged_the_objective_are_failed_and_said(hpctrack_root):
    proc = launch_study("x=interval(-2,2)", "steps=2", "sleep_s=0", "--optimize", "nosuch/key:min", "--trials", "2",
                        "-j", "2", "--name", "nokey")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    wait_for("study finished", lambda: status_json("nokey")["study"]["driver"] == "finished")
    study = status_json("nokey")["study"]
    assert (study["done"], study["failed"], study["no_objective"], study["best"]) == (0, 2, 2, None)
    text = run_cli("status", "nokey", check=True).stdout
    assert "2 trials completed without a finite nosuch/key (failed)" in text
