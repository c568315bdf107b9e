"""Hydra's own launcher conformance suites against ``hydra/launcher=hpctrack_slurm wait=true`` on the real cluster.

The same suites as ``tests/hydra/test_hydra_suites_local.py``: Hydra's submitit launchers pass them in
their repository, and so must a SLURM launcher that waits for its array.
"""

from __future__ import annotations

import pytest
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

#: Wait for the array and return the jobs' real outcomes; look at the queue every second; no code
#: snapshot of the test runner, no progress bar; a short time limit (the signal well before it).
WAIT = ["hydra.launcher.wait=true", "hydra.launcher.wait_poll_s=1", "hydra.launcher.code_snapshot=false",
        "hydra.launcher.progress=false", "hydra.launcher.timeout_min=5", "hydra.launcher.signal_delay_s=30"]  # fmt: skip


@pytest.fixture(autouse=True)
def _root(fresh_hydra_version_base, slurm_root, monkeypatch, tmp_path):
    """The jobs write under the SLURM tests' storage root, which the node reaches, and run in the
    test's own directory (``<task>.log`` of a job without ``hydra.job.chdir`` goes there: the local
    suite, on another worker, checks and removes the same name in a shared current directory)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HPCTRACK_ROOT", slurm_root)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


@pytest.mark.parametrize("launcher_name, overrides", [("hpctrack_slurm", WAIT)])
class TestHpctrackSlurmLauncher(LauncherTestSuite):
    pass


@pytest.mark.parametrize("task_launcher_cfg, extra_flags", [({}, ["-m", "hydra/launcher=hpctrack_slurm", *WAIT])])
class TestHpctrackSlurmLauncherIntegration(IntegrationTestSuite):
    pass
