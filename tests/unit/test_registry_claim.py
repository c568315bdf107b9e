"""Version numbers: staged outside any lock, claimed by one rename; a lost race retries with the next number."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat

from registry_fixtures import sweep_with_artifacts

import hpctrack.models as hm
from hpctrack.models._layout import VERSION_FILE, Layout
from hpctrack.models._payload import Source, claim, stage


def _staged(layout: Layout, root, model: str = "m"):
    src = root / "payload.bin"
    src.write_bytes(b"x" * 100)
    return stage(layout, model, Source(src, root, "payload.bin"), {"format_version": 1, "model": model})[0]


def test_a_number_taken_by_another_claim_is_skipped_never_shared(hpctrack_root, tmp_path):
    layout = Layout(hpctrack_root)
    layout.ensure()
    first = _staged(layout, tmp_path)
    assert claim(layout, "m", first) == 1
    # Another registration claimed 2 and 3 between this one's listing and its rename: simulate the
    # listing by staging now and renaming the competitors in before the claim looks.
    second, third, mine = _staged(layout, tmp_path), _staged(layout, tmp_path), _staged(layout, tmp_path)
    os.rename(second, layout.base / "m" / "versions" / "2")
    os.rename(third, layout.base / "m" / "versions" / "3")
    assert claim(layout, "m", mine) == 4
    assert layout.version_numbers("m") == [1, 2, 3, 4]
    assert not list((layout.base / "m" / ".staging").iterdir())


def test_claim_rename_fails_on_a_taken_number_so_the_loop_moves_on(hpctrack_root, tmp_path, monkeypatch):
    """The listing says 1 is next, but 1 exists by the time of the rename (a concurrent claim)."""
    layout = Layout(hpctrack_root)
    layout.ensure()
    assert claim(layout, "m", _staged(layout, tmp_path)) == 1
    mine = _staged(layout, tmp_path)
    monkeypatch.setattr(Layout, "version_numbers", lambda self, name: [])  # a listing that is already stale
    assert claim(layout, "m", mine) == 2
    data = json.loads((layout.base / "m" / "versions" / "1" / VERSION_FILE).read_text())
    assert data["model"] == "m"


def test_a_symlink_planted_as_the_next_number_is_skipped_not_followed(hpctrack_root, tmp_path):
    layout = Layout(hpctrack_root)
    layout.ensure()
    (layout.base / "m" / "versions").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, layout.base / "m" / "versions" / "1")
    assert claim(layout, "m", _staged(layout, tmp_path)) == 2
    assert list(outside.iterdir()) == []
    assert layout.version_numbers("m") == [2]


def test_a_committed_version_is_read_only_with_a_manifest(hpctrack_root):
    sweep_with_artifacts(hpctrack_root, 1)
    v = hm.register("src/0", artifact="artifacts/model_dir", name="m")
    assert sorted(v.files) == ["model_dir/sub/config.txt", "model_dir/weights.bin"]
    for folder, dirs, names in os.walk(v.path):
        for entry in ["", *dirs, *names]:
            mode = os.lstat(os.path.join(folder, entry) if entry else folder).st_mode
            assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH), os.path.join(folder, entry)
    assert v.files["model_dir/sub/config.txt"]["size"] == len("run 0\n")


def _register_one(barrier, root: str, index: int, out) -> None:
    os.environ["HPCTRACK_ROOT"] = root
    barrier.wait()
    try:
        out.put((index, hm.register(f"src/{index % 4}", artifact="artifacts/model.bin", name="race").version))
    except BaseException as err:
        out.put((index, repr(err)))


def test_32_concurrent_registrations_get_32_distinct_numbers_and_whole_records(hpctrack_root):
    sweep_with_artifacts(hpctrack_root, 4)
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(32), ctx.Queue()
    procs = [ctx.Process(target=_register_one, args=(barrier, str(hpctrack_root), i, out)) for i in range(32)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=240) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    numbers = sorted(results.values(), key=str)
    assert all(isinstance(n, int) for n in numbers), results
    assert sorted(numbers) == list(range(1, 33))  # distinct, and no gap: no claim failed
    layout = Layout(hpctrack_root)
    for n in layout.version_numbers("race"):
        record = json.loads((layout.base / "race" / "versions" / str(n) / VERSION_FILE).read_text())
        assert record["model"] == "race" and record["files"]["model.bin"]["size"] >= 4096
    assert hm.verify(root=hpctrack_root) == []
    assert len([e for e in hm.history("race") if e["kind"] == "register"]) == 32
