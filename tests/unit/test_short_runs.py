"""Short runs packed into one task: what is the same for every run of the task is read once and
shared, and every run's provenance stays as complete as a lone run's."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Dict, List

import cloudpickle

import hpctrack
from hpctrack.launch._entrypoint import JOB_FN_FILE
from hpctrack.manifest import JobRecord, Manifest, create_sweep, new_sweep_id, update_manifest

REPO = Path(__file__).resolve().parents[2]


def _by_value(source: str, name: str) -> Any:
    """A job function cloudpickle stores by value (as it does a script's), from its source."""
    namespace = {"__name__": "__main__"}
    exec(textwrap.dedent(source), namespace)
    return namespace[name]


_short_job = _by_value(
    """
    def short_job(index):
        import os
        import hpctrack
        with hpctrack.start_run({"x": index}) as run:
            for step in range(3):
                run.log({"loss": 1.0 / (step + 1)}, step=step)
        # What the next run of the task starts with: its environment is its own, read when it starts.
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index)
""",
    "short_job",
)


def _git_repo(folder: Path) -> Path:
    folder.mkdir()
    (folder / "train.py").write_text("print('train')\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}  # fmt: skip
    for cmd in (["init", "-q"], ["add", "train.py"], ["commit", "-q", "-m", "first"]):
        subprocess.run(["git", *cmd], cwd=folder, check=True, env=env, capture_output=True)
    (folder / "train.py").write_text("print('train, changed')\n")  # a dirty tree: the diff is recorded
    return folder / "train.py"


def _sweep(root: Path, jobs: int, script: Path) -> Manifest:
    manifest = create_sweep(root, Manifest(id=new_sweep_id(), created=time.time(), backend="local", store="hdf5",
                                           jobs=[JobRecord(i, [], f"runs/{i}") for i in range(jobs)]))  # fmt: skip
    (manifest.path / JOB_FN_FILE).write_bytes(cloudpickle.dumps(_short_job))

    def change(m: Manifest) -> None:
        m.script = str(script)

    update_manifest(manifest.path, change)
    return manifest


def _python(code: str, cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=cwd,
                          env={**env, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def _provenance(manifest: Manifest, jobs: int) -> List[Dict[str, Any]]:
    sweep = hpctrack.load_sweep(str(manifest.path))
    return [sweep.run(i).info["provenance"] for i in range(jobs)]


COMMON = ("packages", "python", "platform", "hostname", "cpu_count", "git")


def test_a_packed_task_reads_what_its_runs_share_once_and_records_it_in_full_in_each(hpctrack_root, tmp_path):
    script = _git_repo(tmp_path / "repo")
    packed, lone = _sweep(hpctrack_root, 3, script), _sweep(hpctrack_root, 1, script)
    _python(f"from hpctrack.launch.slurm._task import run_task; run_task({str(packed.path)!r}, [0, 1, 2])", tmp_path)
    _python(f"from hpctrack.launch._entrypoint import run_job; run_job({str(lone.path)!r}, 0)", tmp_path)
    runs, (alone,) = _provenance(packed, 3), _provenance(lone, 1)

    # One read of the packages (and the rest the runs share) for the whole task, used by each run in turn.
    assert len({(p["shared"]["captured_at"], p["shared"]["pid"]) for p in runs}) == 1
    assert [p["shared"]["runs"] for p in runs] == [1, 2, 3]
    assert alone["shared"]["runs"] == 1 and alone["shared"]["pid"] != runs[0]["shared"]["pid"]
    # Every run records all of it, as a lone run does.
    assert alone["packages"] and any(p.startswith("h5py==") for p in alone["packages"])
    assert alone["git"]["available"] and alone["git"]["dirty"] and "changed" in alone["git"]["diff"]
    for prov in runs:
        assert {k: prov[k] for k in COMMON} == {k: alone[k] for k in COMMON}
        assert set(alone) == set(prov)
        assert prov["not_captured"] == alone["not_captured"]
    # What belongs to one run is read when that run starts.
    assert [p["captured_at"] for p in runs] == sorted(p["captured_at"] for p in runs)
    assert [p["environment"].get("CUDA_VISIBLE_DEVICES") for p in runs] == [None, "0", "1"]


def test_a_plain_run_of_a_script_without_hydra_does_not_import_hydra(hpctrack_root, tmp_path):
    code = textwrap.dedent("""
        import sys, hpctrack
        with hpctrack.start_run({"lr": 0.1}) as run:
            run.log({"loss": 1.0}, step=0)
        print("IMPORTED", sorted(m for m in ("hydra", "submitit") if m in sys.modules))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "IMPORTED []" in proc.stdout
    record = hpctrack.load_sweep("latest").run(0)
    assert record.params == {"lr": 0.1} and record.status["state"] == "completed"


def test_runs_packed_side_by_side_share_the_task_s_read(hpctrack_root, tmp_path):
    script = _git_repo(tmp_path / "repo")
    packed, lone = _sweep(hpctrack_root, 3, script), _sweep(hpctrack_root, 1, script)
    _python(f"from hpctrack.launch.slurm._task import run_task; run_task({str(packed.path)!r}, [0, 1, 2], "
            "'parallel')", tmp_path)  # fmt: skip
    _python(f"from hpctrack.launch._entrypoint import run_job; run_job({str(lone.path)!r}, 0)", tmp_path)
    sweep = hpctrack.load_sweep(str(packed.path))
    runs, (alone,) = _provenance(packed, 3), _provenance(lone, 1)
    pids = [sweep.run(i).info["pid"] for i in range(3)]

    # Each run has a process of its own; the task read what they share once, before starting them.
    assert len(set(pids)) == 3
    assert len({(p["shared"]["captured_at"], p["shared"]["pid"]) for p in runs}) == 1
    assert runs[0]["shared"]["pid"] not in pids
    for prov in runs:
        assert {k: prov[k] for k in COMMON} == {k: alone[k] for k in COMMON}
        assert prov["not_captured"] == alone["not_captured"]
    assert not list((packed.path / "logs").glob("shared-*"))  # the task's file went with the task


_editing_job = _by_value(
    """
    def editing_job(index):
        import os
        import hpctrack
        from hpctrack.manifest import update_manifest
        with hpctrack.start_run({"x": index}):
            pass
        if index == 0:  # between this job and the next of the task, the sweep's manifest changes
            def change(m):
                m.jobs[1].overrides = ["edited=1"]
            update_manifest(os.environ["SWEEP_DIR"], change)
""",
    "editing_job",
)


def test_a_packed_task_reads_its_manifest_again_when_it_changed_between_two_runs(hpctrack_root, tmp_path, monkeypatch):
    manifest = _sweep(hpctrack_root, 3, _git_repo(tmp_path / "repo"))
    (manifest.path / JOB_FN_FILE).write_bytes(cloudpickle.dumps(_editing_job))
    old = time.time() - 3600  # a manifest written long ago, as a queued sweep's usually is
    os.utime(manifest.path / "sweep.json", (old, old))
    monkeypatch.setenv("SWEEP_DIR", str(manifest.path))
    _python(f"from hpctrack.launch.slurm._task import run_task; run_task({str(manifest.path)!r}, [0, 1, 2])", tmp_path)
    sweep = hpctrack.load_sweep(str(manifest.path))
    assert [sweep.run(i).info["overrides"] for i in range(3)] == [[], ["edited=1"], []]
    assert [sweep.run(i).status["state"] for i in range(3)] == ["completed"] * 3
