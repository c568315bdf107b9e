"""The ``local`` backend: the sweep's jobs run as processes on this machine.

Everything about it lives in this folder: submission and cancel
(:mod:`.backend`) and the detached job runner (``python -m
hpctrack.launch.local._runner``).
"""

from __future__ import annotations

from .backend import RUNNER_LOG, LocalBackend, LocalLauncherConf, runner_alive, wait_for_sweep

__all__ = ["LocalBackend", "LocalLauncherConf", "RUNNER_LOG", "runner_alive", "wait_for_sweep"]
