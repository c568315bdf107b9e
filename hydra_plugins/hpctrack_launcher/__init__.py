"""Hydra launcher plugin: ``hydra/launcher=hpctrack_local``.

A thin adapter over :mod:`hpctrack.launch`; importing it registers the
launcher configs in Hydra's ConfigStore.
"""

from . import config as _config  # noqa: F401  (registers the configs)
