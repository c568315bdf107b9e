"""The public API can be discovered: ``help(hpctrack)``, ``dir(hpctrack)``, and a docstring on every name."""

from __future__ import annotations

import dataclasses
import inspect
import json
import pydoc
import re
import subprocess
import sys
import textwrap
from typing import List

import pytest

import hpctrack

MAIN_NAMES = ["start_run", "current_run", "load_sweep", "Run", "Sweep", "Checkpoint"]


def test_dir_lists_every_public_name():
    assert set(hpctrack.__all__) <= set(dir(hpctrack))


def test_dir_imports_nothing_heavy():
    code = "import sys, hpctrack; dir(hpctrack); print(__import__('json').dumps(sorted(m for m in " \
           "['h5py', 'zarr', 'submitit', 'hydra', 'pandas'] if m in sys.modules)))"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_help_shows_the_main_names():
    text = pydoc.render_doc(hpctrack, renderer=pydoc.plaintext)
    missing = [name for name in MAIN_NAMES if not re.search(rf"\b{name}\b", text)]
    assert missing == [], f"help(hpctrack) does not mention {missing}"
    for name in ("Run", "Sweep", "Checkpoint"):  # the classes are documented in full, not just named
        assert f"class {name}" in text


def test_module_docstring_names_the_main_names():
    doc = hpctrack.__doc__ or ""
    assert [name for name in MAIN_NAMES if name not in doc] == []


# -- every public name and attribute has a docstring -------------------------------------------


def _classes():
    from hpctrack.status import JobStatus, SweepStatus
    from hpctrack.store import MetricHistory, MetricStats, RunRecord

    return [hpctrack.Run, hpctrack.Sweep, hpctrack.Checkpoint, RunRecord, MetricStats, MetricHistory,
            JobStatus, SweepStatus]  # fmt: skip


def _documented_in_class_doc(cls: type, name: str) -> bool:
    """``name`` appears as an entry of the class docstring's Attributes/Parameters section."""
    doc = inspect.getdoc(cls) or ""
    return any(re.fullmatch(rf"(\w+, )*{name}(, \w+)*\s*:.*", line.strip()) for line in doc.splitlines())


def _field_has_comment(cls: type, name: str) -> bool:
    """A ``#:`` comment (Sphinx's attribute docstring) above or after the field, or in the class docstring."""
    if _documented_in_class_doc(cls, name):
        return True
    lines = textwrap.dedent(inspect.getsource(cls)).splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"    {name}\s*:", line):
            return "#:" in line or (i > 0 and lines[i - 1].strip().startswith("#:"))
    return False


def _undocumented(cls: type) -> List[str]:
    missing = []
    for name, _value in inspect.getmembers(cls):
        if name.startswith("_"):
            continue
        owner = next((k for k in cls.__mro__ if name in vars(k)), None)
        if owner is None or not owner.__module__.startswith("hpctrack"):
            continue
        raw = vars(owner)[name]
        if isinstance(raw, (property, staticmethod, classmethod)) or inspect.isfunction(raw):
            if not inspect.getdoc(raw if not isinstance(raw, (staticmethod, classmethod)) else raw.__func__):
                missing.append(name)
    if dataclasses.is_dataclass(cls):
        missing += [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")
                    and not _field_has_comment(cls, f.name)]  # fmt: skip
    init = vars(cls).get("__init__")
    if init is not None and inspect.isfunction(init) and not dataclasses.is_dataclass(cls):
        for attr in re.findall(r"^\s+self\.([a-z]\w*)\s*[:=]", inspect.getsource(init), re.M):
            if not hasattr(cls, attr) and not _documented_in_class_doc(cls, attr):
                missing.append(attr)
    return sorted(set(missing))


def test_every_public_name_has_a_docstring():
    missing = [
        name for name in hpctrack.__all__ if name != "__version__" and not inspect.getdoc(getattr(hpctrack, name))
    ]
    assert missing == []


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_every_public_attribute_has_a_docstring(cls):
    assert _undocumented(cls) == []
