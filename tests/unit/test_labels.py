"""A sweep's tags and note (``hpctrack.labels``), ``--since`` and the sweep filter of ``hpctrack ls``."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from synthetic import make_sweep

from hpctrack._since import parse_since
from hpctrack.errors import ConfigError, FormatVersionError, StoreError
from hpctrack.labels import LABELS_FILE, Labels, parse_tag_args, read_labels, set_tags
from hpctrack.manifest import load_manifest
from hpctrack.sweep import Sweep, sweep_rows


def test_parse_tag_args_sets_and_removes():
    assert parse_tag_args(["a=1", "b=", "c=x=y"]) == ({"a": "1", "c": "x=y"}, ["b"])
    assert parse_tag_args(["a=", "a=2"]) == ({"a": "2"}, [])  # the last word on a key wins
    for bad, words in ((["a"], "write key=value"), (["=1"], "non-empty"), ([("k" * 256) + "=1"], "256 characters")):
        with pytest.raises(ConfigError, match=words):
            parse_tag_args(bad)


def test_tags_and_note_through_the_python_api(hpctrack_root):
    sw = Sweep(make_sweep(hpctrack_root, 1).path)
    assert sw.labels == Labels()
    sw.tag({"stage": "ablation"}, project="vit")
    labels = sw.note("first try")
    assert labels.tags == {"project": "vit", "stage": "ablation"} and labels.note == "first try"
    assert sw.tag(remove=["stage", "never-set"]).tags == {"project": "vit"}
    assert sw.note(None).note is None and sw.labels.tags == {"project": "vit"}
    data = json.loads((sw.path / LABELS_FILE).read_text())
    assert data["format_version"] == 1 and data["tags"] == {"project": "vit"} and data["note"] is None
    with pytest.raises(ConfigError, match="both set and removed"):
        sw.tag(a="1", remove=["a"])
    with pytest.raises(ConfigError, match="4096"):
        sw.note("x" * 4097)
    assert sw.labels.tags == {"project": "vit"}


def test_a_damaged_or_newer_labels_file_is_one_line(hpctrack_root):
    path = make_sweep(hpctrack_root, 1).path
    (path / LABELS_FILE).write_text('{"tags": {"a": 1}}')
    with pytest.raises(StoreError, match="'tags' must be an object of text values"):
        read_labels(path)
    (path / LABELS_FILE).write_text('{"format_version": 9, "tags": {}}')
    with pytest.raises(FormatVersionError, match="upgrade"):
        read_labels(path)
    rows, lines = sweep_rows(str(hpctrack_root))
    assert len(rows) == 1 and rows[0]["tags"] == {} and "tags of" in lines[0]  # listed, its tags not shown


_TAGGER = """
import sys
from hpctrack.labels import set_tags
for i in range(int(sys.argv[3])):
    set_tags(sys.argv[1], {f"{sys.argv[2]}{i}": str(i)})
"""
_MANIFEST_WRITER = """
import sys
from hpctrack.manifest import update_manifest
for i in range(int(sys.argv[2])):
    update_manifest(sys.argv[1], lambda m: m.runner.update(count=m.runner.get("count", 0) + 1))
"""


def test_concurrent_taggers_and_manifest_writers_lose_nothing(hpctrack_root):
    path = make_sweep(hpctrack_root, 3).path
    procs = [subprocess.Popen([sys.executable, "-c", _TAGGER, str(path), prefix, "15"]) for prefix in ("a", "b")]
    procs.append(subprocess.Popen([sys.executable, "-c", _MANIFEST_WRITER, str(path), "15"]))
    for proc in procs:
        assert proc.wait(timeout=300) == 0
    tags = read_labels(path).tags
    assert tags == {**{f"a{i}": str(i) for i in range(15)}, **{f"b{i}": str(i) for i in range(15)}}
    assert load_manifest(path).runner["count"] == 15 and len(load_manifest(path).jobs) == 3


def test_parse_since():
    now = 1_000_000.0
    assert parse_since("30d", now) == now - 30 * 86400
    assert parse_since("12h", now) == now - 12 * 3600 and parse_since("90m", now) == now - 5400
    assert parse_since("2w", now) == now - 14 * 86400 and parse_since("1.5h", now) == now - 5400
    assert parse_since("2026-10-01") == time.mktime((2026, 10, 1, 0, 0, 0, 0, 0, -1))
    assert parse_since("2026-10-01T14:30") == time.mktime((2026, 10, 1, 14, 30, 0, 0, 0, -1))
    for bad in ("yesterday", "30", "-3d", "2026-13-01", ""):
        with pytest.raises(ConfigError, match="--since"):
            parse_since(bad)


def test_sweep_rows_filter_over_states_tags_and_fields(hpctrack_root):
    a = make_sweep(hpctrack_root, 2, sweep_id="20260101-000000-000a", name="a")
    b = make_sweep(hpctrack_root, 3, sweep_id="20260101-000000-000b", name="b", backend="slurm")
    set_tags(a.path, {"lr": "0.1"})
    set_tags(b.path, {"lr": "0.01", "my-key": "x"})
    ids = lambda **kw: [r["id"] for r in sweep_rows(str(hpctrack_root), **kw)[0]]  # noqa: E731
    assert ids(where="n_jobs >= 3") == [b.id]
    assert ids(where="backend == 'local' and states.COMPLETED == n_jobs") == [a.id]
    assert ids(where="`tags.my-key` == 'x'") == [b.id]
    assert ids(where="tags.lr != '0.1'") == [b.id]
    assert ids(where="tags.absent == null") == [b.id, a.id]
    assert ids(tags=["lr=0.1"]) == [a.id] and ids(tags=["my-key"]) == [b.id]
    with pytest.raises(ConfigError, match="condition"):
        ids(where="n_jobs + 1")
    with pytest.raises(ConfigError, match="unknown|not a column|columns"):
        ids(where="bogus == 1")
