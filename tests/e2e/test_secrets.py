"""Secrets never reach the disk: a password given as an override or kept in a config file is masked in
everything hpctrack writes (the job itself still receives it), the SLURM environment is filtered, and the
code snapshot outside git leaves credentials behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
from conftest import run_cli

pytestmark = pytest.mark.e2e

_SCRIPT = """
import json, os
from pathlib import Path

import hydra

import hpctrack


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg):
    with hpctrack.start_run(cfg) as run:
        # What the job received, outside the root, to show it got the real values.
        seen = {"password": cfg.db.password, "api_token": cfg.db.api_token, "env_password": cfg.db.env_password}
        Path(os.environ["EVIDENCE_DIR"], f"seed{cfg.seed}.json").write_text(json.dumps(seen))
        run.log({"loss": 1.0 / (cfg.seed + 1)}, step=0)
        run.summary["got_password"] = float(cfg.db.password == os.environ["EXPECTED_PASSWORD"])


if __name__ == "__main__":
    main()
"""

_CONFIG = """
seed: 0
db:
  host: db.example.org
  password: placeholder
  api_token: none
  env_password: ${oc.env:TEST_DB_PASSWORD,unset}
"""

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _project(folder: Path) -> Path:
    (folder / "conf").mkdir(parents=True)
    (folder / "train.py").write_text(_SCRIPT)
    (folder / "conf" / "config.yaml").write_text(_CONFIG)
    return folder / "train.py"


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}  # fmt: skip
    subprocess.run(["git", *args], cwd=repo, check=True, env=env, capture_output=True)


def _h5_text(path: Path) -> str:
    import h5py

    parts: List[str] = []

    def visit(name: str, obj: object) -> None:
        parts.extend(f"{k}={v!r}" for k, v in obj.attrs.items())  # type: ignore[attr-defined]
        if isinstance(obj, h5py.Dataset):
            data = obj[()]
            parts.append(data.decode("utf-8", "replace") if isinstance(data, bytes) else repr(data.tolist()))

    with h5py.File(path, "r", locking=False) as fh:
        parts.extend(f"{k}={v!r}" for k, v in fh.attrs.items())
        fh.visititems(visit)
    return "\n".join(parts)


def _zarr_text(path: Path) -> str:
    import zarr

    group = zarr.open_group(str(path), mode="r")
    parts = [json.dumps(dict(group.attrs))]
    for name, array in group.arrays():
        parts.append(f"{name}: {json.dumps(dict(array.attrs))} {array[:].tolist()!r}")
    return "\n".join(parts)


def _everything(root: Path) -> Dict[str, str]:
    """Every file under ``root`` as text, stores also read through their libraries (they may compress)."""
    out: Dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_dir() and path.suffix == ".zarr" and (path / "zarr.json").is_file():
            out[rel + " (zarr)"] = _zarr_text(path)
        if path.is_symlink() or not path.is_file():
            continue
        raw = path.read_bytes()
        out[rel] = raw.decode("latin-1")
        if raw.startswith(_HDF5_MAGIC):
            out[rel + " (hdf5)"] = _h5_text(path)
    return out


def _holding(root: Path, secret: str) -> List[str]:
    return sorted(name for name, text in _everything(root).items() if secret in text)


def _evidence(folder: Path) -> Dict[str, Dict[str, str]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def _launch(script: Path, store: str, name: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_cli("launch", str(script), "seed=0,1", "db.password=hunter2", "--name", name, "--store", store,
                   "--no-progress", cwd=cwd)  # fmt: skip


@pytest.fixture
def secret_env(tmp_path, monkeypatch, hpctrack_root):
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    monkeypatch.setenv("EVIDENCE_DIR", str(evidence))
    monkeypatch.setenv("TEST_DB_PASSWORD", "envs3cr3t")
    monkeypatch.setenv("EXPECTED_PASSWORD", "hunter2")  # not recorded: not in the environment allowlist
    monkeypatch.setenv("SLURM_MYSECRET_TOKEN", "slurms3cr3t")  # recorded by provenance unless filtered
    return evidence


def test_secrets_in_overrides_and_git_config_never_reach_the_disk(secret_env, hpctrack_root, tmp_path):
    repo = tmp_path / "project"
    script = _project(repo)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    conf = repo / "conf" / "config.yaml"
    conf.write_text(conf.read_text().replace("api_token: none", "api_token: cfgs3cr3t"))  # in the git diff

    proc = _launch(script, "hdf5", "sec", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The jobs received the real values.
    seen = _evidence(secret_env)
    assert seen == {f"seed{s}": {"password": "hunter2", "api_token": "cfgs3cr3t", "env_password": "envs3cr3t"}
                    for s in (0, 1)}  # fmt: skip

    # On disk: the override only in the job function (decided: the job must receive it; it is owner-only).
    assert [p for p in _holding(hpctrack_root, "hunter2") if not p.endswith("job.pkl")] == []
    # The config file's secret only where the job reads its code from: the snapshot of the working tree.
    where = [p for p in _holding(hpctrack_root, "cfgs3cr3t") if not p.endswith("job.pkl")]
    assert where and all(p.startswith("code/") and p.endswith("conf/config.yaml") for p in where), where
    assert _holding(hpctrack_root, "envs3cr3t") == []  # recorded unresolved
    assert _holding(hpctrack_root, "slurms3cr3t") == []

    import hpctrack

    sweep = hpctrack.load_sweep("sec")
    run = sweep.run(0)
    assert run.summary["got_password"] == 1.0
    assert run.params["db.password"] == "***" and run.params["db.api_token"] == "***"
    assert run.params["db.host"] == "db.example.org" and run.params["seed"] == 0
    assert run.params["db.env_password"] == "${oc.env:TEST_DB_PASSWORD,unset}"
    assert "env_password: ${oc.env:TEST_DB_PASSWORD,unset}" in run.info["config_yaml"]
    assert "db.password=***" in run.info["overrides"]
    assert "db.password=***" in sweep.manifest.jobs[0].overrides
    diff = run.info["provenance"]["git"]["diff"]
    assert "+  api_token: ***" in diff and "-  api_token: ***" in diff and "cfgs3cr3t" not in diff
    shown = run_cli("show", "sec/0", check=True).stdout + run_cli("table", "sec", check=True).stdout
    assert "hunter2" not in shown and "cfgs3cr3t" not in shown


def test_outside_git_the_snapshot_skips_credentials_and_says_so(secret_env, hpctrack_root, tmp_path):
    folder = tmp_path / "plain"
    script = _project(folder)
    (folder / ".env").write_text("DB_PASSWORD=dotenvs3cr3t\n")
    (folder / "secrets").mkdir()
    (folder / "secrets" / "id_rsa").write_text("-----BEGIN KEY----- rsas3cr3t\n")
    (folder / "server.pem").write_text("pems3cr3t\n")
    (folder / "notes.txt").write_text("ignoreds3cr3t\n")
    (folder / "keep.txt").write_text("kept\n")
    (folder / ".hpctrackignore").write_text("# local notes\nnotes.txt\n")

    proc = _launch(script, "zarr", "plain", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "code snapshot: skipped 4 files" in proc.stderr, proc.stderr
    for secret in ("hunter2",):
        assert [p for p in _holding(hpctrack_root, secret) if not p.endswith("job.pkl")] == []
    for secret in ("dotenvs3cr3t", "rsas3cr3t", "pems3cr3t", "ignoreds3cr3t", "envs3cr3t", "slurms3cr3t"):
        assert _holding(hpctrack_root, secret) == [], secret
    assert _evidence(secret_env)["seed1"]["password"] == "hunter2"

    import hpctrack

    code = hpctrack.load_sweep("plain").manifest.code
    assert sorted(code["skipped"]) == [".env", "notes.txt", "secrets/id_rsa", "server.pem"]
    assert (Path(code["path"]) / "keep.txt").is_file() and (Path(code["path"]) / ".hpctrackignore").is_file()


def test_a_plain_run_masks_its_command_line(secret_env, hpctrack_root, tmp_path):
    folder = tmp_path / "direct"
    script = _project(folder)
    proc = subprocess.run([sys.executable, str(script), "db.password=hunter2", "seed=3"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=240, env=dict(os.environ))  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _evidence(secret_env)["seed3"]["password"] == "hunter2"
    assert _holding(hpctrack_root, "hunter2") == []
    # Hydra's own outputs of the plain run (outside the root) are masked too.
    assert [p for p in _everything(tmp_path / "outputs") if "hunter2" in _everything(tmp_path / "outputs")[p]] == []


def test_rerun_of_a_masked_run_asks_for_the_secret_again(secret_env, hpctrack_root, tmp_path):
    script = _project(tmp_path / "project")
    proc = run_cli("launch", str(script), "seed=5", "db.password=hunter2", "--name", "orig", "--no-progress",
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (secret_env / "seed5.json").unlink()

    refused = run_cli("rerun", "orig/0", "--no-progress", cwd=tmp_path)
    assert refused.returncode == 1
    errors = [line for line in refused.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "db.password=..." in errors[0], refused.stderr
    assert not (secret_env / "seed5.json").exists()  # nothing ran
    masked = run_cli("rerun", "orig/0", "db.password=***", "--no-progress", cwd=tmp_path)  # the mask, copied back
    assert masked.returncode == 1 and "the mask" in masked.stderr, masked.stdout + masked.stderr
    assert not (secret_env / "seed5.json").exists()

    again = run_cli("rerun", "orig/0", "db.password=hunter2", "--no-progress", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert _evidence(secret_env)["seed5"]["password"] == "hunter2"
    assert [p for p in _holding(hpctrack_root, "hunter2") if not p.endswith("job.pkl")] == []


def test_a_failed_job_does_not_print_its_secret_override(hpctrack_root, tmp_path):
    from conftest import SCRIPTS

    flag = tmp_path / "fail"
    flag.write_text("x")
    proc = run_cli("launch", str(SCRIPTS / "resumable.py"), "+db.password=hunter2", f"fail_flag={flag}",
                   "fail_at=0", "--name", "loud", "--no-progress", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "failing on purpose" in proc.stdout + proc.stderr or "FAILED" in proc.stdout + proc.stderr
    assert "hunter2" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
