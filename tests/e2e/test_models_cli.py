"""The model registry through ``python -m hpctrack models ...`` on a real sweep of the shipped example.

A user registers the best run, promotes it with an alias, loads it by ``NAME@production`` in a
script, finds which version was in production at a given moment and which run, commit and config
produced it, and still loads it after the source sweep is gone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime

import pytest
from conftest import EXAMPLE, one_error, run_cli

pytestmark = pytest.mark.e2e

LOAD = ("import numpy as np, hpctrack.models as hm; p = hm.get_path('digits-mlp@production'); "
        "print(p); print(sorted(np.load(p).files))")  # fmt: skip


def _json(*args: str):
    return json.loads(run_cli(*args, "--format", "json", check=True).stdout)


def _script(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ))  # fmt: skip


def test_register_promote_load_history_and_outlive_the_sweep(hpctrack_root, tmp_path):
    proc = run_cli("launch", "--parallel", "2", str(EXAMPLE), "optimizer.lr=0.02,0.2", "epochs=3", "--name",
                   "digits", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = _json("table", "digits")
    best = max(rows, key=lambda r: r["val/acc:max"])["job"]
    other = 1 - best

    out = run_cli("models", "register", f"digits/{best}", "--artifact", "artifacts/model.npz", "--name", "digits-mlp",
                  "--alias", "staging", "--tag", "task=cls", check=True).stdout  # fmt: skip
    assert out.startswith("registered digits-mlp/1 from run ") and "aliases: staging" in out, out
    out = run_cli("models", "register", f"digits/{other}", "--checkpoint", "latest", "--name", "digits-mlp",
                  "--parent", "digits-mlp/1", check=True).stdout  # fmt: skip
    assert out.startswith("registered digits-mlp/2"), out

    # promote, move around, and read back which version held production when
    run_cli("models", "alias", "digits-mlp", "1", "production", "--reason", "best val/acc", check=True)
    run_cli("models", "alias", "digits-mlp", "2", "production", "--reason", "try the checkpoint", check=True)
    out = run_cli("models", "alias", "digits-mlp", "1", "production", "--reason", "roll back", check=True).stdout
    assert out.strip() == "digits-mlp@production -> 1 (was 2)"
    moves = _json("models", "history", "digits-mlp", "--alias", "production")
    assert [(m["old"], m["new"]) for m in moves] == [(None, 1), (1, 2), (2, 1)]
    for move in moves:
        at = datetime.fromtimestamp(move["time"] + 1e-3).isoformat()
        assert _json("models", "history", "digits-mlp", "--alias", "production", "--at", at) == {
            "production": move["new"]}  # fmt: skip
    before = datetime.fromtimestamp(_json("models", "history", "digits-mlp")[0]["time"] - 1e-3).isoformat()
    assert _json("models", "history", "digits-mlp", "--at", before) == {"production": None, "staging": None}
    text = run_cli("models", "history", "digits-mlp", check=True).stdout
    assert "production: 1 -> 2" in text and "reason: roll back" in text, text

    # load by name in a script
    loaded = _script(LOAD)
    assert loaded.returncode == 0, loaded.stderr
    path = loaded.stdout.splitlines()[0]
    assert path.endswith("registry/digits-mlp/versions/1/files/model.npz")
    assert run_cli("models", "path", "digits-mlp@production", check=True).stdout.strip() == path

    # lineage: the run, the config and the code that made it
    shown = _json("models", "show", "digits-mlp@production")
    run = shown["lineage"]["run"]
    assert run["run_id"].endswith(f"/{best}") and run["sweep_name"] == "digits"
    assert shown["lineage"]["config"]["epochs"] == 3 and "val/acc:max" in shown["lineage"]["metrics"]
    assert shown["lineage"]["packages_sha256"] and shown["tags"] == {"task": "cls"}
    assert _json("models", "show", "digits-mlp/2")["source"]["checkpoint"]["step"] == 2
    assert _json("models", "show", "digits-mlp/2")["parents"] == ["digits-mlp/1"]
    text = run_cli("models", "show", "digits-mlp@production", check=True).stdout
    assert f"run:         {run['run_id']}" in text and "config:" in text
    assert "model:      digits-mlp/1  (production, staging)" in run_cli("show", f"digits/{best}", check=True).stdout
    versions = run_cli("models", "versions", "digits-mlp", "--where", "tags.task == 'cls'", "--format", "csv",
                       check=True).stdout  # fmt: skip
    assert len(versions.splitlines()) == 2 and versions.splitlines()[1].startswith("1,"), versions

    # the registered runs are pinned: rm refuses and says why; gc never touches run data
    one_error(run_cli("rm", "digits"), "registered as digits-mlp/1", "registered as digits-mlp/2", "hpctrack unpin")
    run_dir = hpctrack_root / "sweeps" / run["sweep_id"] / "runs" / str(best)
    run_cli("gc", "digits", check=True)  # removes submitit's pickles only, never run data
    assert (run_dir / "artifacts" / "model.npz").is_file() and _script(LOAD).returncode == 0

    # the sweep goes; the versions stay whole and loadable
    run_cli("unpin", "digits", "0", "1", check=True)
    run_cli("rm", "--purge", "digits", check=True)
    assert not any((hpctrack_root / "sweeps").iterdir())
    loaded = _script(LOAD)
    assert loaded.returncode == 0 and "W1" in loaded.stdout, loaded.stderr
    assert run_cli("models", "verify", check=True).stdout.strip() == "registry ok"
    assert _json("models", "show", "digits-mlp/1")["lineage"]["run"]["run_id"] == run["run_id"]
    out = run_cli("models", "download", "digits-mlp@production", str(tmp_path / "deploy"), check=True).stdout
    assert (tmp_path / "deploy" / "model.npz").read_bytes() == open(path, "rb").read(), out

    # one flipped byte: verify reports it, path refuses in one line, the script fails
    os.chmod(path, 0o644)
    data = bytearray(open(path, "rb").read())
    data[100] ^= 0x01
    with open(path, "wb") as fh:
        fh.write(bytes(data))
    proc = run_cli("models", "verify")
    assert proc.returncode == 1 and path in proc.stdout and "sha256" in proc.stdout, proc.stdout
    one_error(run_cli("models", "path", "digits-mlp@production"), "damaged, refusing its path", path)
    assert _script(LOAD).returncode != 0


def _small_registry(root, tmp_path):
    from registry_fixtures import sweep_with_artifacts

    return sweep_with_artifacts(root, 2)


def test_hostile_names_and_planted_symlinks_are_one_line_and_write_nothing(hpctrack_root, tmp_path):
    m = _small_registry(hpctrack_root, tmp_path)
    base = ["models", "register", "src/0", "--artifact", "artifacts/model.bin"]
    for args, needle in [
        ([*base, "--name", "../x"], "not path-safe"),
        ([*base, "--name", "a/b"], "not path-safe"),
        ([*base, "--name", "bad\x1bname"], "not path-safe"),
        ([*base, "--name", "ok", "--alias", "latest"], "reserved"),
        ([*base, "--name", "ok", "--alias", "v3"], "reserved"),
        ([*base, "--name", "ok", "--tag", "novalue"], "key=value"),
        (["models", "register", "src/0", "--artifact", "artifacts/none.bin", "--name", "ok"], "no such file"),
        (["models", "register", "src/7", "--artifact", "artifacts/model.bin", "--name", "ok"], "no job 7"),
        (["models", "show", "nosuch"], "no model 'nosuch'"),
    ]:
        one_error(run_cli(*args), needle)
    assert not (hpctrack_root / "registry").exists()

    # a symlink in the source run: never followed out of the run directory
    secret = tmp_path / "shadow"
    secret.write_text("root:x:0:0")
    os.symlink(secret, m.run_path(0) / "artifacts" / "evil.ckpt")
    one_error(run_cli("models", "register", "src/0", "--artifact", "artifacts/evil.ckpt", "--name", "ok"),
               "out of the run directory")  # fmt: skip

    # a symlink planted in the registry: refused, the place it points to untouched
    run_cli(*base, "--name", "ok", check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, hpctrack_root / "registry" / "ok" / "aliases")
    one_error(run_cli("models", "alias", "ok", "1", "production"), "symlink")
    one_error(run_cli("models", "alias", "ok", "1", "v2"), "reserved")
    assert list(elsewhere.iterdir()) == []
    proc = run_cli("models", "verify")
    assert proc.returncode == 1 and "symlink" in proc.stdout
