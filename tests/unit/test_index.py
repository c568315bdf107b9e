"""The sweep summary index: appended lines, the columnar cache and its invalidation."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

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


# -- the cache is derived data that is trusted only when it is ours and current -----------------------


def _cached_acc(tmp_path: Path) -> list:
    return index_frame(tmp_path).set_index("job").sort_index()[f"s{SEP}acc"].tolist()


def _forged_cache(tmp_path: Path, where: Path) -> None:
    """A cache that covers ``tmp_path``'s index exactly but says acc = 99 for every run, written at ``where``."""
    import tempfile

    from hpctrack.index import index_table

    other = Path(tempfile.mkdtemp(dir=tmp_path))
    (other / INDEX_FILE).write_bytes((tmp_path / INDEX_FILE).read_bytes())
    index_frame(other)  # its cache covers the same bytes
    table = index_table(other)
    assert table is not None
    import pyarrow as pa
    import pyarrow.parquet as pq

    column = table.schema.get_field_index(f"s{SEP}acc")
    forged = table.set_column(column, f"s{SEP}acc", pa.array([99.0] * len(table)))
    meta = pq.read_schema(other / CACHE_FILE).metadata
    pq.write_table(forged.replace_schema_metadata(meta), where)


def test_a_symlink_planted_as_the_cache_is_ignored_and_replaced(tmp_path: Path) -> None:
    import os

    append_rows(tmp_path, [_row(j) for j in range(3)])
    _forged_cache(tmp_path, tmp_path / "forged.parquet")
    os.symlink(tmp_path / "forged.parquet", tmp_path / CACHE_FILE)
    assert _cached_acc(tmp_path) == [0.5, 1.5, 2.5]
    assert not (tmp_path / CACHE_FILE).is_symlink() and (tmp_path / CACHE_FILE).is_file()
    assert _cached_acc(tmp_path) == [0.5, 1.5, 2.5]


def test_a_cache_of_another_user_or_writable_by_others_is_ignored_and_rewritten(tmp_path: Path) -> None:
    import os

    append_rows(tmp_path, [_row(j) for j in range(3)])
    cache = tmp_path / CACHE_FILE
    _forged_cache(tmp_path, cache)
    os.chmod(cache, 0o664)  # group-writable: anyone in the group could have written it
    assert _cached_acc(tmp_path) == [0.5, 1.5, 2.5]
    assert os.stat(cache).st_mode & 0o022 == 0
    if os.getuid() == 0:  # another user's file: only root can make one here
        os.unlink(cache)
        _forged_cache(tmp_path, tmp_path / "forged2.parquet")
        os.replace(tmp_path / "forged2.parquet", cache)
        os.chown(cache, 12345, 12345)
        assert _cached_acc(tmp_path) == [0.5, 1.5, 2.5]
        assert os.stat(cache).st_uid == os.getuid()


def test_a_truncated_cache_is_ignored_and_rebuilt(tmp_path: Path) -> None:
    append_rows(tmp_path, [_row(j) for j in range(3)])
    index_frame(tmp_path)
    cache = tmp_path / CACHE_FILE
    cache.write_bytes(cache.read_bytes()[: len(cache.read_bytes()) // 2])
    assert _cached_acc(tmp_path) == [0.5, 1.5, 2.5]
    assert _cached_acc(tmp_path) == [0.5, 1.5, 2.5]


def test_an_index_rewritten_with_the_same_length_and_tail_is_not_served_from_the_old_cache(tmp_path: Path) -> None:
    from hpctrack.locking import atomic_write

    rows = [_row(j) for j in range(200)]  # the last 4 KiB: the last runs' lines
    append_rows(tmp_path, rows)
    assert _cached_acc(tmp_path)[0] == 0.5
    # A reindex rewrites the file (a new file): run 0's line changed, same length, same last 4 KiB.
    rows[0] = {**rows[0], "summary": {"acc": 0.7}}
    text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)
    assert len(text) == (tmp_path / INDEX_FILE).stat().st_size
    atomic_write(tmp_path / INDEX_FILE, text)
    assert _cached_acc(tmp_path)[0] == 0.7


def _append_many(sweep_dir: str, first: int, n: int) -> None:
    for j in range(first, first + n):
        append_rows(Path(sweep_dir), [_row(j)])


def _read_many(sweep_dir: str, rounds: int, out: "Any") -> None:
    seen = []
    for _ in range(rounds):
        frame = index_frame(Path(sweep_dir)).set_index("job")
        # every run shown is shown with its own line's values, whichever cache or tail it came from
        seen.append(all(frame.at[j, f"s{SEP}acc"] == 0.5 + j for j in frame.index))
    out.put(all(seen))


def test_concurrent_appends_and_cache_rewrites_lose_nothing_and_mix_nothing(tmp_path: Path) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    writers = [ctx.Process(target=_append_many, args=(str(tmp_path), 100 * w, 60)) for w in range(4)]
    readers = [ctx.Process(target=_read_many, args=(str(tmp_path), 25, out)) for _ in range(2)]
    for p in writers + readers:
        p.start()
    for p in writers + readers:
        p.join(timeout=300)
        assert p.exitcode == 0
    assert [out.get(timeout=10) for _ in readers] == [True, True]
    frame = index_frame(tmp_path).set_index("job").sort_index()
    expected = sorted(100 * w + j for w in range(4) for j in range(60))
    assert frame.index.tolist() == expected == sorted(read_index(tmp_path))
    assert frame[f"s{SEP}acc"].tolist() == [0.5 + j for j in expected]
