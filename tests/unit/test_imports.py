"""`import hpctrack` stays light; the Hydra plugin is discoverable."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["h5py", "zarr", "submitit", "hydra", "pandas", "omegaconf", "pyarrow", "rich"]


def test_import_hpctrack_pulls_in_no_heavy_dependency():
    code = f"import sys, hpctrack; print(__import__('json').dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_import_hpctrack_models_pulls_in_no_heavy_dependency():
    """Scripts load a model by name (``hm.get_path("NAME@production")``) on login and compute nodes alike."""
    heavy = [*HEAVY, "numpy", "filelock"]
    code = f"import sys, hpctrack.models; print(__import__('json').dumps([m for m in {heavy!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_hydra_discovers_the_launcher_plugin():
    from hydra.core.plugins import Plugins
    from hydra.plugins.launcher import Launcher

    names = {p.__name__ for p in Plugins.instance().discover(Launcher)}
    assert {"LocalLauncher", "SlurmLauncher"} <= names


def test_launcher_config_is_registered():
    from hydra.core.config_store import ConfigStore

    import hydra_plugins.hpctrack_launcher  # noqa: F401

    assert {"hpctrack_local.yaml", "hpctrack_slurm.yaml"} <= set(ConfigStore.instance().list("hydra/launcher"))
