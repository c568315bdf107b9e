"""Each light command imports only what it needs: no heavy module creeps back into ``ls``, ``status``,
``show`` or ``table`` (asserted on the modules imported, from ``python -X importtime``, never on time)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Set

import pytest
from synthetic import ended_sweep

#: Never needed to read an ended sweep (of the local backend, in an HDF5 store): Hydra, submitit, the
#: other store, plugins, another scheduler's backend, the launch machinery.
NEVER = {"hydra", "omegaconf", "submitit", "zarr", "numcodecs", "optuna", "duckdb", "matplotlib", "torch",
         "hpctrack.launch.slurm.backend", "hpctrack.launch.script"}  # fmt: skip
#: Needed by the results table alone (a DataFrame, the index cache).
TABLES = {"pandas", "pyarrow", "numpy"}
#: Needed to read a run's own store.
STORES = {"h5py", "numpy"}


def _imported(root: Path, *args: str) -> Set[str]:
    """Top-level and hpctrack modules that ``python -m hpctrack ARGS`` imported."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HPCTRACK_")}, "HPCTRACK_ROOT": str(root)}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "hpctrack", *args],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return {n.split(".")[0] for n in names} | {n for n in names if n.startswith("hpctrack.")}


@pytest.fixture(scope="module")
def ended_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("imports") / "root"
    ended_sweep(root, 3, name="ended")
    return root


@pytest.mark.parametrize(
    "args, allowed",
    [
        (["ls"], set()),
        (["status", "ended"], set()),
        (["status", "ended", "--format", "json"], set()),
        (["show", "ended"], set()),
        (["show", "ended/0"], STORES),
        (["table", "ended"], TABLES),
        (["table", "ended", "--format", "json"], TABLES),
    ],
)
def test_a_light_command_imports_only_what_it_needs(ended_root, args, allowed):
    imported = _imported(ended_root, *args)
    assert sorted(imported & NEVER) == []
    assert sorted(imported & ((TABLES | STORES) - allowed)) == []


def test_help_does_not_even_import_the_renderer(ended_root):
    assert sorted(_imported(ended_root, "--help") & (NEVER | TABLES | STORES | {"rich"})) == []


def test_every_command_module_registers_exactly_the_commands_the_group_lists():
    """The group imports a command's module only when the command is wanted: its map must be the truth."""
    import importlib

    from hpctrack.cli import cli
    from hpctrack.cli._base import COMMAND_MODULES

    for module in set(COMMAND_MODULES.values()):
        importlib.import_module(f"hpctrack.cli.{module}")
    registered = {name: cmd.callback.__module__.rsplit(".", 1)[1] for name, cmd in cli.commands.items()}
    assert registered == COMMAND_MODULES
