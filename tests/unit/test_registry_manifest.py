"""The manifest (sha256 and size per file) is checked by verify, path and download; sources are read
completely and never through a symlink."""

from __future__ import annotations

import os

import pytest
from registry_fixtures import sweep_with_artifacts

import hpctrack.models as hm
from hpctrack.errors import ConfigError, StoreError, UnsafePathError


def _flip_one_byte(path):
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    os.chmod(path, 0o444)


def test_one_flipped_byte_is_reported_by_verify_and_refused_by_path_and_download(hpctrack_root, tmp_path):
    sweep_with_artifacts(hpctrack_root, 2)
    v1 = hm.register("src/0", artifact="artifacts/model.bin", name="m")
    hm.register("src/1", artifact="artifacts/model.bin", name="m")
    assert hm.verify() == []
    _flip_one_byte(v1.payload_path)
    problems = hm.verify()
    assert len(problems) == 1 and str(v1.payload_path) in problems[0] and "sha256" in problems[0]
    assert hm.verify("m/2") == [] and len(hm.verify("m/1")) == 1
    with pytest.raises(StoreError, match="damaged, refusing its path") as info:
        hm.get_path("m/1")
    assert "\n" not in str(info.value)
    with pytest.raises(StoreError):
        hm.download("m/1", tmp_path / "out")
    assert not (tmp_path / "out" / "model.bin").exists()
    assert hm.get_path("m/2").read_bytes()  # the other version is untouched


def test_a_same_size_change_and_an_added_file_are_both_caught(hpctrack_root):
    sweep_with_artifacts(hpctrack_root, 1)
    v = hm.register("src/0", artifact="artifacts/model_dir", name="d")
    os.chmod(v.payload_path / "sub", 0o755)
    (v.payload_path / "sub" / "extra.txt").write_text("planted")
    problems = hm.verify("d/1")
    assert any("not part of the version" in p for p in problems), problems
    assert any("writable" in p for p in problems), problems


def test_download_copies_a_verified_payload_and_never_overwrites(hpctrack_root, tmp_path):
    sweep_with_artifacts(hpctrack_root, 1)
    v = hm.register("src/0", artifact="artifacts/model_dir", name="d")
    out = hm.download("d", tmp_path / "deploy")
    assert out == tmp_path / "deploy" / "model_dir"
    assert (out / "weights.bin").read_bytes() == (v.payload_path / "weights.bin").read_bytes()
    with pytest.raises(ConfigError, match="already exists"):
        hm.download("d", tmp_path / "deploy")


def test_a_symlink_in_the_source_is_refused_and_nothing_outside_is_copied(hpctrack_root, tmp_path):
    m = sweep_with_artifacts(hpctrack_root, 1)
    secret = tmp_path / "shadow"
    secret.write_text("root:secret")
    run_dir = m.run_path(0)
    os.symlink(secret, run_dir / "artifacts" / "model_dir" / "sub" / "leak.txt")
    with pytest.raises(UnsafePathError, match="symlink"):
        hm.register("src/0", artifact="artifacts/model_dir", name="d")
    os.symlink(secret, run_dir / "checkpoints_link")
    with pytest.raises(ConfigError, match="out of the run directory"):
        hm.register("src/0", artifact="checkpoints_link", name="d")
    assert not (hpctrack_root / "registry").exists()  # refused before anything was written
    assert hm.verify() == []


def test_a_missing_source_is_refused_before_anything_is_written(hpctrack_root):
    sweep_with_artifacts(hpctrack_root, 1)
    with pytest.raises(ConfigError, match="no such file"):
        hm.register("src/0", artifact="artifacts/nope.ckpt", name="m")
    with pytest.raises(ConfigError, match="no checkpoint"):
        hm.register("src/0", checkpoint="latest", name="m")
    with pytest.raises(ConfigError, match="exactly one"):
        hm.register("src/0", name="m")
    assert not (hpctrack_root / "registry").exists()


def test_the_newest_checkpoint_is_registered_with_its_step(hpctrack_root):
    from hpctrack.checkpoint import CHECKPOINTS_DIR, Checkpoints

    m = sweep_with_artifacts(hpctrack_root, 1)
    checkpoints = Checkpoints(m.run_path(0) / CHECKPOINTS_DIR)
    for step in (3, 7):
        with checkpoints.writing(step=step, attempt=1, state={"step": step}, keep=5) as folder:
            (folder / "weights.bin").write_bytes(bytes([step]) * 64)
    v = hm.register("src/0", checkpoint="latest", name="ck")
    assert v.source["checkpoint"]["step"] == 7 and v.payload == "checkpoint-000002"
    assert (hm.get_path("ck") / "weights.bin").read_bytes() == bytes([7]) * 64
    first = hm.register("src/0", checkpoint="1", name="ck")
    assert first.source["checkpoint"]["step"] == 3
    with pytest.raises(ConfigError, match="give 'latest' or the number"):
        hm.register("src/0", checkpoint="9", name="ck")
