"""The dashboard's model registry pages in Chromium: what they show is what ``hpctrack models`` prints."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

pytest.register_assert_rewrite("dashboard")
from dashboard import Console, cli, cli_json, open_page, serve  # noqa: E402
from registry_fixtures import sweep_with_artifacts  # noqa: E402

pytest_plugins = ["dashboard"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def registry_server(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("browser-models") / "root"
    sweep_with_artifacts(root, 2)
    cli(root, "models", "register", "src/0", "--artifact", "artifacts/model.bin", "--name", "m", "--tag", "task=cls")
    cli(root, "models", "register", "src/1", "--artifact", "artifacts/model.bin", "--name", "m", "--alias", "staging")
    cli(root, "models", "alias", "m", "1", "production", "--reason", "first")
    with serve(root) as server:
        yield root, server


def test_models_list_and_model_page(browser: Any, registry_server: Any) -> None:
    root, server = registry_server
    console = Console()
    with open_page(browser, console) as page:
        page.goto(server.url)
        page.click("a.nav-models")
        page.wait_for_selector("#models tbody tr[data-name='m']")
        listed = cli_json(root, "models", "ls")
        assert page.text_content("#models tbody tr[data-name='m'] td:nth-child(2)") == str(listed[0]["versions"])
        page.click("a.model-link")
        page.wait_for_selector("#versions tbody tr[data-version='2']")
        rows = page.eval_on_selector_all("#versions tbody tr", "rs => rs.map(r => r.dataset.version)")
        assert rows == ["1", "2"]
        assert page.text_content("#versions tbody tr[data-version='1'] td:nth-child(2)") == "production"
        assert page.text_content("#versions tbody tr[data-version='2'] td:nth-child(2)") == "staging"
        history = cli_json(root, "models", "history", "m")
        assert page.eval_on_selector_all("#history tbody tr", "rs => rs.length") == len(history)
        assert "production: - → 1" in page.text_content("#history")
    assert console.errors == []


def test_a_models_problem_is_shown_on_its_row_and_page(browser: Any, tmp_path: Any) -> None:
    import os

    root = tmp_path / "root"
    sweep_with_artifacts(root, 1)
    for name in ("bad", "good"):
        cli(root, "models", "register", "src/0", "--artifact", "artifacts/model.bin", "--name", name, "--alias", "prod")
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / "registry" / "bad" / "aliases" / "evil")
    console = Console()
    with serve(root) as server, open_page(browser, console) as page:
        page.goto(server.url + "#/models")
        page.wait_for_selector("#models tbody tr[data-name='good']")
        assert "planted in the registry" in page.text_content("#models tbody tr[data-name='bad']")
        assert page.query_selector("#models tbody tr[data-name='good'] .warn-line") is None
        page.goto(server.url + "#/model/bad")
        page.wait_for_selector("#versions tbody tr[data-version='1']")
        assert "planted in the registry" in page.text_content("p.warn-line")
    assert console.errors == []
