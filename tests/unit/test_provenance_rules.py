"""Provenance records no secret: URLs, the environment (SLURM's included), the command line, the git diff."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hpctrack import provenance
from hpctrack.provenance import capture, git_info, redact_url


@pytest.mark.parametrize("url, expected", [
    ("https://user:token@example.org/alice/x.git", "https://example.org/alice/x.git"),
    ("https://user:pa/ss@example.org/alice/x.git", "https://example.org/alice/x.git"),  # / in the password
    ("https://user:p@ss@example.org/x.git", "https://example.org/x.git"),  # @ in the password
    ("https://user:p@ss/w@rd@example.org:8443/x.git", "https://example.org:8443/x.git"),
    ("https://example.org/x.git?private_token=glpat-s3cr3t", "https://example.org/x.git"),
    ("https://example.org/x.git#frag-s3cr3t", "https://example.org/x.git"),
    ("https://oauth2:s3cr3t@gitlab.example.org/g/x.git?private_token=s3cr3t", "https://gitlab.example.org/g/x.git"),
    ("ssh://git@example.org:2222/x.git", "ssh://example.org:2222/x.git"),
    ("git@github.com:org/x.git", "github.com:org/x.git"),
    ("https://example.org/@scope/x.git", "https://example.org/@scope/x.git"),  # an @ in the path is not a password
    ("/srv/git/x.git", "/srv/git/x.git"),
])  # fmt: skip
def test_redact_url_keeps_scheme_host_and_path(url, expected):
    assert redact_url(url) == expected


def test_slurm_and_allowlisted_environment_go_through_the_secret_rule(monkeypatch):
    monkeypatch.setenv("SLURM_MYSECRET_TOKEN", "s3cr3t-a")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("HPCTRACK_API_TOKEN", "s3cr3t-b")
    monkeypatch.setenv("HPCTRACK_COMMAND", json.dumps(["hpctrack", "launch", "t.py", "db.password=s3cr3t-c"]))
    monkeypatch.setattr(sys, "argv", ["train.py", "db.password=s3cr3t-d", "--api-token", "s3cr3t-e", "seed=1"])
    out = capture(script=None)
    text = json.dumps(out)
    assert "s3cr3t" not in text
    assert out["slurm"]["SLURM_JOB_ID"] == "42" and "SLURM_MYSECRET_TOKEN" not in out["slurm"]
    assert json.loads(out["environment"]["HPCTRACK_COMMAND"])[-1] == "db.password=***"
    assert out["command"][1:] == ["train.py", "db.password=***", "--api-token", "***", "seed=1"]


def test_the_recorded_diff_masks_secret_assignments(tmp_path):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}  # fmt: skip
    (tmp_path / "c.yaml").write_text("db:\n  password: old\n  host: h\n")
    for cmd in (["git", "init", "-q"], ["git", "add", "."], ["git", "commit", "-q", "-m", "x"]):
        subprocess.run(cmd, cwd=tmp_path, check=True, env=env)
    (tmp_path / "c.yaml").write_text("db:\n  password: n3w-s3cr3t\n  host: h2\n")
    info = git_info(str(tmp_path))
    assert "s3cr3t" not in info["diff"] and "old" not in info["diff"]
    assert "+  password: ***" in info["diff"] and "+  host: h2" in info["diff"] and info["diff_masked_lines"] == 2
    # The digest is over what is recorded, so comparing code later compares like with like.
    import hashlib

    assert info["diff_sha256"] == hashlib.sha256(info["diff"].encode()).hexdigest()
    assert provenance.DIFF_CAP_BYTES > 0
