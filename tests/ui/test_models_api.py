"""The dashboard's read-only view of the model registry, through one real ``python -m hpctrack ui``:
each answer is what the CLI prints for the same model (as a real subprocess too)."""

from __future__ import annotations

import json

import pytest
from registry_fixtures import sweep_with_artifacts
from uiserver import cli, start_ui

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui-models") / "root"
    sweep_with_artifacts(root, 2)
    for args in (["register", "src/0", "--artifact", "artifacts/model.bin", "--name", "m", "--tag", "task=cls"],
                 ["register", "src/1", "--artifact", "artifacts/model_dir", "--name", "m", "--alias", "staging"],
                 ["alias", "m", "1", "production", "--reason", "first"], ["unalias", "m", "staging"]):  # fmt: skip
        proc = cli(root, "models", *args)
        assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture(scope="module")
def ui(root):
    server = start_ui(root)
    yield server
    server.stop()


def test_models_and_one_model_with_versions_and_history(ui, root):
    listed = ui.request("api/models")
    assert listed.status == 200
    assert listed.json() == {"models": json.loads(cli(root, "models", "ls", "--format", "json").stdout)}
    model = ui.request("api/models/m").json()
    assert [v["version"] for v in model["versions"]] == [1, 2]
    assert model["aliases"] == {"production": 1}
    assert model["versions"][0]["run"] == "20260101-000000-rgst/0" and "loss:min" in model["versions"][0]["metrics"]
    assert model["history"] == json.loads(cli(root, "models", "history", "m", "--format", "json").stdout)
    one = ui.request("api/models/m/2").json()
    assert one == json.loads(cli(root, "models", "show", "m/2", "--format", "json").stdout)


@pytest.mark.parametrize("path", ["api/models/nosuch", "api/models/m/9", "api/models/..%2Fx"])
def test_a_model_or_version_that_is_not_there_is_a_404_in_one_line(ui, path):
    reply = ui.request(path)
    assert reply.status == 404, (reply.status, reply.text)
    assert len(reply.json()["error"].splitlines()) == 1


def test_the_registry_view_only_reads(ui, root):
    before = sorted(str(p) for p in (root / "registry").rglob("*"))
    for path in ("api/models", "api/models/m", "api/models/m/1"):
        assert ui.request(path).status == 200
        assert ui.request(path, method="POST").status in (403, 405)
    assert sorted(str(p) for p in (root / "registry").rglob("*")) == before
    assert ui.request("static/page-models.js").status == 200


def test_a_bad_alias_in_one_model_is_that_models_problem_in_the_data_never_a_400(tmp_path):
    import os

    root = tmp_path / "root"
    sweep_with_artifacts(root, 1)
    for name in ("bad", "good"):
        proc = cli(root, "models", "register", "src/0", "--artifact", "artifacts/model.bin", "--name", name,
                   "--alias", "production")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    (tmp_path / "elsewhere").mkdir()
    planted = root / "registry" / "bad" / "aliases" / "evil"
    os.symlink(tmp_path / "elsewhere", planted)
    server = start_ui(root)
    try:
        listed = server.request("api/models")
        assert listed.status == 200, listed.text
        by_name = {m["name"]: m for m in listed.json()["models"]}
        assert str(planted) in by_name["bad"]["problems"][0] and by_name["good"]["problems"] == []
        assert by_name["good"]["aliases"] == {"production": 1}
        for path in ("api/models/bad", "api/models/bad/1", "api/models/good", "api/models/good/1"):
            reply = server.request(path)
            assert reply.status == 200, (path, reply.status, reply.text)
        assert str(planted) in server.request("api/models/bad").json()["problems"][0]
        assert str(planted) in server.request("api/models/bad/1").json()["problems"][0]
    finally:
        server.stop()
