"""The launch backend contract (`hpctrack.testing.BackendTests`) for the local backend."""

from __future__ import annotations

from hpctrack.testing import BackendTests


class TestLocalBackend(BackendTests):
    backend = "local"
    options = {"parallel": 2}
