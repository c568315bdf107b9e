"""Hyper-parameter search with nothing left on the login node: ``hpctrack launch --optimize``.

A study is one sweep whose jobs are the trials of an Optuna study. A detached
driver (:mod:`.driver`; a background process, or a SLURM job of its own) asks
Optuna for trials, submits them as jobs of the sweep, reads each trial's
objective from its run, and prunes trials from their intermediate values. The
study lives in the sweep directory (Optuna's journal file storage), so a driver
that dies is started again by ``hpctrack resume`` and the study goes on with no
trial lost or run twice. Optuna is the extra ``hpctrack[optimize]``.

Modules: :mod:`.space` (the search space in Hydra's override grammar),
:mod:`.objective` (what a trial is scored by), :mod:`.study` (the Optuna study
on disk), :mod:`.driver` (the loop), :mod:`.control` (start, watch, stop the
driver), :mod:`.launch` (``launch --optimize``), :mod:`.view` (what ``status``,
``table`` and ``plot`` show of a study).
"""

from __future__ import annotations

__all__: list = []
