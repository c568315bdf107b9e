"""Hydra jobs packed into one SLURM array task: each composes its own config, from the config files as
they are when it starts (the sweep's code snapshot for those inside the code), though the task reads
and parses each file only once while it stays the same file."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from conftest import run_cli
from slurm_helpers import wait_final

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

APP = """
import os
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig

import hpctrack


def _edit(path, text):
    Path(path).write_text(text)
    # An edit long settled: the file's times alone (the same size, an old mtime) must not hide it.
    old = time.time() - 3600
    os.utime(path, (old, old))


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg):
    with hpctrack.start_run(cfg) as run:
        run.summary["inside"] = int(cfg.inside)
        run.summary["outside"] = int(cfg.shared.v)
        recorded = Path(HydraConfig.get().runtime.output_dir) / ".hydra" / "config.yaml"
        run.summary["hydra_file"] = recorded.read_text()
    if cfg.x == 0:  # the task's first job edits both files before the next job of the task starts
        _edit(cfg.edit_inside, "defaults:\\n  - shared: base\\n  - _self_\\ninside: 2\\nx: 0\\nedit_inside: ''\\nedit_outside: ''\\n")
        _edit(cfg.edit_outside, "v: 2\\n")


if __name__ == "__main__":
    main()
"""


def _git(folder: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}  # fmt: skip
    subprocess.run(["git", *args], cwd=folder, check=True, env=env, capture_output=True)


def _settled(*paths: Path) -> None:
    """Files written a while ago, as config files usually are (a fresh one is read again by every job)."""
    old = time.time() - 3600
    for path in paths:
        os.utime(path, (old, old))


def test_packed_jobs_compose_from_the_config_files_as_they_are_when_each_starts(slurm_root, tmp_path):
    repo, shared = tmp_path / "repo", tmp_path / "shared"
    (repo / "conf").mkdir(parents=True)
    (shared / "shared").mkdir(parents=True)
    (repo / "app.py").write_text(textwrap.dedent(APP))
    conf = repo / "conf" / "config.yaml"
    conf.write_text("defaults:\n  - shared: base\n  - _self_\ninside: 1\nx: 0\nedit_inside: ''\nedit_outside: ''\n")
    (shared / "shared" / "base.yaml").write_text("v: 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "app.py", "conf/config.yaml")
    _git(repo, "commit", "-q", "-m", "app")
    _settled(conf, shared / "shared" / "base.yaml")

    proc = run_cli("launch", "--backend", "slurm", "--root", slurm_root, "--name", "packed-compose", str(repo / "app.py"),
                   "x=range(3)", f"hydra.searchpath=[file://{shared}]", f"edit_inside={conf}",
                   f"edit_outside={shared / 'shared' / 'base.yaml'}", "hydra.launcher.runs_per_task=3",
                   cwd=repo)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    status = wait_final(slurm_root, "packed-compose")
    assert status["summary"] == "3 jobs: 3 COMPLETED", status
    assert len({j["job_id"] for j in status["jobs"]}) == 1  # the three jobs ran in one task, one after another

    rows = json.loads(run_cli("table", "packed-compose", "--format", "json", "--root", slurm_root, check=True).stdout)
    # The config inside the code is the sweep's snapshot, whatever is edited; the one outside the code is
    # read as it is when each job starts: the edit made during job 0 reaches jobs 1 and 2.
    assert [(r["x"], r["inside"], r["outside"]) for r in rows] == [(0, 1, 1), (1, 1, 2), (2, 1, 2)]
    # Each job's own composed config, as Hydra records it for the job.
    assert ["x: 1" in r["hydra_file"] and "v: 2" in r["hydra_file"] for r in rows] == [False, True, False]
    assert ["x: 2" in r["hydra_file"] for r in rows] == [False, False, True]
