"""Aliases: one small file replaced atomically under the model's lock; every change is an event;
``aliases_at`` replays them."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest
from registry_fixtures import sweep_with_artifacts

import hpctrack.models as hm
from hpctrack.errors import ConfigError, UnsafePathError

MOVES_PER_WRITER = 500


def _mover(barrier, root: str, versions, moves: int) -> None:
    os.environ["HPCTRACK_ROOT"] = root
    barrier.wait()
    for i in range(moves):
        hm.set_alias("m", versions[i % len(versions)], "production")


def test_readers_never_see_a_torn_alias_during_1000_moves_by_two_writers(hpctrack_root):
    sweep_with_artifacts(hpctrack_root, 3)
    for i in range(3):
        hm.register(f"src/{i}", artifact="artifacts/model.bin", name="m")
    hm.set_alias("m", 1, "production")
    alias_file = hpctrack_root / "registry" / "m" / "aliases" / "production" / "alias.json"
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(3)
    writers = [ctx.Process(target=_mover, args=(barrier, str(hpctrack_root), vs, MOVES_PER_WRITER))
               for vs in ([1, 2], [3, 2])]  # fmt: skip
    for w in writers:
        w.start()
    barrier.wait()
    reads, seen = 0, set()
    while any(w.is_alive() for w in writers) or reads == 0:
        raw = alias_file.read_bytes()  # the plain read a script would do, no lock
        data = json.loads(raw)  # an empty or half-written file raises here
        assert data["alias"] == "production" and data["version"] in (1, 2, 3), raw
        seen.add(data["version"])
        if reads % 50 == 0:  # and through the library, as a script loading NAME@production does
            assert hm.get_version("m@production").version in (1, 2, 3)
        reads += 1
    for w in writers:
        w.join(timeout=120)
        assert w.exitcode == 0
    assert reads > 10 and len(seen) >= 2
    moves = [e for e in hm.history("m", alias="production") if e["kind"] == "alias"]
    # every change is one event, in order: each one's old is the previous one's new
    assert [e["seq"] for e in moves] == list(range(1, len(moves) + 1))
    assert all(a["new"] == b["old"] for a, b in zip(moves, moves[1:]))
    assert moves[-1]["new"] == hm.get_version("m@production").version
    assert not [p for p in alias_file.parent.iterdir() if p.name != "alias.json"]  # no temporary file left


def test_history_at_answers_which_version_held_the_alias_after_several_moves(hpctrack_root):
    sweep_with_artifacts(hpctrack_root, 3)
    for i in range(3):
        hm.register(f"src/{i}", artifact="artifacts/model.bin", name="m")
    marks = [time.time()]
    for version in (1, 2, 3, 1):
        time.sleep(0.01)
        hm.set_alias("m", version, "production", reason=f"to {version}")
        time.sleep(0.01)
        marks.append(time.time())
    hm.unalias("m", "production", reason="retired")
    marks.append(time.time())
    held = [hm.aliases_at("m", t, alias="production")["production"] for t in marks]
    assert [e["new"] if e else None for e in held] == [None, 1, 2, 3, 1, None]
    assert held[2]["reason"] == "to 2" and held[2]["by"] and held[2]["host"]
    assert hm.aliases_at("m", marks[3]) == {"production": held[3]}


def test_deleting_needs_the_aliases_moved_off_and_latest_skips_deleted(hpctrack_root):
    sweep_with_artifacts(hpctrack_root, 2)
    hm.register("src/0", artifact="artifacts/model.bin", name="m")
    hm.register("src/1", artifact="artifacts/model.bin", name="m", aliases=["staging"])
    with pytest.raises(ConfigError, match="held by alias staging"):
        hm.delete("m/2")
    with pytest.raises(ConfigError, match="by its number"):
        hm.delete("m@staging")
    hm.unalias("m", "staging")
    hm.delete("m/2", reason="bad data")
    assert hm.get_version("m").version == 1
    with pytest.raises(ConfigError, match="deleted"):
        hm.get_path("m/2")
    with pytest.raises(ConfigError, match="deleted"):
        hm.set_alias("m", 2, "staging")
    assert hm.gc(purge=True).purged == ["m/2"]
    assert not (hpctrack_root / "registry" / "m" / "versions" / "2" / "files").exists()
    assert hm.get_version("m/2").purged and hm.verify() == []
    kinds = [e["kind"] for e in hm.history("m")]
    assert kinds == ["register", "register", "alias", "unalias", "delete", "purge"]
    # the purged number is never given again
    assert hm.register("src/0", artifact="artifacts/model.bin", name="m").version == 3


def test_tags_change_with_an_event(hpctrack_root):
    sweep_with_artifacts(hpctrack_root, 1)
    hm.register("src/0", artifact="artifacts/model.bin", name="m", tags={"task": "cls"})
    assert hm.set_tag("m/1", "stage", "prod") == {"task": "cls", "stage": "prod"}
    assert hm.set_tag("m/1", "task", None) == {"stage": "prod"}
    assert hm.get_version("m/1").tags == {"stage": "prod"}
    assert [e["kind"] for e in hm.history("m")] == ["register", "tag", "tag"]


def test_a_symlink_planted_for_the_aliases_folder_is_refused(hpctrack_root, tmp_path):
    sweep_with_artifacts(hpctrack_root, 1)
    hm.register("src/0", artifact="artifacts/model.bin", name="m")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, hpctrack_root / "registry" / "m" / "aliases")
    with pytest.raises(UnsafePathError, match="symlink"):
        hm.set_alias("m", 1, "production")
    with pytest.raises(UnsafePathError):
        hm.get_version("m@production")
    assert list(elsewhere.iterdir()) == []
    assert any("symlink" in p for p in hm.verify())


def _as_nobody(root: str, out) -> None:
    # What this user cannot read after the switch (the interpreter under /root) is imported first.
    import grp  # noqa: F401

    os.environ["HPCTRACK_ROOT"] = root
    hm.set_alias("m", 1, "production")  # unchanged: loads every module the move needs
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    try:
        hm.set_alias("m", 2, "production", reason="not mine to move")
        out.put("moved")
    except ConfigError as err:
        out.put(str(err))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_an_alias_directory_of_another_group_is_refused_in_one_line_before_anything_is_written():
    import shutil
    import tempfile

    base = tempfile.mkdtemp(prefix="hpctrack-protected-", dir="/tmp")
    try:
        os.chmod(base, 0o755)
        root = os.path.join(base, "root")
        sweep_with_artifacts(Path(root), 2)
        for i in range(2):
            hm.register(f"src/{i}", artifact="artifacts/model.bin", name="m", root=root)
        hm.set_alias("m", 1, "production", root=root)
        model = os.path.join(root, "registry", "m")
        for folder in (root, os.path.join(root, "registry")):
            os.chmod(folder, 0o755)
        for folder in (model, os.path.join(model, "events"), os.path.join(model, "aliases")):
            os.chmod(folder, 0o1777 if folder.endswith("aliases") else 0o777)
        os.chmod(os.path.join(model, "aliases", "production"), 0o2775)  # group root: nobody is not a member
        events_before = sorted(os.listdir(os.path.join(model, "events")))
        ctx = multiprocessing.get_context("fork")
        out = ctx.Queue()
        proc = ctx.Process(target=_as_nobody, args=(root, out))
        proc.start()
        message = out.get(timeout=60)
        proc.join(timeout=60)
        assert "is protected" in message and "group root" in message and "drwxrwsr-x" in message, message
        assert "\n" not in message
        assert hm.get_version("m@production", root=root).version == 1
        assert sorted(os.listdir(os.path.join(model, "events"))) == events_before
        assert hm.set_alias("m", 2, "production", root=root) == 1  # a member (here: its owner) moves it
    finally:
        shutil.rmtree(base)
