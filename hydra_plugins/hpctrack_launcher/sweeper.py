"""``hydra/sweeper=hpctrack_basic``: Hydra's basic sweeper, validating a sweep without composing every job.

The jobs, their order and their batches are :class:`BasicSweeper`'s own; only
``validate_batch_is_legal`` differs: it composes one config per combination of
config-group choices and checks each job's other overrides against it
(:mod:`hpctrack.launch.validate`), so a 10,000-job sweep is checked in a second
rather than in minutes. A job that would not compose is refused with Hydra's
own error for it, as before. ``hpctrack launch`` selects this sweeper unless
the command line chooses another.
"""

from __future__ import annotations

import logging
from typing import Any, List, Optional, Sequence

# the module, not the class: Hydra's plugin scan registers every plugin class a module's namespace holds
from hydra._internal.core_plugins import basic_sweeper
from hydra.core.override_parser.types import Override
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class HpctrackBasicSweeper(basic_sweeper.BasicSweeper):
    """:class:`BasicSweeper` with a validation that composes once per config-group combination."""

    def __init__(
        self, max_batch_size: Optional[int] = None, params: Optional[Any] = None, yield_to_config: bool = False
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=dict(params) if params else None)
        self.yield_to_config = yield_to_config
        self._validator: Optional[Any] = None
        self._parsed: List[Override] = []

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        if self.yield_to_config:
            chosen = _configs_sweeper(hydra_context, config)
            if chosen not in (None, "basic", "hpctrack_basic"):
                from hpctrack.launch.validate import SweeperChosenByConfig

                raise SweeperChosenByConfig(chosen)
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def split_arguments(self, overrides: List[Override], max_batch_size: Optional[int]) -> List[List[List[str]]]:  # type: ignore[override]
        # BasicSweeper.sweep calls this on its parsed overrides: keep them, so that each job's
        # lines are known parsed (their values typed) without parsing every line again.
        self._parsed = list(overrides)
        return basic_sweeper.BasicSweeper.split_arguments(overrides, max_batch_size)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        from hpctrack.launch.validate import parse_sweep_lines, validator_for

        assert self.hydra_context is not None and self.config is not None
        if self._validator is None:
            lines = parse_sweep_lines(self._parsed)
            self._validator = validator_for(self.hydra_context.config_loader, self.config, lines)
        before = self._validator.compositions
        self._validator.validate(batch)
        log.debug(f"hpctrack: validated {len(batch)} jobs with {self._validator.compositions - before} "
                  "config compositions")  # fmt: skip

    @property
    def compositions(self) -> int:
        """Configs composed by the validation so far."""
        return self._validator.compositions if self._validator is not None else 0


def _configs_sweeper(hydra_context: HydraContext, config: DictConfig) -> Optional[str]:
    """The sweeper the script's config chooses, without the command line's ``hydra/sweeper=``; None: unknown."""
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    given = OmegaConf.to_container(config.hydra.overrides.hydra, resolve=False)  # as Hydra reads them
    overrides = [str(o) for o in (given if isinstance(given, list) else []) if not str(o).startswith("hydra/sweeper=")]
    try:
        defaults = hydra_context.config_loader.compute_defaults_list(
            config_name=config.hydra.job.config_name, overrides=overrides, run_mode=RunMode.MULTIRUN
        )
    except Exception:  # composing will say what is wrong
        return None
    for default in defaults.defaults:
        path = default.config_path or ""
        if path.startswith("hydra/sweeper/"):
            return path[len("hydra/sweeper/") :]
    return None
