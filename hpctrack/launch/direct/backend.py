"""A plain script run as a backend: its process is its only job."""

from __future__ import annotations

import os
import signal
import socket
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..._process import pid_alive
from ...errors import ConfigError
from ...manifest import JobRecord, Manifest
from ..base import Backend, JobInfo

__all__ = ["DirectBackend"]


class DirectBackend(Backend):
    """The script ``python train.py`` running :func:`hpctrack.start_run` itself; nothing to ask but its process."""

    name = "direct"
    label = "plain script"
    conf = None
    launches = False  # the script started itself: run it again instead
    has_queue = False
    records_final_states = True  # the script records its own end in the manifest

    def submit(self, manifest: Manifest, indices: Sequence[int]) -> None:
        raise ConfigError(f"sweep {manifest.id} is a plain script run (python train.py), not a launched sweep: "
                          "run the script again")  # fmt: skip

    def query(self, manifest: Manifest) -> Tuple[Dict[int, JobInfo], Optional[str]]:
        return {}, None  # no scheduler: the run's record and its process say everything

    def cancel(self, manifest: Manifest, indices: Optional[Sequence[int]] = None) -> Optional[List[str]]:
        """Stop the script (SIGTERM) when it runs on this host; raises ConfigError naming its host otherwise."""
        from ...store import open_store

        info = open_store(manifest.run_path(0), manifest.store).read().info
        if info.get("host") != socket.gethostname():
            raise ConfigError(
                f"this run is a plain script on {info.get('host')}; stop it there (pid {info.get('pid')})"
            )
        try:
            os.kill(int(info["pid"]), signal.SIGTERM)
        except ProcessLookupError:
            pass
        return None

    def process_of(self, manifest: Manifest, job: JobRecord) -> Optional[Dict[str, Any]]:
        """``manifest.runner``, else the job id (the script's pid) on this host."""
        if manifest.runner.get("pid") is not None:
            return dict(manifest.runner)
        # Recorded before runs named their host: the job id is the script's pid. A run on another host
        # writes its store within a second of its manifest, after which its record's host/pid decide.
        return {"host": socket.gethostname(), "pid": job.job_id} if job.job_id else None

    def states_current(self, manifest: Manifest) -> bool:
        runner = self.process_of(manifest, manifest.jobs[0]) if manifest.jobs else None
        try:
            return runner is not None and runner.get("host") == socket.gethostname() and pid_alive(int(runner["pid"]))
        except (TypeError, ValueError, KeyError):
            return False
