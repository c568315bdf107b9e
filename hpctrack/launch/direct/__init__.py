"""The ``direct`` backend: a plain ``python train.py`` that opened its own run.

:func:`hpctrack.start_run` records such a script as a one-job sweep whose
backend is ``direct``: the script's own process is the job. Nothing submits
it (it cannot be launched nor requeued); status follows its process, and
cancel stops it on this host.
"""

from __future__ import annotations

from .backend import DirectBackend

__all__ = ["DirectBackend"]
