"""``hpctrack.formats``: the table of every file's format version agrees with the code that writes
each file and with docs/store-format.md; ``job.pkl`` is versioned and old ones still load."""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import cloudpickle
import pytest

from hpctrack.errors import FormatVersionError
from hpctrack.formats import FORMATS, JOB_VERSION, dump_job, job_version, load_job

DOC = Path(__file__).resolve().parents[2] / "docs" / "store-format.md"


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_the_table_agrees_with_the_code_that_writes_each_file(fmt):
    module, _, attr = fmt.source.partition(":")
    value = importlib.import_module(module)
    for part in attr.split("."):
        value = getattr(value, part)
    assert value == fmt.version


def test_the_doc_lists_every_file_with_its_version():
    text = DOC.read_text()
    section = text[text.index("## Format versions of every file") :]
    rows = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\| `([^`]+)` \| (\d+) \|", section, re.M)}
    assert rows == {f.name: f.version for f in FORMATS}


def _job(index: int) -> int:
    return index * 2


def test_job_pkl_has_a_readable_version_line_and_round_trips(tmp_path):
    path = tmp_path / "job.pkl"
    path.write_bytes(dump_job(_job))
    assert path.read_bytes().split(b"\n", 1)[0] == f"hpctrack-job {JOB_VERSION}".encode()
    assert job_version(path.read_bytes())[0] == JOB_VERSION
    assert load_job(path)(3) == 6


def test_a_job_pkl_without_a_version_is_version_1_and_loads(tmp_path):
    path = tmp_path / "job.pkl"
    path.write_bytes(cloudpickle.dumps(_job))  # as hpctrack wrote it before the header
    assert job_version(path.read_bytes()) == (1, 0)
    assert load_job(path)(4) == 8


class _Planted:
    def __init__(self, where: str) -> None:
        self.where = where

    def __reduce__(self):
        return (os.mkdir, (self.where,))


@pytest.mark.parametrize("header", [f"hpctrack-job {JOB_VERSION + 1}\n", "hpctrack-job x\n"])
def test_a_newer_or_unreadable_job_pkl_is_refused_before_anything_is_unpickled(tmp_path, header):
    path = tmp_path / "job.pkl"
    path.write_bytes(header.encode() + cloudpickle.dumps(_Planted(str(tmp_path / "unpickled"))))
    with pytest.raises(FormatVersionError, match=str(path)) as info:
        load_job(path)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "unpickled").exists()
