"""Hydra sweeper plugin ``hydra/sweeper=hpctrack_optimize``: the driver of ``hpctrack launch --optimize``.

A thin adapter over :mod:`hpctrack.optimize`; importing it registers the
sweeper's config in Hydra's ConfigStore.
"""

from . import config as _config  # noqa: F401  (registers the config)
