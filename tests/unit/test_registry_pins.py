"""Registering pins the source run ("registered as NAME/N"); a pin that cannot be written is a note,
never a lost registration: the version holds its own copy."""

from __future__ import annotations

import os

from registry_fixtures import sweep_with_artifacts

import hpctrack.models as hm
from hpctrack.pins import read_pins


def test_registration_pins_the_run_with_the_version_it_became(hpctrack_root):
    m = sweep_with_artifacts(hpctrack_root, 2)
    hm.register("src/1", artifact="artifacts/model.bin", name="a")
    hm.register("src/1", artifact="artifacts/model.bin", name="b")
    assert [(p.run, p.reason) for p in read_pins(m.path)] == [(1, "registered as a/1"), (1, "registered as b/1")]
    assert [r["ref"] for r in hm.registered_from_run(f"{m.id}/1")] == ["a/1", "b/1"]
    assert hm.registered_from_run(f"{m.id}/0") == []


def test_a_pin_that_cannot_be_written_is_a_note_and_the_version_stands(hpctrack_root, tmp_path):
    m = sweep_with_artifacts(hpctrack_root, 1)
    os.symlink(tmp_path / "elsewhere.json", m.path / "pins.json")  # pins.json is refused, never followed
    v = hm.register("src/0", artifact="artifacts/model.bin", name="a")
    assert len(v.notes) == 1 and "was not pinned" in v.notes[0] and "symlink" in v.notes[0]
    assert hm.verify() == [] and hm.get_path("a/1").is_file()
    assert not (tmp_path / "elsewhere.json").exists()
