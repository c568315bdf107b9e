"""The secret-key rule and the masking helpers of hpctrack.secrets."""

from __future__ import annotations

import json

import pytest

from hpctrack.secrets import (
    MASK,
    is_secret_key,
    mask_argv,
    mask_config,
    mask_diff,
    mask_json_argv,
    mask_mapping,
    mask_overrides,  # fmt: skip
    mask_text,
    mask_yaml_text,
    masked_keys,
)


@pytest.mark.parametrize("key", ["db.password", "DB_PASSWORD", "dbPassword", "passwd", "db.pwd", "api_key",
                                 "apiKey", "wandb.api-key", "github_token", "auth", "auth.header", "Authorization",
                                 "client_secret", "secrets.db.host", "aws_secret_access_key", "private_key",
                                 "credentials", "session_cookie", "SLURM_MYSECRET_TOKEN", "+db.password",
                                 "++db.password", "~db.password", "--api-token", "hydra/x.token"])  # fmt: skip
def test_secret_looking_keys(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["seed", "optimizer.lr", "max_tokens", "tokenizer.name", "author", "model.key_dim",
                                 "monkey", "db.host", "OMP_NUM_THREADS", "SLURM_JOB_ID", "HPCTRACK_COMMAND",
                                 "passage_len"])  # fmt: skip
def test_ordinary_keys(key):
    assert not is_secret_key(key)


def test_the_rule_is_configurable(monkeypatch):
    monkeypatch.setenv("HPCTRACK_SECRET_KEYS", "license, *_DSN ,!pad_token")
    assert is_secret_key("license") and is_secret_key("db.sentry_dsn")
    assert not is_secret_key("tokenizer.pad_token") and is_secret_key("hf_token")


def test_mask_mapping_nested_and_flat():
    data = {"db": {"password": "x", "host": "h"}, "db.api_key": "k", "secrets": {"a": 1}, "lr": 0.1,
            "env": "${oc.env:PW}", "dirname": "db.password=x,seed=1", "list": [{"token": "t"}]}  # fmt: skip
    out = mask_mapping(data)
    assert out == {
        "db": {"password": MASK, "host": "h"},
        "db.api_key": MASK,
        "secrets": MASK,
        "lr": 0.1,
        "env": "${oc.env:PW}",
        "dirname": f"db.password={MASK},seed=1",
        "list": [{"token": MASK}],
    }
    assert mask_mapping({"password": "${oc.env:DB_PASSWORD}"}) == {"password": "${oc.env:DB_PASSWORD}"}


def test_mask_config_keeps_env_interpolations_unresolved(monkeypatch):
    from omegaconf import OmegaConf

    monkeypatch.setenv("T_PW", "envsecret")
    cfg = OmegaConf.create({"db": {"password": "${oc.env:T_PW}", "token": "lit", "host": "h",
                                   "url": "pg://u:${db.token}@${db.host}"},
                            "home": "${db.host}", "tags": ["a", "${db.token}"]})  # fmt: skip
    out = mask_config(cfg)
    assert out == {"db": {"password": "${oc.env:T_PW}", "token": MASK, "host": "h", "url": "pg://u:${db.token}@${db.host}"},
                   "home": "h", "tags": ["a", "${db.token}"]}  # fmt: skip
    assert "envsecret" not in json.dumps(out) and "lit" not in json.dumps(out)


def test_mask_overrides():
    given = [
        "db.password=x",
        "+db.password=y",
        "++db.token=z",
        "~db.password=x",
        "~db.password",
        "seed=1,2",
        "db.password=${oc.env:PW}",
        "hydra.job.override_dirname='db.password=q,s=1'",
        "api_key=a,b",
    ]
    out = mask_overrides(given)
    assert out == ["db.password=***", "+db.password=***", "++db.token=***", "~db.password=***", "~db.password",
                   "seed=1,2", "db.password=${oc.env:PW}", "hydra.job.override_dirname='db.password=***,s=1'",
                   "api_key=***"]  # fmt: skip
    assert masked_keys(out) == ["db.password", "+db.password", "++db.token", "~db.password", "api_key"]


def test_mask_argv():
    argv = ["python", "train.py", "db.password=hunter2", "--password", "hunter2", "--api-token=abc", "-m", "seed=1"]
    assert mask_argv(argv) == ["python", "train.py", "db.password=***", "--password", MASK, "--api-token=***", "-m",
                               "seed=1"]  # fmt: skip
    assert json.loads(mask_json_argv(json.dumps(argv))) == mask_argv(argv)
    assert "hunter2" not in mask_text('["hpctrack", "launch", "db.password=hunter2"]')


def test_mask_yaml_text():
    text = "db:\n  password: hunter2\n  host: h\nhydra:\n  overrides:\n    task:\n    - db.password=hunter2\n"
    out = mask_yaml_text(text)
    assert "hunter2" not in out and "host: h" in out and "db.password=***" in out
    assert mask_yaml_text("- seed=1\n") == "- seed=1\n"  # unchanged text stays byte for byte


def test_mask_diff():
    diff = ("diff --git a/conf/c.yaml b/conf/c.yaml\n--- a/conf/c.yaml\n+++ b/conf/c.yaml\n"
            "-  api_token: none\n+  api_token: s3cr3t  # new\n   lr: 0.1\n"
            "+DB_PASSWORD=s3cr3t\n+export GH_TOKEN=s3cr3t\n+    password = \"s3cr3t\"\n"
            "+    password = os.environ['PW']\n+  \"secret\": \"s3cr3t\",\n+pw: ${oc.env:X}\n"
            "+token:\n")  # fmt: skip
    out, count = mask_diff(diff)
    assert "s3cr3t" not in out and count == 6
    assert "-  api_token: ***\n+  api_token: ***  # new\n" in out
    assert '+    password = "***"\n' in out and "os.environ['PW']" in out and "${oc.env:X}" in out
    assert '+  "secret": "***",\n' in out and "+token:\n" in out
    assert mask_diff("") == ("", 0)


def test_mask_diff_catches_json_yaml_blocks_flows_headers_environ_and_url_credentials():
    from hpctrack.secrets import mask_diff

    diff = "\n".join([
        "--- a/c.yaml", "+++ b/c.yaml", "@@ -1,3 +1,12 @@",
        '+{"password": "jsonval-Q2", "token":"jsonval-Q2b"}',
        "+secret_key: |", "+  blockval-Q3", "+after: 1",
        "+passwords:", "+  - listval-Q7",
        "+secret: {a: flowval-Q8}",
        '+headers = {"Authorization": "Bearer bearer-Q5abcdefgh"}',
        '+os.environ["HF_TOKEN"] = "hf-Q6"',
        "+url: https://u:urlval-Q4@h.example/",
        '+password = os.environ["PW"]', "+def f(password: str): pass", "+max_tokens: 5", "+token = compute()",
    ]) + "\n"  # fmt: skip
    masked, count = mask_diff(diff)
    for secret in ("Q2", "Q3", "Q4", "Q5", "Q6", "Q7", "Q8"):
        assert secret not in masked, (secret, masked)
    for kept in ("after: 1", 'os.environ["PW"]', "def f(password: str)", "max_tokens: 5", "compute()"):
        assert kept in masked, (kept, masked)
    assert count == 8  # one per line that shows a secret
