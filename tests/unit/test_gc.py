"""hpctrack gc removes submitit's per-job files of ended jobs, and nothing else."""

from __future__ import annotations

import json
import time

from conftest import run_cli

from hpctrack.launch import SweepRequest, submit_sweep, wait_for_sweep


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_gc_keeps_logs_and_run_data(hpctrack_root):
    def job(index: int) -> None:
        from hpctrack import current_run

        current_run().log({"x": float(index)})
        print(f"job {index} says hello")

    manifest = submit_sweep(SweepRequest(jobs=[["a=1"], ["a=2"]], backend_options={"parallel": 2}, name="gc"), job)
    manifest = wait_for_sweep(manifest.path)
    table_before = json.loads(run_cli("table", "gc", "--format", "json", check=True).stdout)
    before = _files(hpctrack_root)  # after the table: it may write the index's columnar cache
    assert sum(f.endswith(("_submitted.pkl", "_result.pkl")) for f in before) == 4

    dry = run_cli("gc", "gc", "--dry-run", check=True).stdout
    assert dry.startswith("would remove 4 files") and _files(hpctrack_root) == before
    out = run_cli("gc", "gc", check=True).stdout
    assert out.startswith("removed 4 files")
    after = _files(hpctrack_root)
    assert set(before) - set(after) == {f for f in before if f.endswith(("_submitted.pkl", "_result.pkl"))}
    assert any(f.endswith("_log.out") for f in after) and any(f.endswith("job.pkl") for f in after)
    table_after = json.loads(run_cli("table", "gc", "--format", "json", check=True).stdout)
    assert table_after == table_before
    assert run_cli("gc", "--all", check=True).stdout.startswith("removed 0 files")


def test_gc_leaves_running_jobs_alone(hpctrack_root):
    def job(index: int) -> None:
        import time

        time.sleep(30)

    manifest = submit_sweep(SweepRequest(jobs=[["a=1"]], name="busy"), job)
    deadline = time.time() + 30
    while not any((manifest.run_path(0) / "logs").glob("*_submitted.pkl")) and time.time() < deadline:
        time.sleep(0.2)
    out = run_cli("gc", "busy", check=True).stdout
    assert out.startswith("removed 0 files") and "1 jobs still pending or running were left alone" in out
    assert any((manifest.run_path(0) / "logs").glob("*_submitted.pkl"))
    run_cli("cancel", "busy", check=True)
