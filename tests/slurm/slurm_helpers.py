"""Polling helpers for the SLURM tests: bounded waits for final states, never one transient look."""

from __future__ import annotations

import json
import time

from conftest import run_cli


def status_json(root: str, ref: str) -> dict:
    return json.loads(run_cli("status", ref, "--format", "json", "--root", root, check=True).stdout)


def wait_final(root: str, ref: str, timeout_s: float = 240) -> dict:
    """Poll `hpctrack status` until every job has a final state (bounded)."""
    deadline = time.time() + timeout_s
    while True:
        status = status_json(root, ref)
        if all(j["state"] not in ("PENDING", "RUNNING") for j in status["jobs"]):
            return status
        if time.time() > deadline:
            raise AssertionError(f"sweep {ref} not finished after {timeout_s} s: {status['summary']}")
        time.sleep(2)


def wait_until(root: str, ref: str, predicate, timeout_s: float = 120) -> dict:
    deadline = time.time() + timeout_s
    while True:
        status = status_json(root, ref)
        if predicate(status):
            return status
        if time.time() > deadline:
            raise AssertionError(f"sweep {ref}: condition not met after {timeout_s} s: {status}")
        time.sleep(1)
