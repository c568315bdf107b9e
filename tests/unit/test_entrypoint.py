"""The job entry point: signals from its first instruction on reach the run, and a job imports the
modules of the code snapshot it was given."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cloudpickle

import hpctrack
from hpctrack import endrecord
from hpctrack.launch._entrypoint import JOB_FN_FILE
from hpctrack.manifest import JobRecord, Manifest, create_sweep, new_sweep_id, update_manifest
from hpctrack.store import open_store

REPO = Path(__file__).resolve().parents[2]


def _sweep(root: Path, job_fn, jobs: int = 1) -> Manifest:
    manifest = create_sweep(root, Manifest(id=new_sweep_id(), created=time.time(), backend="local", store="hdf5",
                                           jobs=[JobRecord(i, [], f"runs/{i}") for i in range(jobs)]))  # fmt: skip
    (manifest.path / JOB_FN_FILE).write_bytes(cloudpickle.dumps(job_fn))
    return manifest


def _run_job(manifest: Manifest, before: str = "") -> subprocess.CompletedProcess:
    code = textwrap.dedent(before) + textwrap.dedent(f"""
        from hpctrack.launch._entrypoint import run_job
        run_job({str(manifest.path)!r}, 0)
    """)
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _by_value(source: str, name: str):
    """A job function cloudpickle stores by value (as it does a script's), from its source."""
    namespace = {"__name__": "__main__"}
    exec(textwrap.dedent(source), namespace)
    return namespace[name]


_sleep_job = _by_value(
    """
    def sleep_job(index):
        import time
        time.sleep(30)
""",
    "sleep_job",
)


def test_a_sigterm_that_lands_while_the_job_starts_is_recorded_by_its_run(hpctrack_root):
    manifest = _sweep(hpctrack_root, _sleep_job)
    # The signal arrives before the run exists (here: while the job reads its SLURM identity).
    proc = _run_job(
        manifest,
        """
        import os, signal
        import hpctrack.launch.slurm._task as ep
        real = ep._slurm_identity
        def signalled(manifest):
            os.kill(os.getpid(), signal.SIGTERM)
            return real(manifest)
        ep._slurm_identity = signalled
    """,
    )
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    run_dir = manifest.run_path(0)
    record = open_store(run_dir, "hdf5").read()
    assert record.status["state"] == "interrupted"
    assert record.status["attempts"][-1]["signal"] == "SIGTERM"
    end = endrecord.read(run_dir)
    assert end["state"] == "interrupted" and end["signal"] == "SIGTERM" and end["error"] == "terminated by SIGTERM"


_import_helper = _by_value(
    """
    def import_helper(index):
        import helper_of_the_snapshot
        return helper_of_the_snapshot.WHERE
""",
    "import_helper",
)


def test_a_job_imports_the_modules_of_its_own_code_snapshot(hpctrack_root, tmp_path):
    for name in ("sweep-code", "job-code"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "train.py").write_text("")
        (tmp_path / name / "helper_of_the_snapshot.py").write_text(f"WHERE = {name!r}\n")
    manifest = _sweep(hpctrack_root, _import_helper)

    def change(m):
        m.script = str(tmp_path / "sweep-code" / "train.py")
        m.code = {"digest": "s" * 16, "path": str(tmp_path / "sweep-code"), "script": "train.py"}
        m.jobs[0].code = {"digest": "j" * 16, "path": str(tmp_path / "job-code"), "script": "train.py"}

    update_manifest(manifest.path, change)
    code = f"from hpctrack.launch._entrypoint import run_job; print('RESULT', run_job({str(manifest.path)!r}, 0))"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "RESULT job-code" in proc.stdout
    attempt = hpctrack.load_sweep(str(manifest.path)).run(0).status["attempts"][-1]
    assert attempt["code"] == "j" * 16
