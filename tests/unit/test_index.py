"""The sweep summary index: appended lines, the columnar cache and its invalidation."""

from __future__ import annotations

import json
import math
from pathlib import Path

from hpctrack.index import CACHE_FILE, INDEX_FILE, SEP, append_rows, index_frame, read_index


def _row(job: int, **extra) -> dict:
    return {"v": 1, "job": job, "format_version": 3, "params": {"lr": 0.1 * job, "tag": extra.get("tag", "a")},
            "summary": {"acc": 0.5 + job}, "tags": {},
            "status": {"state": "completed", "attempt_start": 100.0 + job, "runtime_s": 1.0, "last_step": 9},
            "metrics": {"loss": {"count": 10, "last": 0.1 * job, "last_step": 9, "min": 0.0, "max": 1.0,
                                 "rows": 10, "segments": [[1, 0]], "sum": 5.0, "finite": 10}},
            "restarts": {}}  # fmt: skip


def test_cache_is_built_reused_and_extended(tmp_path: Path) -> None:
    append_rows(tmp_path, [_row(0), _row(1)])
    frame = index_frame(tmp_path)
    assert sorted(frame["job"]) == [0, 1] and (tmp_path / CACHE_FILE).is_file()
    assert frame.set_index("job")[f"m{SEP}loss{SEP}last"].tolist() == [0.0, 0.1]
    append_rows(tmp_path, [_row(2), {**_row(1), "summary": {"acc": 9.0}}])  # job 1 ended again: newest wins
    frame = index_frame(tmp_path).set_index("job").sort_index()
    assert frame[f"s{SEP}acc"].tolist() == [0.5, 9.0, 2.5]
    # The cache alone (no lines appended since) gives the same frame.
    again = index_frame(tmp_path).set_index("job").sort_index()
    assert again[f"s{SEP}acc"].tolist() == [0.5, 9.0, 2.5]


def test_rewritten_index_is_not_mistaken_for_the_cached_one(tmp_path: Path) -> None:
    append_rows(tmp_path, [_row(0), _row(1), _row(2)])
    index_frame(tmp_path)
    # A reindex rewrites the file: same length or longer, different content.
    lines = [json.dumps({**_row(j), "summary": {"acc": -1.0 * j}}) for j in range(3)]
    (tmp_path / INDEX_FILE).write_text("\n".join(lines) + "\n")
    frame = index_frame(tmp_path).set_index("job").sort_index()
    assert frame[f"s{SEP}acc"].tolist() == [-0.0, -1.0, -2.0]


def test_mixed_param_types_and_torn_lines(tmp_path: Path) -> None:
    append_rows(tmp_path, [_row(0, tag="a"), _row(1, tag=3), _row(2, tag=[1, 2])])
    with open(tmp_path / INDEX_FILE, "a") as fh:
        fh.write('{"v": 1, "job": 7, "para')  # a writer killed mid-append
    frame = index_frame(tmp_path).set_index("job").sort_index()
    assert frame[f"p{SEP}tag"].tolist() == ["a", 3, [1, 2]]  # through the cache and back, types kept
    assert 7 not in frame.index and sorted(read_index(tmp_path)) == [0, 1, 2]
    cached = index_frame(tmp_path).set_index("job").sort_index()
    assert cached[f"p{SEP}tag"].tolist() == ["a", 3, [1, 2]]
    assert math.isclose(cached[f"m{SEP}loss{SEP}sum"].iloc[0], 5.0)


def test_no_index_gives_an_empty_frame(tmp_path: Path) -> None:
    assert len(index_frame(tmp_path)) == 0 and not (tmp_path / CACHE_FILE).exists()
