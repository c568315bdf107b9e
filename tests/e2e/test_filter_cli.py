"""The filter language through the CLI and the Python API: a filter is data, never code.

The attack of issue 12 (``--filter "@json.codecs.sys.modules.get('os').system(...)"``) is
planted as a user would type it; the test shows that nothing runs and the refusal is one line.
"""

from __future__ import annotations

import json

import pytest
from conftest import error_lines, run_cli
from synthetic import make_sweep, write_run

pytestmark = pytest.mark.e2e

EXPLOIT = "@json.codecs.sys.modules.get('os').system('id > pwned.txt') == 0"
ATTACKS = [
    EXPLOIT,
    "x.__class__.__mro__[1].__subclasses__() == 0",
    "__import__('os').system('id > pwned.txt') == 0",
    "x == open('pwned.txt', 'w').write('x')",
    "(lambda: __import__('os').system('id > pwned.txt'))() == 0",
    "x == [c for c in ().__class__.__base__.__subclasses__()]",
    "x == f\"{__import__('os').system('id > pwned.txt')}\"",
]


@pytest.fixture
def sweep(hpctrack_root):
    manifest = make_sweep(hpctrack_root, 3, name="grid")
    for i in range(3):
        write_run(manifest, i)
    return manifest


@pytest.mark.parametrize("attack", ATTACKS)
def test_filter_runs_no_code_through_the_cli(sweep, tmp_path, attack):
    proc = run_cli("table", "grid", "--filter", attack, cwd=tmp_path)
    assert not (tmp_path / "pwned.txt").exists(), "the filter ran code"
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("Error: bad --filter"), lines


def test_filter_runs_no_code_through_the_api(sweep, tmp_path, monkeypatch):
    import hpctrack
    from hpctrack.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    for attack in ATTACKS:
        with pytest.raises(ConfigError):
            hpctrack.load_sweep("grid").table(where=attack)
    assert not (tmp_path / "pwned.txt").exists(), "the filter ran code"


def test_compare_filter_runs_no_code(sweep, tmp_path):
    proc = run_cli("compare", "grid", "grid", "-m", "final", "--filter", EXPLOIT, cwd=tmp_path)
    assert not (tmp_path / "pwned.txt").exists(), "the filter ran code"
    assert proc.returncode == 1 and len(error_lines(proc.stderr)) == 1, proc.stderr


def test_filter_language_through_the_cli(sweep, tmp_path):
    def jobs(expr):
        proc = run_cli("table", "grid", "--filter", expr, "--format", "json", cwd=tmp_path, check=True)
        return [row["job"] for row in json.loads(proc.stdout)]

    assert jobs("x >= 1 and state == 'COMPLETED'") == [1, 2]
    assert jobs("x in [0, 2]") == [0, 2]
    assert jobs("not x == 1") == [0, 2]
    assert jobs("final / 10 == x and loss:last < 1") == [0, 1, 2]
    assert jobs("`loss:min` > 1") == []
    proc = run_cli("compare", "grid", "grid", "-m", "final", "--filter", "x != 1", "--format", "json", check=True)
    assert sorted(row["x"] for row in json.loads(proc.stdout)) == [0, 2]
