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
