"""The columnar parse of index lines gives exactly the line-by-line parse's columns, or steps aside."""

from __future__ import annotations

import json
from typing import Any, Dict, List

import numpy as np
import pandas as pd
import pytest

from hpctrack._index_arrow import MIN_BYTES, parse_frame
from hpctrack.index import _frame_of, parse_lines


def _line(job: int, **over: Any) -> Dict[str, Any]:
    row: Dict[str, Any] = {
        "v": 1, "job": job, "format_version": 3,
        "params": {"optimizer.name": ("sgd", "adamw")[job % 2], "lr": 0.01 * (job % 5), "seed": job // 2,
                   "flag": job % 3 == 0},
        "summary": {"test/acc": job / 1000}, "tags": {"k": "v"},
        "status": {"state": ("completed", "failed")[job % 7 == 0], "start_time": 10.0 + job, "attempt_start": 10.0,
                   "end_time": 20.0, "runtime_s": 10.0, "last_step": 99, "attempt": 1},
        "metrics": {"val/acc": {"count": 100, "last": 0.5, "last_step": 99, "min": 0.0, "max": job / 1000,
                                "rows": 100, "segments": [[1, 0]], "sum": 50.0, "finite": 100}},
        "restarts": {"2": 40} if job % 11 == 0 else {}, "fingerprint": f"run.h5:{job}",
    }  # fmt: skip
    if job % 7 == 0:
        row["status"]["error"] = {"type": "ValueError", "message": f"bad {job}", "traceback": ["a", "b"]}
    if job % 13 == 0:
        del row["params"]["seed"]  # a key some runs lack
        row["summary"] = {}
    row.update(over)
    return row


def _data(rows: List[Dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()


def _slow(data: bytes) -> pd.DataFrame:
    return _frame_of(parse_lines(data).rows.values())


def _same(fast: pd.DataFrame, slow: pd.DataFrame) -> None:
    assert sorted(fast.columns) == sorted(slow.columns)
    assert fast["job"].tolist() == slow["job"].tolist()  # the newest line per job, in first-seen order
    for column in slow.columns:
        a, b = fast[column].tolist(), slow[column].tolist()
        for x, y in zip(a, b):
            missing_x = x is None or (isinstance(x, float) and np.isnan(x))
            missing_y = y is None or (isinstance(y, float) and np.isnan(y))
            assert missing_x == missing_y, (column, x, y)
            if not missing_x:
                assert x == y and isinstance(x, str) == isinstance(y, str), (column, x, y)
                assert isinstance(x, bool) == isinstance(y, bool), (column, x, y)


def test_columns_match_the_line_by_line_parse() -> None:
    rows = [_line(j) for j in range(300)] + [_line(5, params={"optimizer.name": "adam", "lr": 9.0, "seed": 1,
                                                               "flag": False})]  # fmt: skip
    data = _data(rows)
    assert len(data) > MIN_BYTES
    fast = parse_frame(data)
    assert fast is not None
    _same(fast, _slow(data))


def test_nan_and_infinity_match() -> None:
    rows = [_line(j) for j in range(200)]
    data = _data(rows) + b'{"v":1,"job":8,"params":{"lr":NaN},"metrics":{"x":{"count":1,"last":Infinity,'
    data += b'"last_step":0,"min":-Infinity,"max":NaN}}}\n'  # written with allow_nan
    fast = parse_frame(data)
    assert fast is not None
    _same(fast, _slow(data))


def test_lost_lines_match() -> None:
    rows = [_line(j) for j in range(200)]
    rows.append({"v": 1, "job": 3, "lost": "run store missing", "submitted": 12.5})
    data = _data(rows)
    fast = parse_frame(data)
    assert fast is not None
    _same(fast, _slow(data))


@pytest.mark.parametrize(
    "bad",
    [
        b'{"v":1,"job":7,"para\n',  # torn
        b'{"v":2,"job":9}\n',  # a newer hpctrack's line
        b'{"v":1,"job":9,"params":{"lr":"high"}}\n',  # a key that changes kind
        b'{"v":1,"job":9,"params":{"lr":[1,2]}}\n',  # a list-valued param
        b'{"v":1,"job":-1}\n',  # not a job index
        b'{"v":1,"job":9,"status":{"state":"bogus"}}\n',  # not a run state
        b'{"v":1,"job":9,"metrics":{"val/acc":{"count":1}}}\n',  # not a stats object
        b"[1,2]\n",
    ],
)
def test_anything_unusual_goes_line_by_line(bad: bytes) -> None:
    data = _data([_line(j) for j in range(200)]) + bad
    assert parse_frame(data) is None


def test_small_data_goes_line_by_line() -> None:
    assert parse_frame(_data([_line(1)])) is None


def test_blocks_parsed_on_every_core_match_the_line_by_line_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    import hpctrack._index_arrow as arrow

    monkeypatch.setattr(arrow, "BLOCK_BYTES", 4096)  # many blocks, each inferring its own types
    rows = [_line(j) for j in range(300)]
    data = _data(rows)
    assert len(data) > 10 * arrow.BLOCK_BYTES
    fast = parse_frame(data)
    assert fast is not None
    _same(fast, _slow(data))


def test_a_key_that_changes_kind_between_blocks_is_parsed_as_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    import hpctrack._index_arrow as arrow

    monkeypatch.setattr(arrow, "BLOCK_BYTES", 4096)
    # "note" is null in the first blocks' lines and text in the last: per block, pyarrow infers null then text.
    rows = [_line(j, summary={"test/acc": j / 1000, "note": None if j < 250 else f"n{j}"}) for j in range(300)]
    data = _data(rows)
    fast = parse_frame(data)
    assert fast is not None
    _same(fast, _slow(data))
