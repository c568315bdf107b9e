"""``kill -9`` during staging, the claim or an alias move leaves a registry that ``verify`` finds
consistent after ``gc``; ``gc`` never removes a registration that is still running."""

from __future__ import annotations

import pytest
from registry_fixtures import kill9, stopped_at, sweep_with_artifacts

import hpctrack.models as hm

REGISTER = "import hpctrack.models as hm; hm.register('src/0', artifact='artifacts/model_dir', name='m')"
MOVE = "import hpctrack.models as hm; hm.set_alias('m', 2, 'production', reason='promote')"


@pytest.fixture
def registry(hpctrack_root):
    sweep_with_artifacts(hpctrack_root, 2)
    hm.register("src/1", artifact="artifacts/model.bin", name="m")
    return hpctrack_root


@pytest.mark.parametrize("point", ["register:staging", "register:claim"])
def test_kill_during_staging_leaves_an_abandoned_staging_dir_that_gc_removes(registry, point):
    proc = stopped_at(point, REGISTER)
    assert hm.gc().staging_removed == []  # stopped, not dead: its registration may still go on
    kill9(proc)
    problems = hm.verify()
    assert len(problems) == 1 and "abandoned registration" in problems[0], problems
    done = hm.gc()
    assert len(done.staging_removed) == 1
    assert hm.verify() == []
    assert [v for v in hm.list_models()] == [
        {"name": "m", "versions": 1, "deleted": 0, "latest": 1, "aliases": {}, "problems": []}
    ]
    assert hm.register("src/0", artifact="artifacts/model_dir", name="m").version == 2  # no gap from the kill


def test_kill_right_after_the_claim_leaves_a_whole_version_that_gc_finishes(registry):
    proc = stopped_at("register:claimed", REGISTER)
    kill9(proc)
    problems = hm.verify()
    assert any("writable" in p for p in problems) and any("register event" in p for p in problems), problems
    hm.gc()
    assert hm.verify() == []
    v = hm.get_version("m/2")
    assert sorted(v.files) == ["model_dir/sub/config.txt", "model_dir/weights.bin"]
    assert (hm.get_path("m/2") / "sub" / "config.txt").read_text() == "run 0\n"
    assert [e["version"] for e in hm.history("m") if e["kind"] == "register"] == [1, 2]


def test_kill_before_an_alias_replace_keeps_the_old_alias_and_frees_the_lock(registry):
    hm.register("src/0", artifact="artifacts/model_dir", name="m")
    hm.set_alias("m", 1, "production")
    kill9(stopped_at("alias:replace", MOVE))
    assert hm.get_version("m@production").version == 1  # the old value, whole
    hm.gc()
    assert hm.verify() == []
    assert hm.set_alias("m", 2, "production") == 1  # the dead holder's lock is broken at once
    assert [e["new"] for e in hm.history("m", alias="production")] == [1, 2]


def test_kill_after_an_alias_replace_gets_its_event_written_by_gc(registry):
    hm.register("src/0", artifact="artifacts/model_dir", name="m")
    hm.set_alias("m", 1, "production")
    kill9(stopped_at("alias:replaced", MOVE))
    assert hm.get_version("m@production").version == 2
    problems = hm.verify()
    assert len(problems) == 1 and "alias event" in problems[0], problems
    assert [r for r in hm.gc().repaired if "alias event" in r]
    assert hm.verify() == []
    moves = hm.history("m", alias="production")
    assert [(e["old"], e["new"], e["reason"]) for e in moves] == [(None, 1, None), (1, 2, "promote")]


def test_a_temporary_alias_file_left_by_a_kill_is_removed_by_gc(registry):
    folder = registry / "registry" / "m" / "aliases" / "production"
    hm.set_alias("m", 1, "production")
    (folder / ".alias.json.0123.tmp").write_text('{"half')
    assert hm.get_version("m@production").version == 1
    assert hm.gc().temp_files_removed == 1
    assert sorted(p.name for p in folder.iterdir()) == ["alias.json"]


def test_a_staging_dir_killed_before_its_owner_record_is_judged_by_its_name(registry):
    import os
    import socket

    from registry_fixtures import dead_pid

    from hpctrack.models._layout import safe_host

    staging = registry / "registry" / "m" / ".staging"
    staging.mkdir(exist_ok=True)
    gone = staging / f"{0:020d}-{safe_host(socket.gethostname())}-{dead_pid()}-abcdef01"
    alive = staging / f"{0:020d}-{safe_host(socket.gethostname())}-{os.getpid()}-abcdef02"
    gone.mkdir()
    alive.mkdir()
    (staging / "stray-file").write_text("x")
    done = hm.gc()
    assert [p.split(" ")[0] for p in done.staging_removed] == [str(gone)]
    assert alive.is_dir() and (staging / "stray-file").is_file()
