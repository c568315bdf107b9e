"""``hpctrack launch SCRIPT SPACE... --optimize SEL:min|max``: create a study's sweep and start its driver."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

from ..errors import ConfigError, HpctrackError
from ..manifest import Manifest, load_manifest
from .objective import parse_objective
from .space import parse_space
from .study import PRUNERS, SAMPLERS, require_optuna

__all__ = ["StudyOptions", "launch_study"]


@dataclass(frozen=True)
class StudyOptions:
    """The study's settings as given on the command line (``launch --optimize ...``)."""

    objective: str  # KEY[:last|min|max][:min|max]
    trials: int
    parallel: int = 1
    direction: Optional[str] = None  # minimize|maximize
    sampler: str = "tpe"
    prune: Optional[str] = None  # median|percentile|hyperband
    poll_s: Optional[float] = None  # None: 2 s locally, 5 s on a scheduler (one sacct call per look)

    def check(self) -> None:
        """Raise a one-line ConfigError for a bad setting (nothing is written before)."""
        if self.trials < 1:
            raise ConfigError(f"--trials must be at least 1, got {self.trials}")
        if self.parallel < 1:
            raise ConfigError(f"--parallel must be at least 1, got {self.parallel}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"--sampler must be one of {', '.join(SAMPLERS)}, not {self.sampler!r}")
        if self.prune is not None and self.prune not in PRUNERS:
            raise ConfigError(f"--prune must be one of {', '.join(PRUNERS)}, not {self.prune!r}")
        if self.poll_s is not None and not self.poll_s > 0:
            raise ConfigError(f"the poll interval must be positive, got {self.poll_s}")
        parse_objective(self.objective, self.direction)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _sweeper_args(options: StudyOptions, backend: str) -> List[str]:
    from ..launch.registry import backend_class

    poll_s = options.poll_s if options.poll_s is not None else (5.0 if backend_class(backend).has_queue else 2.0)
    args = [
        "hydra/sweeper=hpctrack_optimize",
        f"hydra.sweeper.objective={_quote(options.objective)}",
        f"hydra.sweeper.trials={options.trials}",
        f"hydra.sweeper.parallel={options.parallel}",
        f"hydra.sweeper.sampler={options.sampler}",
        f"hydra.sweeper.poll_s={poll_s}",
        "hydra.sweeper.prepare=true",
    ]
    if options.direction:
        args.append(f"hydra.sweeper.direction={options.direction}")
    if options.prune:
        args.append(f"hydra.sweeper.prune={options.prune}")
    return args


def launch_study(script: str, overrides: List[str], options: StudyOptions, **launch: Any) -> Manifest:
    """Create the study's sweep (no job yet) and start its driver; return once it is started.

    ``launch`` takes :func:`hpctrack.launch.script.launch_script`'s options
    (``backend``, ``name``, ``root``, ``slurm``, ...). Everything is checked
    before anything is written: Optuna installed, the options, the objective,
    the search space, and the app's config at each end of the space.

    Raises
    ------
    ConfigError
        Bad input, in one line; nothing was written.
    """
    from ..launch.script import launch_script, split_flags
    from .control import start_driver

    require_optuna()
    options.check()
    _, plain = split_flags(list(overrides))
    parse_space(plain)
    from ..launch.registry import backend_names

    backend = str(launch.get("backend") or "local")
    if backend not in backend_names():
        raise ConfigError(f"unknown backend {backend!r}; choose one of: {', '.join(backend_names())}")
    launch = {**launch, "parallel": options.parallel, "detach": True, "progress": False}
    manifest = launch_script(script, list(overrides), sweeper=_sweeper_args(options, backend), **launch)
    assert manifest is not None  # not a dry run
    if not manifest.study:
        raise ConfigError(f"{script} did not create the study's sweep (its @hydra.main app must not choose its own "
                          "sweeper in code)")  # fmt: skip
    try:
        start_driver(manifest.path)
    except HpctrackError:
        # The driver could not be started (sbatch refused it): the sweep has no job yet and is this
        # launch's own, so it goes, and the error is the launch's, as for any refused input.
        from ..safefs import rmtree

        if not load_manifest(manifest.path).jobs:
            rmtree(manifest.path, manifest.path.parent)
        raise
    return load_manifest(manifest.path)
