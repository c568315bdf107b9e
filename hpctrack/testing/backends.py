"""``BackendTests``: the contract every launch backend keeps, as an importable pytest class.

A new scheduler subclasses it once, naming its registry entry::

    from hpctrack.testing import BackendTests

    class TestPbsBackend(BackendTests):
        backend = "pbs"
        options = {"queue": "debug"}   # launcher options for the small sweeps

The suite launches small sweeps through :func:`hpctrack.launch.submit_sweep`
(the code path of ``hpctrack launch`` and the Hydra launcher) and follows them
through the library calls ``hpctrack status``, ``cancel`` and ``requeue``
make. It asserts on states and on the order of events, never on durations;
every wait is bounded by :attr:`BackendTests.timeout_s`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, List

import pytest

from .._types import JobState
from ..launch import SweepRequest, get_backend, submit_sweep
from ..launch.base import Backend, JobInfo
from ..launch.registry import backend_class, backend_names
from ..manifest import Manifest, load_manifest
from ..status import JobStatus, recorded_states, sweep_status
from ._jobs import ConformanceJob

__all__ = ["BackendTests"]


class BackendTests:
    """Conformance tests for the backend registered as :attr:`backend`; subclass to run them.

    Override the :meth:`root` fixture when jobs run where ``tmp_path`` is not
    visible (a cluster's nodes): the root must be on a filesystem they share.
    """

    #: The backend's name in :data:`hpctrack.launch.registry.BACKENDS`.
    backend: ClassVar[str]
    #: Launcher options for the test sweeps (recorded in the manifest as a launch records them).
    options: ClassVar[Dict[str, Any]] = {}
    #: Bound on every wait for the scheduler; generous, for a loaded machine or a busy queue.
    timeout_s: ClassVar[float] = 240.0

    @pytest.fixture
    def root(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """A fresh storage root in ``HPCTRACK_ROOT`` and no user config file."""
        root = tmp_path / "root"
        monkeypatch.setenv("HPCTRACK_ROOT", str(root))
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
        return root

    # -- helpers ------------------------------------------------------------------------------

    @property
    def cls(self) -> "type[Backend]":
        return backend_class(self.backend)

    def launch(self, root: Path, n: int, job: ConformanceJob, name: str) -> Manifest:
        """Submit ``n`` jobs running ``job`` as a launch does; returns the manifest once they are handed over."""
        launcher = {**self.options, "root": str(root), "name": name}
        request = SweepRequest(jobs=[[f"i={i}"] for i in range(n)], backend=self.backend,
                               backend_options=self.cls.options_from_launcher(launcher), root=str(root), name=name,
                               launcher=launcher)  # fmt: skip
        return submit_sweep(request, job)

    def wait_for(self, manifest: Manifest, done: Callable[[List[JobStatus]], bool], what: str) -> List[JobStatus]:
        """Poll ``status`` until ``done`` holds (bounded by :attr:`timeout_s`)."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            statuses = sweep_status(load_manifest(manifest.path)).jobs
            if done(statuses):
                return statuses
            if time.monotonic() > deadline:
                summary = ", ".join(f"{s.index}:{s.state.value}" for s in statuses)
                raise AssertionError(f"{self.backend}: {what} not reached after {self.timeout_s:g} s ({summary})")
            time.sleep(0.5)

    def wait_final(self, manifest: Manifest) -> List[JobStatus]:
        return self.wait_for(manifest, lambda st: all(s.state.is_final for s in st), "every job final")

    # -- the contract -------------------------------------------------------------------------

    def test_registered_with_declared_capabilities(self) -> None:
        cls = self.cls
        assert cls.name == self.backend
        assert issubclass(cls, Backend) and not getattr(cls, "__abstractmethods__", None)
        for flag in ("launches", "has_queue", "records_final_states"):
            assert isinstance(getattr(cls, flag), bool), f"{flag} must be a bool class attribute"
        assert isinstance(cls.label, str) and cls.label
        assert isinstance(cls.resource_options, tuple)
        if cls.launches:
            assert self.backend in backend_names()
            assert cls.conf is not None and dataclasses.is_dataclass(cls.conf)
            fields = {f.name: f for f in dataclasses.fields(cls.conf)}
            assert str(fields["_target_"].default).endswith(f".{self.backend.capitalize()}Launcher")
            # `launch -j`, `--time` and `requeue` set these keys of the launcher config: each must exist.
            if cls.parallel_option is not None:
                assert cls.parallel_option in fields, f"parallel_option {cls.parallel_option!r} is not a config field"
            for option in cls.resource_options:
                mapped = cls.parallel_option if option == "parallel" else option
                assert mapped in fields, f"resource option {option!r} is not a field of {cls.conf.__name__}"

    def test_small_sweep_reaches_final_states(self, root: Path) -> None:
        if not self.cls.launches:
            pytest.skip(f"{self.backend} does not launch sweeps")
        manifest = self.launch(root, 3, ConformanceJob(steps=3, fail_first=frozenset({1})), "conformance")
        assert [j.index for j in manifest.jobs] == [0, 1, 2]
        if self.cls.has_queue:  # a queued job has its id once the scheduler accepted it
            assert all(j.job_id for j in manifest.jobs), [j.job_id for j in manifest.jobs]
        statuses = self.wait_final(manifest)
        assert [s.state for s in statuses] == [JobState.COMPLETED, JobState.FAILED, JobState.COMPLETED]
        assert "planned failure" in (statuses[1].error or "")
        for s in statuses:
            assert s.record is not None and s.last_step == 2
            started = s.record.status.get("start_time")
            submitted = load_manifest(manifest.path).jobs[s.index].submitted
            assert submitted is not None and started is not None and submitted <= started  # submitted, then run
        # Once final, what is on disk agrees with status without asking the scheduler (`hpctrack ls`).
        states, unconfirmed = recorded_states(load_manifest(manifest.path))
        assert states == [s.state for s in statuses] and unconfirmed == 0

    def test_state_query_is_one_view_of_the_whole_sweep(self, root: Path) -> None:
        if not self.cls.launches:
            pytest.skip(f"{self.backend} does not launch sweeps")
        manifest = self.launch(root, 2, ConformanceJob(steps=2), "query")
        infos, note = get_backend(self.backend).query(load_manifest(manifest.path))
        assert set(infos) <= {0, 1} and (note is None or isinstance(note, str))
        assert all(isinstance(info, JobInfo) for info in infos.values())
        assert all(info.state is None or isinstance(info.state, JobState) for info in infos.values())
        self.wait_final(manifest)
        # The runs' records are the authority and may say "ended" first; the backend's view follows (bounded).
        deadline = time.monotonic() + self.timeout_s
        while True:
            infos, _ = get_backend(self.backend).query(load_manifest(manifest.path))
            if all(info.ended or info.state is None or info.state.is_final for info in infos.values()):
                break
            assert time.monotonic() < deadline, f"{self.backend}: still reports open jobs after the end: {infos}"
            time.sleep(0.5)

    def test_cancel_stops_running_jobs(self, root: Path) -> None:
        if not self.cls.launches:
            pytest.skip(f"{self.backend} does not launch sweeps")
        from ..sweep import Sweep

        manifest = self.launch(root, 2, ConformanceJob(steps=600, sleep_s=0.2), "cancel")
        self.wait_for(manifest, lambda st: all(s.state == JobState.RUNNING and s.last_step is not None for s in st),
                      "every job running and logging")  # fmt: skip
        sweep = Sweep(manifest.path)
        assert sorted(sweep.cancel()) == [0, 1]
        statuses = self.wait_final(manifest)
        assert [s.state for s in statuses] == [JobState.CANCELLED, JobState.CANCELLED]
        for s in statuses:  # stopped part-way: cancelled, not run to the end
            assert s.last_step is not None and s.last_step < 599

    def test_requeue_runs_failed_jobs_again_into_their_runs(self, root: Path) -> None:
        if not self.cls.launches:
            pytest.skip(f"{self.backend} cannot resubmit jobs")
        from ..requeue import requeue_sweep

        manifest = self.launch(root, 2, ConformanceJob(steps=2, fail_first=frozenset({0})), "requeue")
        assert [s.state for s in self.wait_final(manifest)] == [JobState.FAILED, JobState.COMPLETED]
        first_id = load_manifest(manifest.path).jobs[0].job_id
        plan = requeue_sweep(load_manifest(manifest.path), states=[JobState.FAILED])
        assert plan.selected == [0] and plan.submitted
        statuses = self.wait_final(manifest)
        assert [s.state for s in statuses] == [JobState.COMPLETED, JobState.COMPLETED]
        assert statuses[0].attempt == 2 and statuses[1].attempt == 1  # the same run, a second attempt
        job = load_manifest(manifest.path).jobs[0]
        assert job.history and job.history[-1].get("job_id") == first_id  # the first submission is kept

    def test_wait_returns_once_every_job_ended(self, root: Path) -> None:
        if not self.cls.launches or self.cls.has_queue:
            pytest.skip(f"a launch on {self.backend} never waits")
        import threading

        manifest = self.launch(root, 2, ConformanceJob(steps=2), "wait")
        waited: List[Manifest] = []
        waiter = threading.Thread(target=lambda: waited.append(get_backend(self.backend).wait(manifest.path, poll_s=0.2)),
                                  daemon=True)  # fmt: skip
        waiter.start()
        waiter.join(self.timeout_s)
        assert waited, f"{self.backend}: wait() did not return within {self.timeout_s:g} s of the jobs' end"
        # It returned because the jobs ended: status, asked afterwards, finds every one final.
        assert all(s.state.is_final for s in sweep_status(load_manifest(manifest.path)).jobs)
