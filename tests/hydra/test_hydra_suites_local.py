"""Hydra's own launcher conformance suites against ``hydra/launcher=hpctrack_local``.

Hydra ships them in hydra-core (``hydra.test_utils.launcher_common_tests``); its
own launcher plugins subclass them in their repositories exactly like this.
"""

from __future__ import annotations

import pytest
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite

from hydra_plugins.hpctrack_launcher.launcher import LocalLauncher

#: hpctrack's own settings for the suites: no code snapshot of the test runner, no progress bar.
QUIET = ["hydra.launcher.code_snapshot=false", "hydra.launcher.progress=false", "hydra.launcher.parallel=2"]


@pytest.fixture(autouse=True)
def _root(fresh_hydra_version_base, hpctrack_root, monkeypatch, tmp_path):
    """Every test of the suites writes its sweeps under its own storage root, and runs in its own
    directory: jobs without ``hydra.job.chdir`` write ``<task>.log`` into the current directory,
    which another test worker's suite checks and removes at the same time."""
    monkeypatch.chdir(tmp_path)
    return hpctrack_root


def test_discovery() -> None:
    """Hydra's plugin scan finds the launcher."""
    assert LocalLauncher.__name__ in [x.__name__ for x in Plugins.instance().discover(Launcher)]


@pytest.mark.parametrize("launcher_name, overrides", [("hpctrack_local", QUIET)])
class TestHpctrackLocalLauncher(LauncherTestSuite):
    pass


@pytest.mark.parametrize("task_launcher_cfg, extra_flags", [({}, ["-m", "hydra/launcher=hpctrack_local", *QUIET])])
class TestHpctrackLocalLauncherIntegration(IntegrationTestSuite):
    pass
