"""Launch-time validation of large sweeps, and ``launch --dry-run``.

The validation composes one config per combination of config-group choices
instead of one per job; a bad override in any single job is still refused,
with the message a launch gave when every job was composed.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

import pytest
from conftest import SCRIPTS, error_lines, run_cli

GROUPED = SCRIPTS / "grouped.py"


def _net_values(n: int, bad: int) -> str:
    """``net={width:0},{width:1},...``: job ``bad`` (0-based) misspells the key."""
    items = [f"{{{'widht' if i == bad else 'width'}:{i}}}" for i in range(n)]
    return "net=" + ",".join(items)


def _nothing_written(root: Path) -> bool:
    return not (root / "sweeps").exists() or not any((root / "sweeps").iterdir())


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_typo_in_the_900th_job_is_refused_at_launch(hpctrack_root, dry_run):
    args = ["launch", str(GROUPED), _net_values(1000, bad=899)] + (["--dry-run"] if dry_run else [])
    proc = run_cli(*args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = error_lines(proc.stderr)
    assert errors == ["Error: unknown config key 'net.widht' for grouped.py (did you mean 'net.width'?); "
                      "to add a new key write +net.widht=VALUE"], proc.stderr  # fmt: skip
    assert "dry run" not in proc.stdout
    assert _nothing_written(hpctrack_root)


def test_a_bad_value_for_a_typed_key_in_one_job_is_refused(hpctrack_root):
    values = ",".join(str(i) if i != 700 else "many" for i in range(800))
    proc = run_cli("launch", str(GROUPED), f"train.epochs={values}", "--dry-run")
    assert proc.returncode == 1
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and errors[0].startswith("Error: Error merging override train.epochs=many"), proc.stderr
    assert "could not be converted to Integer" in errors[0]


def test_each_group_combination_is_composed_once(hpctrack_root, monkeypatch, tmp_path):
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    from hpctrack.launch.script import launch_script

    composed: List[List[str]] = []
    original = ConfigLoaderImpl.load_sweep_config

    def counting(self, master_config, sweep_overrides):  # type: ignore[no-untyped-def]
        composed.append(list(sweep_overrides))
        return original(self, master_config, sweep_overrides)

    monkeypatch.setattr(ConfigLoaderImpl, "load_sweep_config", counting)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    overrides = ["opt=sgd,adam", "data=small,large", "+i=range(50)", "net.width=4,8", "train.scale=0.5"]
    assert launch_script(str(GROUPED), overrides, dry_run=True, progress=False) is None
    # 2 x 2 x 50 x 2 = 400 jobs; one composition per (opt, data) choice, with those overrides only
    assert sorted(map(tuple, composed)) == [("opt=adam", "data=large"), ("opt=adam", "data=small"),
                                            ("opt=sgd", "data=large"), ("opt=sgd", "data=small")]  # fmt: skip
    assert _nothing_written(hpctrack_root)


def test_an_override_on_a_missing_key_of_one_group_option_is_refused(hpctrack_root):
    # opt.momentum exists under opt=sgd, not under opt=adam: the first adam job is refused
    proc = run_cli("launch", str(GROUPED), "+i=range(3)", "opt=sgd,adam", "opt.momentum=0.5", "--dry-run")
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == ["Error: unknown config key 'opt.momentum' for grouped.py; "
                                        "to add a new key write +opt.momentum=VALUE"], proc.stderr  # fmt: skip


def test_a_dry_run_prints_the_plan_and_writes_nothing(hpctrack_root, tmp_path, monkeypatch):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    proc = run_cli("launch", str(GROUPED), "+i=range(1000)", "opt=sgd", "--dry-run", "-j", "4")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "dry run: 1000 jobs would be submitted to local (nothing submitted or written)"
    assert lines[1:8] == ["    #0 : +i=0 opt=sgd", "    #1 : +i=1 opt=sgd", "    #2 : +i=2 opt=sgd", "    ... 994 more",
                          "    #997 : +i=997 opt=sgd", "    #998 : +i=998 opt=sgd", "    #999 : +i=999 opt=sgd"]  # fmt: skip
    assert lines[8] == "local processes: 4 at a time (4 at most)"
    assert not hpctrack_root.exists() or _nothing_written(hpctrack_root)
    assert not any(tmp.iterdir())  # Hydra's temporary sweep directory is gone too


def test_a_sweeper_chosen_by_the_scripts_config_is_kept(hpctrack_root):
    # The config's own sweeper is the one that runs, not hpctrack's basic sweeper in its place. Here it is
    # hpctrack_optimize, which outside `launch --optimize` finds no study's sweep and launches nothing,
    # where the basic sweeper would have run both jobs.
    proc = run_cli("launch", str(SCRIPTS / "own_sweeper.py"), "x=1,2")
    assert proc.returncode == 1, proc.stdout
    assert error_lines(proc.stderr)[0].startswith("Error: no sweep manifest at "), proc.stderr
    assert not list(hpctrack_root.rglob("runs"))
