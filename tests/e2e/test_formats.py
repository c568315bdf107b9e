"""Every file a launched sweep leaves carries the format version ``hpctrack.formats`` lists."""

from __future__ import annotations

import json
import time

import h5py
from conftest import SCRIPTS, run_cli

from hpctrack.formats import version_of


def test_every_file_a_sweep_writes_carries_its_format_version(hpctrack_root):
    run_cli("launch", str(SCRIPTS / "resumable.py"), "x=1", "steps=2", "sleep_s=0", "--name", "formats", check=True)
    deadline = time.monotonic() + 180
    while True:
        job = json.loads(run_cli("status", "formats", "--format", "json", check=True).stdout)["jobs"][0]
        if job["state"] == "COMPLETED" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert job["state"] == "COMPLETED", job
    (sweep,) = (hpctrack_root / "sweeps").iterdir()
    run = sweep / "runs" / "0"
    assert json.loads((sweep / "sweep.json").read_text())["format_version"] == version_of("sweep.json")
    # Readable without unpickling: `head -1 job.pkl`.
    assert (sweep / "job.pkl").read_bytes().split(b"\n", 1)[0] == f"hpctrack-job {version_of('job.pkl')}".encode()
    lines = [json.loads(line) for line in (sweep / "index.jsonl").read_text().splitlines()]
    assert lines and {line["v"] for line in lines} == {version_of("index.jsonl")}
    with h5py.File(run / "run.h5", "r", locking=False) as f:
        assert int(f.attrs["format_version"]) == version_of("run.h5 -> run.<n>.h5")
    assert json.loads((run / "end.json").read_text())["format_version"] == version_of("end.json")
    checkpoints = sorted((run / "checkpoints").glob("*/checkpoint.json"))
    assert checkpoints
    for meta in checkpoints:
        assert json.loads(meta.read_text())["format_version"] == version_of("checkpoints/<n>/checkpoint.json")
