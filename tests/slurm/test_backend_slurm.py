"""The launch backend contract (`hpctrack.testing.BackendTests`) for SLURM, on the real cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpctrack.testing import BackendTests

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster"), pytest.mark.timeout(900)]


class TestSlurmBackend(BackendTests):
    backend = "slurm"
    options = {"time": "10", "signal_delay_s": 30}
    timeout_s = 600.0  # one node shared with other sweeps: jobs may wait in the queue

    @pytest.fixture
    def root(self, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
        # The node's jobs write here: the test cluster's node shares this machine's /tmp.
        root = tmp_path_factory.mktemp("slurm-backend-root")
        monkeypatch.setenv("HPCTRACK_ROOT", str(root))
        monkeypatch.setenv("XDG_CONFIG_HOME", str(root / "xdg-config"))
        return root
