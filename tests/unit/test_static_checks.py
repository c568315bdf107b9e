"""The checks that keep the code's shape: ruff, mypy, import-linter, vermin, private names.

Each runs as a subprocess with the configuration in ``pyproject.toml``, and a failure shows the
tool's own output, so ``python -m pytest`` (the README's test command, and so CI) covers them.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
#: What the linters and the formatter look at.
SOURCES = ["hpctrack", "hydra_plugins", "tests", "benchmarks", "examples"]


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
        return found
    return str(path)


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=REPO, capture_output=True, text=True, timeout=timeout)


def _passes(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode != 0:
        pytest.fail(f"{what} failed (exit code {proc.returncode}):\n{proc.stdout}\n{proc.stderr}", pytrace=False)


def test_ruff_lint():
    _passes(_run(_tool("ruff"), "check", "--no-fix", *SOURCES), "ruff check")


def test_ruff_format():
    proc = _run(_tool("ruff"), "format", "--check", "--output-format", "concise", *SOURCES)
    _passes(proc, "ruff format --check (fix with: ruff format)")


def test_mypy():
    # The files, the strict public-API modules and the lenient rest are in [tool.mypy].
    _passes(_run(_tool("mypy")), "mypy")


def test_import_contracts():
    # The layers and the forbidden imports are in [tool.importlinter].
    _passes(_run(_tool("lint-imports"), "--no-cache"), "lint-imports")


def test_code_runs_on_the_oldest_supported_python():
    """requires-python says >= 3.10: no syntax, module or function of a later Python."""
    proc = _run(_tool("vermin"), "--target=3.10-", "--violations", "--no-tips", "hpctrack", "hydra_plugins")
    _passes(proc, "vermin --target=3.10-")


def test_vermin_would_see_a_newer_python(tmp_path):
    """The check above can fail: a module of 3.11 is reported."""
    (tmp_path / "new.py").write_text("import tomllib\n")
    proc = _run(_tool("vermin"), "--target=3.10-", "--violations", "--no-tips", str(tmp_path))
    assert proc.returncode != 0 and "tomllib" in proc.stdout, proc.stdout


# -- private names ---------------------------------------------------------------------------

#: ``(importer, imported module, name)`` of private names still imported across modules, each
#: with the reason it stays for now. A name leaving this list must not come back.
PRIVATE_NAME_IMPORTS: Dict[Tuple[str, str, str], str] = {
    # The launch backends (hpctrack/launch, with `direct` becoming one of them) are being moved into one
    # folder per backend; these go with that move.
    ("hpctrack.launch._entrypoint", "hpctrack.run", "_status_for"): "the job finishes its run as Run.__exit__ does",
    ("hpctrack._direct", "hpctrack.run", "_status_for"): "a plain script finishes its run as Run.__exit__ does",
    ("hpctrack._direct", "hpctrack.run", "_one_line"): "the error line of a plain script's run",
    ("hpctrack.aggregate", "hpctrack.status", "_persist_final"): "the table persists final states as status does",
}


def _module_name(path: Path) -> Tuple[str, str]:
    """The module's dotted name, and the package that relative imports start from."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
        return ".".join(parts), ".".join(parts)
    return ".".join(parts), ".".join(parts[:-1])


def _private_name_imports() -> Set[Tuple[str, str, str]]:
    found: Set[Tuple[str, str, str]] = set()
    for path in sorted([*REPO.glob("hpctrack/**/*.py"), *REPO.glob("hydra_plugins/**/*.py")]):
        module, package = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] not in ("hpctrack", "hydra_plugins") or target == module:
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__") and node.module is not None:
                    found.add((module, target, alias.name))
    return found


def test_no_private_name_is_imported_from_another_module():
    """``from .other import _name`` couples two modules through what one of them calls private."""
    found = _private_name_imports()
    new = sorted(found - set(PRIVATE_NAME_IMPORTS))
    assert new == [], "private names imported from another module (make them public, or move them): " + "; ".join(
        f"{imp} imports {name} from {mod}" for imp, mod, name in new
    )


def test_the_private_name_allowlist_has_no_stale_entry():
    stale: List[Tuple[str, str, str]] = sorted(set(PRIVATE_NAME_IMPORTS) - _private_name_imports())
    assert stale == [], f"no longer imported, remove from PRIVATE_NAME_IMPORTS: {stale}"
