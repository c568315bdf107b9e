"""The config of the Hydra job a framework's training runs in, for the integrations to record.

A script decorated with ``@hydra.main`` that hands its training to a framework (a Lightning
``Trainer``, a Hugging Face ``Trainer``) often never calls ``hpctrack.start_run(cfg)``: the
integration then records the job's config itself, as Hydra saved it for the job, so that the run
has its params (``table``, ``runs --where``, ``diff``) as a hand-written loop's run has them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

if TYPE_CHECKING:
    from ..run import Run

__all__ = ["job_config", "start_framework_run"]


def start_framework_run(cfg: Any = None, *, name: Optional[str] = None, tags: Optional[Mapping[str, Any]] = None,
                        root: Optional[str] = None, store: Optional[str] = None) -> "Run":  # fmt: skip
    """``hpctrack.start_run(cfg)``: the job's run under a launcher, else a new one-run sweep.

    Without ``cfg``, the Hydra job's config is recorded, unless the run has its config already
    (the script called ``hpctrack.start_run(cfg)``).
    """
    from ..run import current_run, start_run

    active = current_run()
    if cfg is None and (active is None or not active.params_recorded):
        cfg = job_config()
    kwargs: dict = {} if store is None else {"store": store}
    return start_run(cfg, name=name, tags=tags, root=root, **kwargs)


def job_config() -> Any:
    """The task config of the Hydra job this process runs, as Hydra saved it for the job; None outside Hydra."""
    if "hydra" not in sys.modules:
        return None
    try:
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        if not HydraConfig.initialized():
            return None
        hydra = HydraConfig.get()
        if hydra.output_subdir is None:
            return None
        path = Path(hydra.runtime.output_dir) / hydra.output_subdir / "config.yaml"
        if not path.is_file():
            return None
        cfg = OmegaConf.load(path)
        from ..run import flatten_config

        flatten_config(cfg)  # it resolves here as it will when recorded
        return cfg
    except Exception:  # a config that cannot be read or resolved is not recorded; the run goes on
        return None
