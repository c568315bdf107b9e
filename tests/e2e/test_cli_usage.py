"""Usage errors (a bad option value, a wrong argument) are one line saying what to fix, like every error.

And the Python API of ``hpctrack runs`` takes the natural Python forms of its arguments.
Each command is a real ``python -m hpctrack`` subprocess.
"""

from __future__ import annotations

import pytest
from conftest import EXAMPLE, error_lines, run_cli
from synthetic import ended_sweep, make_sweep, write_run

pytestmark = pytest.mark.e2e


@pytest.fixture
def ended(hpctrack_root):
    return ended_sweep(hpctrack_root, 3, sweep_id="20260101-000000-uuuu", name="usage")


@pytest.mark.parametrize(
    "args, says",
    [
        (["pin", "usage", "abc"], "a run is a job index"),
        (["runs", "--limit", "-1"], "--limit"),
        (["runs", "--limit", "0"], "--limit"),  # not "no run matches": runs match, none would be shown
        (["table", "usage", "--top", "-1"], "--top"),  # showed all rows but the last
        (["table", "usage", "--top", "0"], "--top"),
        (["launch", "train.py", "-j", "0"], "--parallel"),
        (["resume", "usage", "-j", "0"], "--parallel"),
        (["runs", "--since", "yesterday"], "--since"),
        (["ls", "--since", "yesterday"], "--since"),
        (["ls", "--tag"], "`hpctrack ls --help`"),  # named the group's help
        (["ls", "--format", "csv"], "--format"),
        (["note", "usage", "hi", "--clear"], "not both"),
        (["status", "usage", "--watch", "--interval", "-1"], "--interval"),
        (["status", "usage", "--nope"], "--nope"),
    ],
)
def test_usage_errors_are_one_line(ended, args, says):
    proc = run_cli(*args)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines == error_lines(proc.stderr), proc.stderr
    assert says in lines[0] and "--help" in lines[0], lines


def test_show_a_bad_job_part_names_the_job_not_a_missing_sweep(ended):
    for ref in ("usage/x", "usage/-1"):
        proc = run_cli("show", ref)
        line = error_lines(proc.stderr)
        assert proc.returncode == 1 and len(line) == 1, proc.stderr
        assert "no sweep" not in line[0] and "jobs 0-2" in line[0], line


def test_unpin_of_a_run_without_that_pin_says_so(ended):
    run_cli("pin", "usage", "0", "--reason", "keep", check=True)
    out = run_cli("unpin", "usage", "1", check=True).stdout
    assert "run 1 had no pin" in out, out
    out = run_cli("unpin", "usage", "0", "--reason", "other", check=True).stdout
    assert "run 0 had no pin 'other'" in out and "still pinned: 0" in out, out


def test_runs_in_python_takes_lists_and_a_single_string(ended):
    import hpctrack

    run_cli("tag", "usage", "stage=ablation", check=True)
    both = hpctrack.runs(sweeps=["usage", "nothing-*"])
    assert sorted(both["job"]) == [0, 1, 2]
    one = hpctrack.runs(sweeps="usage", tags="stage=ablation")
    assert sorted(one["job"]) == [0, 1, 2]


def test_an_id_prefix_two_sweeps_share_is_named_ambiguous_with_both_ids(ended, hpctrack_root):
    """`show 2026` with two sweeps of 2026 is not "no sweep": it says which ids it could mean."""
    make_sweep(hpctrack_root, 1, sweep_id="20260102-000000-vvvv", name="other")
    proc = run_cli("show", "2026")
    lines = error_lines(proc.stderr)
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert "ambiguous" in lines[0] and "20260101-000000-uuuu" in lines[0] and "20260102-000000-vvvv" in lines[0]


