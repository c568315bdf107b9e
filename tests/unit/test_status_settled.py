"""A sweep whose jobs the scheduler has settled is not sent to it again, and looks the same.

The scheduler's answers are recorded ``sacct`` output fed through the real query path
(``hpctrack.launch.slurm.backend._run`` returns it); runs are real stores written here.
After the first ``status`` has learned each job's final state, ``sacct`` is made to fail:
the next ``status`` and ``table`` must not call it, and must show exactly what they showed.
"""

from __future__ import annotations

import pytest
from synthetic import dead_pid, index_runs, make_sweep, reload, write_run

from hpctrack import endrecord
from hpctrack._types import JobState
from hpctrack.launch.slurm import backend as slurm
from hpctrack.manifest import load_manifest
from hpctrack.status import sweep_status
from hpctrack.sweep import load_sweep


@pytest.fixture
def sacct(monkeypatch):
    """``sacct`` answering with recorded output; ``calls`` counts the scheduler calls made."""
    answers = {"text": "", "calls": 0, "down": False}

    def run(cmd, timeout_s=60):
        answers["calls"] += 1
        if answers["down"]:
            return 1, "", "sacct: error: Problem talking to the database: Connection refused"
        if cmd[0] == "sacct":
            return 0, answers["text"], ""
        raise AssertionError(f"unexpected scheduler call {cmd}")

    monkeypatch.setattr(slurm, "_run", run)
    return answers


def _shown(manifest):
    return [(j.state, j.error, j.note, j.node, j.job_id) for j in sweep_status(load_manifest(manifest.path)).jobs]


def _ended_sweep(root):
    """Six jobs the scheduler ended six ways, each with the run record such a job leaves."""
    ids = [f"41_{i}" for i in range(6)]
    manifest = make_sweep(root, 6, backend="slurm", state=JobState.PENDING, job_ids=ids)
    write_run(manifest, 0, steps=40)  # completed
    write_run(manifest, 1, state="running", pid=dead_pid())  # killed at its time limit
    write_run(manifest, 2, state="running", pid=dead_pid())  # killed by the OOM killer
    write_run(manifest, 3, state="running", pid=dead_pid())  # SIGKILL, nothing recorded
    write_run(manifest, 4, state="running", pid=dead_pid())  # cancelled, its end record says SIGTERM
    endrecord.reserve(manifest.run_path(4))
    endrecord.record(manifest.run_path(4), attempt=1, state="interrupted", extra={"signal": "SIGTERM"})
    # job 5 failed before its run started: no store
    index_runs(manifest, [0])
    text = ("41_0|COMPLETED|0:0|node1|None\n41_1|TIMEOUT|0:0|node1|BeginTime\n"
            "41_2|OUT_OF_MEMORY|0:125|node2|OutOfMemory\n41_3|FAILED|0:9|node1|NonZeroExitCode\n"
            "41_4|CANCELLED by 0|0:15|node2|None\n41_5|FAILED|1:0|node1|NonZeroExitCode\n")  # fmt: skip
    return manifest, text


def test_settled_sweep_is_not_sent_to_the_scheduler_and_shows_the_same(hpctrack_root, sacct):
    manifest, sacct["text"] = _ended_sweep(hpctrack_root)
    before = _shown(manifest)
    assert sacct["calls"] == 1
    assert [s for s, *_ in before] == [JobState.COMPLETED, JobState.TIMEOUT, JobState.OUT_OF_MEMORY,
                                       JobState.FAILED, JobState.CANCELLED, JobState.FAILED]  # fmt: skip
    assert "SIGKILL" in before[3][1] and before[4][1] == "cancelled (SIGTERM)"
    sacct["down"] = True
    after = _shown(manifest)
    assert sacct["calls"] == 1, "the scheduler was asked about a sweep it had settled"
    assert after == before
    table = load_sweep(str(manifest.path)).table()
    assert sacct["calls"] == 1
    assert list(table["state"]) == [s.value for s, *_ in before]


def test_old_manifest_without_the_final_word_asks_once_then_keeps_it(hpctrack_root, sacct):
    manifest, sacct["text"] = _ended_sweep(hpctrack_root)
    first = [(j.state, j.error) for j in sweep_status(manifest, persist=False).jobs]
    assert not any(j.scheduler for j in reload(manifest).jobs)  # persist=False wrote nothing
    assert sacct["calls"] == 1
    shown = _shown(manifest)
    assert sacct["calls"] == 2 and [(s, e) for s, e, *_ in shown] == first
    assert all(j.scheduler.get("job_id") == j.job_id for j in reload(manifest).jobs)
    sacct["down"] = True
    assert _shown(manifest) == shown and sacct["calls"] == 2


def test_a_job_still_running_keeps_the_sweep_asking(hpctrack_root, sacct):
    manifest = make_sweep(hpctrack_root, 2, backend="slurm", state=JobState.PENDING, job_ids=["41_0", "41_1"])
    write_run(manifest, 0)
    sacct["text"] = "41_0|COMPLETED|0:0|node1|None\n41_1|RUNNING|0:0|node1|None\n"
    _shown(manifest)
    _shown(manifest)
    assert sacct["calls"] == 2
    # ... but a waiting launch that asks only about the ended job does not ask
    sweep_status(load_manifest(manifest.path), only={0})
    assert sacct["calls"] == 2


@pytest.mark.parametrize("word", ["PREEMPTED", "NODE_FAIL"])
def test_a_job_the_scheduler_may_requeue_is_asked_again(hpctrack_root, sacct, word):
    # SLURM requeues a preempted job (or one whose node failed) by itself: its final-looking
    # state is not its last, and the run's end record of that attempt does not end it either.
    manifest = make_sweep(hpctrack_root, 1, backend="slurm", state=JobState.PENDING, job_ids=["41_0"])
    write_run(manifest, 0, state="requeued", pid=dead_pid())
    endrecord.reserve(manifest.run_path(0))
    endrecord.record(manifest.run_path(0), attempt=1, state="interrupted", extra={"signal": "SIGTERM"})
    sacct["text"] = f"41_0|{word}|0:15|node1|None\n"
    _shown(manifest)
    sacct["text"] = "41_0|PENDING|0:0|None assigned|BeginTime\n"
    (state, error, note, *_) = _shown(manifest)[0]
    assert sacct["calls"] == 2 and state == JobState.PENDING and "requeued" in note


def test_a_resubmitted_job_forgets_the_final_word_of_its_old_submission(hpctrack_root, sacct):
    from hpctrack.manifest import update_manifest

    manifest = make_sweep(hpctrack_root, 1, backend="slurm", state=JobState.PENDING, job_ids=["41_0"])
    write_run(manifest, 0, state="running", pid=dead_pid())
    sacct["text"] = "41_0|TIMEOUT|0:0|node1|None\n"
    assert _shown(manifest)[0][0] == JobState.TIMEOUT

    def resubmit(m):
        m.jobs[0].resubmit(JobState.TIMEOUT, None, 200.0)
        m.jobs[0].job_id = "42_0"

    update_manifest(manifest.path, resubmit)
    assert reload(manifest).jobs[0].scheduler == {}
    sacct["text"] = "42_0|RUNNING|0:0|node1|None\n"
    _shown(manifest)
    assert sacct["calls"] == 2  # the new submission is asked about
