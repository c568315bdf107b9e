"""The dashboard in Chromium, on the README's example sweep, against a real ``hpctrack ui``.

What the page shows is checked against what the CLI prints for the same sweep (``hpctrack table``,
``show``, ``compare`` with ``--format json``), so both stay one code path.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Dict, List

import pytest
from conftest import EXAMPLE, REPO

# its fixtures' asserts (no console error on the page) are rewritten as this module's are
pytest.register_assert_rewrite("dashboard")
from dashboard import Console, Server, Sweeps, cli, cli_json, fmt, fmt_duration, serve  # noqa: E402

#: the fixtures (a root with the example sweep, a running `hpctrack ui`, Chromium, a checked page)
pytest_plugins = ["dashboard"]

pytestmark = pytest.mark.browser  # one xdist group (tests/conftest.py)

SCREENSHOT = REPO / "docs" / "img" / "sweep-page.png"


def table_cells(page: Any) -> List[Dict[str, str]]:
    """The results table as shown: one dict (column -> text) per row, in display order."""
    return page.eval_on_selector_all(
        "#results tbody tr[data-key]",
        "rows => rows.map(r => Object.fromEntries([...r.querySelectorAll('td[data-col]')]"
        ".map(td => [td.dataset.col, td.textContent])))",
    )


def expected_cells(rows: List[Dict[str, Any]]) -> List[Dict[str, str]]:
    out = []
    for row in rows:
        out.append({k: fmt_duration(v) if k == "runtime_s" else fmt(v) for k, v in row.items()})
    return out


def coloured_pixels(page: Any, selector: str) -> int:
    """Pixels of the canvas in ``selector`` that are coloured (curves), not white or grey (axes, grid)."""
    return page.eval_on_selector(
        selector,
        """canvas => {
            const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) {
                const [r, g, b, a] = [d[i], d[i + 1], d[i + 2], d[i + 3]];
                if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 60) n++;
            }
            return n;
        }""",
    )


def wait_rows(page: Any, n: int) -> None:
    # 2 minutes: a grouped table's two requests took over 1 minute once on a 2-core machine at load 50
    page.wait_for_function(f"() => document.querySelectorAll('#results tbody tr[data-key]').length === {n}",
                           timeout=120_000)  # fmt: skip


def test_sweeps_to_sweep_to_run_match_the_cli(page: Any, ui_server: Server, sweeps: Sweeps) -> None:
    page.goto(f"{ui_server.base}#/")
    row = page.locator(f"#sweeps tr[data-id='{sweeps.digits}']")
    row.wait_for()
    assert row.locator("td.jobs").inner_text().split() == ["6", "COMPLETED"]  # the count once
    assert page.locator(f"#sweeps tr[data-id='{sweeps.adam}']").count() == 1
    # newest first, as `hpctrack ls`
    ids = page.eval_on_selector_all("#sweeps tr[data-id]", "rows => rows.map(r => r.dataset.id)")
    assert ids == [s["id"] for s in cli_json(sweeps.root, "ls")]

    # best of a loss: the lowest (the server's default mode for the name), and the page says so
    per_run = cli_json(sweeps.root, "table", sweeps.digits, "-m", "val/loss:min", "-m", "val/loss:max")
    page.select_option("select.best-metric", "val/loss")
    page.wait_for_function(
        f"() => document.querySelector(\"#sweeps tr[data-id='{sweeps.digits}'] td.best\").textContent !== ''"
    )
    assert row.locator("td.best").inner_text() == fmt(min(r["val/loss:min"] for r in per_run))
    assert "min" in page.locator("#best-mode").inner_text()
    page.select_option("select.best-mode", "max")  # the user's choice wins
    page.wait_for_function(
        f"() => document.querySelector(\"#sweeps tr[data-id='{sweeps.digits}'] td.best\").textContent"
        f" === '{fmt(max(r['val/loss:max'] for r in per_run))}'"
    )
    assert "max" in page.locator("#best-mode").inner_text()

    row.locator("a.sweep-link").click()
    wait_rows(page, 6)
    expected = cli_json(sweeps.root, "table", sweeps.digits)
    headers = page.eval_on_selector_all("#results thead th[data-col]", "ths => ths.map(th => th.dataset.col)")
    assert headers == list(expected[0])
    assert table_cells(page) == expected_cells(expected)
    states = page.eval_on_selector_all("#results td[data-col=state] .state", "s => s.map(x => x.className)")
    assert states == ["state state-COMPLETED"] * 6

    page.locator("#results tr[data-key='1'] a.run-link").click()
    page.locator("#git-commit").wait_for()
    shown = cli_json(sweeps.root, "show", f"{sweeps.digits}/1")
    assert page.locator("#git-commit").inner_text() == shown["provenance"]["git"]["commit"]
    assert page.locator("#config").inner_text().strip() == shown["config_yaml"].strip()
    assert "completed" in page.locator("#attempts").inner_text()
    assert "outcome_from" not in page.locator("#attempts thead").inner_text()
    prov = page.locator("#provenance").inner_text()
    assert " ".join(shown["sweep"]["launched_with"]) in prov  # the command that launched the sweep
    hydra = shown.get("hydra") or {}
    if hydra.get("chdir"):  # as `hpctrack show` says it
        assert f"{hydra['output_dir']} (hydra.job.chdir; started in {shown['provenance']['cwd']})" in prov
    page.get_by_text("artifacts/model.npz").wait_for()
    # the run's own files (its store, logs) apart from its artifacts, folded away
    internal = page.locator("#internal-files")
    assert internal.count() == 1 and internal.get_attribute("open") is None
    assert "artifacts/model.npz" not in internal.inner_text()
    page.locator("pre.log[data-stream=stdout]").wait_for()


def test_filter_sort_and_csv(page: Any, ui_server: Server, sweeps: Sweeps, console: Console) -> None:
    page.goto(f"{ui_server.base}#/sweep/{sweeps.digits}")
    wait_rows(page, 6)
    page.select_option("select.curve-metric", "val/acc")
    page.wait_for_function("() => /val\\/acc: 6 runs/.test(document.querySelector('.curves .muted.small').textContent)")
    page.fill("input.filter", "optimizer.lr < 0.1 and seed >= 1")
    page.press("input.filter", "Enter")
    wait_rows(page, 2)
    expected = cli_json(sweeps.root, "table", sweeps.digits, "--filter", "optimizer.lr < 0.1 and seed >= 1")
    assert table_cells(page) == expected_cells(expected)
    # the curves draw the runs the table shows
    page.wait_for_function("() => /val\\/acc: 2 runs/.test(document.querySelector('.curves .muted.small').textContent)")

    # the view is in the URL: a reload (or a bookmark) shows the same
    assert "filter=" in page.url
    page.reload()
    wait_rows(page, 2)
    assert page.input_value("input.filter") == "optimizer.lr < 0.1 and seed >= 1"
    assert page.input_value("select.curve-metric") == "val/acc"

    # a bad filter, grouped: the message once (one request), in the page's words, and no rows left under it
    console.expected.append("status of 400 (Bad Request)")
    page.check("input[name=gmode][value=all]")
    wait_rows(page, 1)  # the 2 runs left are one group (optimizer.lr=0.01); not the 2 rows still shown before it
    page.fill("input.filter", "bogus > 1")
    page.press("input.filter", "Enter")
    error = page.locator(".error.oneline").first
    error.wait_for()
    assert error.inner_text().startswith("bad filter 'bogus > 1': unknown column 'bogus'")
    wait_rows(page, 0)
    bad = [e for e in console.errors if "400" in e]
    assert len(bad) == 1, console.errors
    page.check("input[name=gmode][value=none]")

    page.fill("input.filter", "")
    page.press("input.filter", "Enter")
    wait_rows(page, 6)
    page.click("#results thead th[data-col='val/acc:max']")
    page.click("#results thead th[data-col='val/acc:max']")  # descending
    expected = cli_json(sweeps.root, "table", sweeps.digits, "--sort", "-val/acc:max")
    assert [r["job"] for r in table_cells(page)] == [str(r["job"]) for r in expected]
    href = page.get_attribute("a.button:has-text('CSV')", "href")
    assert href.startswith(f"api/sweeps/{sweeps.digits}/table?") and "format=csv" in href and "sort=-val" in href
    response = page.request.get(f"{ui_server.base}{href}")
    assert response.ok and response.headers["content-type"].startswith("text/csv")
    assert response.text().splitlines()[0].startswith("job,")

    # the README's quick-start table, summary value included
    for key, stat in (("val/acc", "max"), ("val/loss", "last"), ("test/acc", "")):
        page.select_option("select.col-metric", key)
        if stat:
            page.select_option("select.col-stat", stat)
        page.click("button.add-col")
    columns = [
        "-m",
        "val/acc:max",
        "-m",
        "val/loss:last",
        "-m",
        "test/acc",
        "--sort",
        "-val/acc:max",
    ]  # sorted as clicked
    expected = cli_json(sweeps.root, "table", sweeps.digits, *columns)
    page.wait_for_function("() => document.querySelector('#results thead th[data-col=\"test/acc\"]') !== null")
    headers = page.eval_on_selector_all("#results thead th[data-col]", "ths => ths.map(th => th.dataset.col)")
    assert headers == list(expected[0])
    assert table_cells(page) == expected_cells(expected)


def test_curves_and_selection_are_drawn(page: Any, ui_server: Server, sweeps: Sweeps) -> None:
    page.goto(f"{ui_server.base}#/sweep/{sweeps.digits}")
    wait_rows(page, 6)
    page.select_option("select.curve-metric", "val/acc")
    page.wait_for_function("() => document.querySelector('#curves canvas') !== null")
    page.wait_for_function("() => /val\\/acc: 6 runs/.test(document.querySelector('.curves .muted.small').textContent)")
    assert coloured_pixels(page, "#curves canvas") > 500

    # select a run: it is drawn strong, the others grey
    page.click("#results tr[data-key='4'] td[data-col='seed']")
    page.wait_for_function("() => document.querySelectorAll('#results tr.selected').length === 1")
    page.wait_for_timeout(300)
    one = coloured_pixels(page, "#curves canvas")
    assert 0 < one

    # hover values under the cursor
    box = page.locator("#curves .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
    hover = page.locator("#curves .hover")
    hover.wait_for()
    assert hover.inner_text().startswith("step ")
    assert "4 optimizer.lr=0.1 seed=1" in hover.inner_text()  # the selected run comes first

    # the parallel coordinates are drawn too
    assert coloured_pixels(page, "#parcoords") > 100


def test_grouped_view_matches_the_cli(page: Any, ui_server: Server, sweeps: Sweeps) -> None:
    page.goto(f"{ui_server.base}#/sweep/{sweeps.digits}")
    wait_rows(page, 6)
    page.check("input[name=gmode][value=all]")
    wait_rows(page, 2)
    expected = cli_json(sweeps.root, "table", sweeps.digits, "--grouped")
    shown = table_cells(page)
    assert [r["optimizer.lr"] for r in shown] == [fmt(r["optimizer.lr"]) for r in expected]
    assert [r["n"] for r in shown] == [fmt(r["n"]) for r in expected]
    for got, want in zip(shown, expected):
        assert got["val/acc:max mean"] == f"{fmt(want['val/acc:max mean'])} ± {fmt(want['val/acc:max std'])}"
    # the CLI's marker of the best group (the first metric's mean, highest for an accuracy)
    firsts = [r["train/loss:last mean"] for r in expected]
    best = firsts.index(min(firsts))  # train/loss is the first metric: lowest is best
    assert [r.get("best", "") for r in shown] == ["* best" if i == best else "" for i in range(len(shown))]
    # its CSV is not named as the per-run table's
    with page.expect_download() as download:
        page.click("a.button:has-text('CSV')")
    assert download.value.suggested_filename == "digits-table-grouped.csv"
    assert download.value.path().read_text().splitlines()[0].startswith("optimizer.lr,n,")

    # the group means with their band
    page.select_option("select.curve-metric", "val/loss")
    page.select_option(".curves select >> nth=1", "groups")
    page.wait_for_function(
        "() => /val\\/loss: 2 groups of 6 runs/.test(document.querySelector('.curves .muted.small').textContent)"
    )
    assert coloured_pixels(page, "#curves canvas") > 500


def test_group_mean_of_a_sweep_of_seeds_is_one_curve_of_all_runs(page: Any, ui_server: Server, sweeps: Sweeps) -> None:
    page.goto(f"{ui_server.base}#/sweep/{sweeps.seeds}")
    wait_rows(page, 2)
    page.select_option("select.curve-metric", "val/acc")
    page.select_option(".curves select >> nth=1", "groups")
    page.wait_for_function(
        "() => /val\\/acc: 1 group of 2 runs/.test(document.querySelector('.curves .muted.small').textContent)"
    )
    assert coloured_pixels(page, "#curves canvas") > 500
    # and in compare: one mean curve per sweep, not every run
    page.goto(f"{ui_server.base}#/compare/{sweeps.seeds},{sweeps.seeds_b}")
    page.select_option("#app select >> nth=0", "val/acc")
    # the first metric's curves are drawn first, then val/acc's: wait for what was asked
    page.wait_for_function(
        "() => document.querySelector('#compare-curves-info')?.textContent"
        " === 'val/acc: seeds: 1 group of 2 runs; seeds-b: 1 group of 2 runs'"
    )
    assert page.locator("#compare-curves canvas").count() == 1
    assert page.locator("#compare-legend .legend-group").inner_text() == "all runs"
    assert page.locator("#compare-legend .legend-sweep").count() == 2


def test_failed_job_in_groups_and_jobs(page: Any, ui_server: Server, sweeps: Sweeps) -> None:
    page.goto(f"{ui_server.base}#/sweep/{sweeps.broken}?group=all")
    wait_rows(page, 1)  # the lr=-1 group has no completed run: left out, and the page says so
    note = page.locator("#table-note")
    note.wait_for()
    assert "left out 1 run that did not complete (1 FAILED)" in note.inner_text()
    page.check("#include-incomplete")
    wait_rows(page, 2)
    expected = cli_json(sweeps.root, "table", sweeps.broken, "--grouped", "--include-incomplete")
    assert [r["optimizer.lr"] for r in table_cells(page)] == [fmt(r["optimizer.lr"]) for r in expected]
    # the jobs section in the CLI's words
    page.get_by_text("without a completed run: 1 of 2 configs: 1 (FAILED)").wait_for()
    assert "incomplete: " not in page.locator(".status-notes").inner_text()


def test_compare_two_sweeps(page: Any, ui_server: Server, sweeps: Sweeps) -> None:
    page.goto(f"{ui_server.base}#/")
    page.locator(f"#sweeps tr[data-id='{sweeps.digits}'] input[type=checkbox]").check()
    page.locator(f"#sweeps tr[data-id='{sweeps.adam}'] input[type=checkbox]").check()
    page.get_by_role("button", name="compare selected").click()
    page.wait_for_url("**#/compare/*")
    page.select_option("#app select >> nth=0", "val/acc")
    page.wait_for_function(
        "() => document.querySelector('#compare-table th:nth-child(3)')?.textContent === 'val/acc:last digits'"
    )
    assert page.locator("#compare-table tbody tr").count() == 2
    expected = cli_json(sweeps.root, "compare", sweeps.digits, sweeps.adam, "-m", "val/acc")
    rows = page.eval_on_selector_all(
        "#compare-table tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert [r[0] for r in rows] == [fmt(r["optimizer.lr"]) for r in expected]
    for got, want in zip(rows, expected):
        for label in ("digits", "digits-adam"):
            for stat in ("last", "min", "max"):
                mean, std = want[f"val/acc:{stat} mean {label}"], want[f"val/acc:{stat} std {label}"]
                assert f"{fmt(mean)} ± {fmt(std)}" in got, (label, stat, got)
        assert f"{fmt(want['val/acc:max delta digits-adam'])}" in " ".join(got)
    page.wait_for_function("() => document.querySelector('#compare-curves canvas') !== null")
    assert coloured_pixels(page, "#compare-curves canvas") > 500
    # what `compare` notes (settings each sweep held fixed that differ) is shown
    page.locator("#compare-note").wait_for()
    assert "optimizer.name" in page.locator("#compare-note").inner_text()
    # a colour per group, a dash per sweep: the legend names both
    legend = page.locator("#compare-legend").inner_text()
    assert "optimizer.lr=0.01" in legend and "optimizer.lr=0.1" in legend
    colours = page.eval_on_selector_all("#compare-legend .legend-group .swatch", "s => s.map(x => x.style.background)")
    assert len(colours) == 2 and len(set(colours)) == 2
    assert page.locator("#compare-legend .legend-sweep").count() == 2


def test_page_errors_in_its_own_words(page: Any, ui_server: Server, console: Console) -> None:
    console.expected.append("status of 404 (Not Found)")
    page.goto(f"{ui_server.base}#/sweep/no-such-sweep")
    error = page.locator("#app p.error")
    error.wait_for()
    text = error.inner_text()
    assert "no sweep 'no-such-sweep'" in text
    assert "hpctrack ls" not in text and "--root" not in text


def test_readme_screenshot_of_the_sweep_page(page: Any, ui_server: Server, sweeps: Sweeps, tmp_path: Path) -> None:
    page.goto(f"{ui_server.base}#/sweep/{sweeps.digits}")
    wait_rows(page, 6)
    page.check("input[name=gmode][value=all]")
    wait_rows(page, 2)
    page.select_option("select.curve-metric", "val/acc")
    page.select_option(".curves select >> nth=1", "groups")
    page.wait_for_function(
        "() => /val\\/acc: 2 groups/.test(document.querySelector('.curves .muted.small').textContent)"
    )
    # Made on every run; the README's copy is replaced only when missing or asked for (UPDATE_SCREENSHOTS=1):
    # the sweep's id and dates differ from run to run, and a test run should not leave the checkout modified.
    shot = tmp_path / SCREENSHOT.name
    page.screenshot(path=str(shot), clip={"x": 0, "y": 0, "width": 1280, "height": 900})
    assert shot.stat().st_size > 20_000
    if os.environ.get("UPDATE_SCREENSHOTS") == "1" or not SCREENSHOT.exists():
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


@pytest.mark.timeout(600)
def test_running_sweep_shows_a_finished_run_without_reload(page: Any, ui_server: Server, sweeps: Sweeps) -> None:
    # one job at a time: the second cannot have ended before the page first shows the sweep
    cli(sweeps.root, "launch", "--detach", "--parallel", "1", str(EXAMPLE), "seed=0,1", "epochs=10",
        "epoch_sleep_s=1.5", "--name", "live", "--no-progress", cwd=sweeps.work)  # fmt: skip
    live = cli_json(sweeps.root, "show", "live")["id"]
    page.goto(f"{ui_server.base}#/sweep/{live}")
    wait_rows(page, 2)
    page.evaluate("window.sameDocument = true")  # gone if the page were reloaded
    first = {r["job"]: r["state"] for r in table_cells(page)}
    assert first["1"] != "COMPLETED", first
    # Opened before a run has logged (its job takes seconds to start), the page has no metric to choose
    # yet; once one is logged it can be chosen, and is drawn, without a reload
    page.wait_for_function(
        "() => [...document.querySelectorAll('select.curve-metric option')].some(o => o.value === 'val/acc')",
        timeout=300_000,
    )
    page.wait_for_function("() => document.querySelector('#curves canvas') !== null")

    # the running run's page follows its steps while it runs
    page.goto(f"{ui_server.base}#/run/{live}/1")
    page.wait_for_function("() => document.querySelector('#app h1 .state')?.textContent === 'RUNNING'", timeout=300_000)
    step = "() => Number(document.querySelector('#run-metrics tr[data-metric=\"val/acc\"] td.last-step')?.textContent ?? -1)"
    page.wait_for_function(f"() => ({step})() >= 0", timeout=300_000)
    seen = page.evaluate(f"({step})()")
    page.wait_for_function(f"() => ({step})() > {seen}", timeout=300_000)
    assert page.evaluate("document.querySelector('#app h1 .state').textContent") == "RUNNING"
    assert page.evaluate("window.sameDocument") is True

    page.goto(f"{ui_server.base}#/sweep/{live}")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#results td[data-col=state]')].map(td => td.textContent).join()"
        " === 'COMPLETED,COMPLETED'",
        timeout=300_000,
    )
    assert page.evaluate("window.sameDocument") is True
    expected = cli_json(sweeps.root, "table", live)
    shown = table_cells(page)
    assert [r["job"] for r in shown] == ["0", "1"]
    assert shown[1] == expected_cells(expected)[1]


def test_the_live_badge_says_when_the_server_is_gone(browser: Any, sweeps: Sweeps) -> None:
    with serve(sweeps.root) as server:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(server.url)  # signs in (the token becomes a cookie)
            page.wait_for_url("**/")
            page.goto(f"{server.base}#/sweep/{sweeps.seeds}")
            wait_rows(page, 2)
            assert page.locator("#live").inner_text() == "live"
            server.proc.terminate()
            server.proc.wait(timeout=30)
            page.wait_for_function("() => document.getElementById('live').textContent.startsWith('not live')")
            assert "offline" in page.locator("#live").get_attribute("class")
        finally:
            context.close()