@pytest.mark.parametrize(
    "args, says",
    [
        (["--nope", "1"], "unknown option '--nope'"),  # was Hydra's "malformed override '1'"
        (["--mem-gb", "8"], "--mem-gb is a SLURM option; add --backend slurm"),
        (["--cpus-per-task", "4"], "--cpus-per-task is a SLURM option"),
        # was Hydra's "Key 'runs_per_task' not in 'LocalLauncherConf'"
        (
            ["hydra.launcher.runs_per_task=2"],
            "hydra.launcher.runs_per_task=2: a SLURM launcher setting; add --backend slurm",
        ),
        (["hydra.launcher.nodes_please=2"], "the local launcher has no setting 'nodes_please' (it has: "),
        (["--name", "latest"], "'latest' always means the newest sweep"),  # the sweep could never be named
        (["--name", "my/sweep"], "'/'"),  # SWEEP/JOB names a run: the name would be read as one
    ],
)
def test_launch_names_an_option_it_does_not_take_and_writes_nothing(hpctrack_root, tmp_path, args, says):
    proc = run_cli("launch", str(EXAMPLE), "epochs=1", *args, cwd=tmp_path)
    lines = error_lines(proc.stderr)
    assert proc.returncode == 1 and len(lines) == 1 and says in lines[0], proc.stderr
    assert not (hpctrack_root / "sweeps").exists() or not any((hpctrack_root / "sweeps").iterdir())


def test_a_reader_that_stops_early_gets_no_error(ended, hpctrack_root):
    """`hpctrack table SWEEP | head -1`: the reader closing the pipe is not an error of hpctrack's."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "HPCTRACK_ROOT": str(hpctrack_root)}
    for command in (["table", "usage"], ["status", "usage"], ["runs"], ["ls"]):
        # `true` has exited (closing the pipe) long before hpctrack writes its first line
        proc = subprocess.run(f"{sys.executable} -m hpctrack {' '.join(command)} | true", shell=True,
                              capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
        assert proc.stderr == "", (command, proc.stderr)


def test_status_stalled_without_a_stalled_job_says_so(ended):
    """It printed the table's title and an empty header row."""
    out = run_cli("status", "usage", "--stalled", check=True).stdout
    assert "no job has stalled" in out and "overrides" not in out, out
    assert "3 jobs: 3 COMPLETED" in out, out


def test_show_of_a_run_stopped_before_its_first_step(hpctrack_root):
    """`last step: -1` and `error: KeyboardInterrupt: KeyboardInterrupt` read as a step -1 and a stutter."""
    manifest = make_sweep(hpctrack_root, 1, sweep_id="20260104-000000-cccc", name="early")
    write_run(manifest, 0, steps=0, state="cancelled", last_step=-1,
              error={"type": "KeyboardInterrupt", "message": "KeyboardInterrupt"})  # fmt: skip
    out = run_cli("show", "early/0", check=True).stdout
    assert "last step: none (nothing logged)" in out and "-1" not in out.split("last step:")[1].split("\n")[0], out
    assert "error:      KeyboardInterrupt\n" in out, out


def test_grouped_cells_without_a_spread_show_the_mean_alone(hpctrack_root):
    """A group of one run has no std: its cell read `0.2 ± `; a table of one group marked it `* best`."""
    for sweep_id, name, n in (("20260105-000000-dddd", "single", 1), ("20260105-000000-eeee", "pairs", 2)):
        ended_sweep(hpctrack_root, n, sweep_id=sweep_id, name=name)
    out = run_cli("table", "pairs", "--grouped", "-m", "loss:min", check=True).stdout
    assert "±" not in "".join(out.splitlines()[1:]) and "* best" in out, out  # header keeps "(mean ± std)"
    one = run_cli("table", "single", "--grouped", "-m", "loss:min", check=True).stdout
    assert "* best" not in one, one


def test_a_seed_key_the_sweep_does_not_sweep_is_refused(ended):
    """`--grouped --seed-keys sed` grouped by the seed too (one run per group) without a word."""
    proc = run_cli("table", "usage", "--grouped", "--seed-keys", "sed")
    lines = error_lines(proc.stderr)
    assert proc.returncode == 1 and len(lines) == 1 and "seed key 'sed'" in lines[0] and "x" in lines[0], proc.stderr
