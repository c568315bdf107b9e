"""The runs catalog: sweep keys, one sweep's rows, files written and read back, untrusted files ignored."""

from __future__ import annotations

import os

from synthetic import index_runs, make_sweep, write_run

from hpctrack.catalog import Catalog, build_sweep, sweep_key
from hpctrack.labels import set_tags


def _sweep(root, n=3):
    manifest = make_sweep(root, n)
    for i in range(n):
        write_run(manifest, i)
    index_runs(manifest, range(n - 1))  # the last run is not indexed
    return manifest


def test_key_changes_with_index_and_tags(tmp_path):
    manifest = _sweep(tmp_path)
    before = sweep_key(manifest.path)
    index_runs(manifest, [2])
    after = sweep_key(manifest.path)
    assert after != before
    set_tags(manifest.path, {"stage": "x"})
    assert sweep_key(manifest.path) != after


def test_build_sweep_serves_indexed_runs_and_reads_the_rest_once_all_ended(tmp_path):
    manifest = _sweep(tmp_path)
    entry, frame = build_sweep(manifest.path)
    assert sorted(frame["job"]) == [0, 1, 2] and entry.live == []
    assert set(frame["state"]) == {"COMPLETED"} and "p\x1fx" in frame.columns


def test_written_file_reads_back_and_untrusted_files_are_ignored(tmp_path):
    manifest = _sweep(tmp_path)
    catalog = Catalog(tmp_path)
    entry, frame = build_sweep(manifest.path)
    target = catalog.part_path(entry.id)
    assert catalog.write(target, [entry], frame)
    part = catalog.part(entry.id)
    assert part is not None and part.entries[entry.id].key == entry.key
    assert sorted(part.read(["p\x1fx"])["p\x1fx"]) == [0, 1, 2]
    part.close()
    os.chmod(target, 0o664)  # writable by the group: not trusted
    assert catalog.part(entry.id) is None
    target.write_bytes(b"garbage")
    os.chmod(target, 0o644)
    assert catalog.part(entry.id) is None


# -- the quick read (rows kept in pyarrow) gives what the general read gives --------------------------


def _same_rows(table, frame):
    import pandas as pd

    quick = table.to_pandas().sort_values("job").reset_index(drop=True)
    slow = frame.sort_values("job").reset_index(drop=True)
    assert sorted(quick.columns) == sorted(slow.columns)
    pd.testing.assert_frame_equal(quick[list(slow.columns)], slow, check_dtype=False)


def test_read_sweep_keeps_an_indexed_sweep_in_arrow_with_build_sweeps_rows(tmp_path):
    import pyarrow as pa

    from hpctrack.catalog import read_sweep
    from hpctrack.index import index_frame

    manifest = make_sweep(tmp_path, 4)
    for i in range(4):
        write_run(manifest, i)
    index_runs(manifest, range(4))
    for cached in (False, True):  # from index.jsonl, then from the index cache table leaves
        if cached:
            index_frame(manifest.path)
        entry, rows = read_sweep(manifest.path)
        assert isinstance(rows, pa.Table), cached
        slow_entry, frame = build_sweep(manifest.path)
        assert entry == slow_entry
        _same_rows(rows, frame)


def test_read_sweep_leaves_a_running_job_live(tmp_path):
    import pyarrow as pa

    from hpctrack._types import JobState
    from hpctrack.catalog import read_sweep
    from hpctrack.manifest import update_manifest

    manifest = make_sweep(tmp_path, 3)
    for i in range(3):
        write_run(manifest, i, state="running" if i == 2 else "completed")
    index_runs(manifest, range(2))

    def running(m):
        m.jobs[2].state = JobState.RUNNING

    update_manifest(manifest.path, running)
    entry, rows = read_sweep(manifest.path)
    assert isinstance(rows, pa.Table) and entry.live == [2]
    assert entry == build_sweep(manifest.path)[0]
    _same_rows(rows, build_sweep(manifest.path)[1])


def test_read_sweep_takes_the_general_read_for_what_it_does_not_serve(tmp_path):
    import json

    import pandas as pd
    import pytest

    from hpctrack.catalog import read_sweep
    from hpctrack.errors import HpctrackError

    manifest = _sweep(tmp_path)  # the last run is not indexed, every job ended: read from its store
    entry, rows = read_sweep(manifest.path)
    assert isinstance(rows, pd.DataFrame) and sorted(rows["job"]) == [0, 1, 2]
    index_runs(manifest, [2])
    path = manifest.path / "sweep.json"
    data = json.loads(path.read_text())
    data["jobs"][1]["pruned"] = {"step": 3, "trial": 1}  # pruned by a study: the general read marks it
    path.write_text(json.dumps(data, indent=1))
    entry, rows = read_sweep(manifest.path)
    assert isinstance(rows, pd.DataFrame) and dict(zip(rows["job"], rows["state"]))[1] == "PRUNED"
    data["jobs"][1].pop("pruned")
    data["jobs"][0]["state"] = None  # damaged: refused as every command refuses it
    path.write_text(json.dumps(data, indent=1))
    with pytest.raises(HpctrackError) as slow:
        build_sweep(manifest.path)
    with pytest.raises(HpctrackError) as quick:
        read_sweep(manifest.path)
    assert str(quick.value) == str(slow.value)
    data["jobs"][0]["state"] = "COMPLETED"
    data["backend"] = 5
    path.write_text(json.dumps(data, indent=1))
    with pytest.raises(HpctrackError):
        read_sweep(manifest.path)


def test_runs_over_sweeps_whose_values_differ_in_kind(tmp_path, monkeypatch):
    """A summary value text in one sweep and a number in another: one answer, as from the catalog."""
    import hpctrack

    for k, (sid, final) in enumerate([("20260101-000000-aaaa", "best"), ("20260102-000000-bbbb", 3.5)]):
        manifest = make_sweep(tmp_path, 2, sweep_id=sid)
        for i in range(2):
            write_run(manifest, i, summary={"final": final, "k": k})
        index_runs(manifest, range(2))
    monkeypatch.setattr(Catalog, "MERGE_AFTER", 0)  # the merged file at once
    cold = hpctrack.runs(root=str(tmp_path), metrics=["final"])
    assert sorted(map(str, cold["final"])) == ["3.5", "3.5", "best", "best"]
    assert (tmp_path / "catalog" / f"u{os.getuid()}" / "runs.parquet").is_file()
    warm = hpctrack.runs(root=str(tmp_path), metrics=["final"])
    assert list(map(str, warm["final"])) == list(map(str, cold["final"]))


def test_read_sweep_keeps_a_name_that_looks_like_a_date_text(tmp_path):
    """pyarrow's JSON reader takes '2026-10-01' for a timestamp; the catalog keeps the text."""
    from hpctrack.catalog import read_sweep

    manifest = make_sweep(tmp_path, 2, name="2026-10-01")
    for i in range(2):
        write_run(manifest, i)
    index_runs(manifest, range(2))
    entry, _ = read_sweep(manifest.path)
    assert entry.name == "2026-10-01" and entry == build_sweep(manifest.path)[0]
    import json

    path = manifest.path / "sweep.json"
    data = json.loads(path.read_text())
    data["name"], data["swept_keys"] = "plain", ["2026-10-01"]
    path.write_text(json.dumps(data, indent=1))
    entry, _ = read_sweep(manifest.path)
    assert entry.swept_keys == ["2026-10-01"] and entry == build_sweep(manifest.path)[0]
