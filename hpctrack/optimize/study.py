"""The study of a sweep: its settings in the manifest, and its Optuna study in the sweep directory.

The Optuna study lives in ``<sweep>/study/journal.log``, Optuna's journal storage with
its file backend (``JournalFileBackend``), which appends each operation to one log file
under a lock made of ``open(O_CREAT|O_EXCL)``/symlinks: correct on NFS, Lustre and GPFS,
where SQLite is not. Its settings (objective, space, trials, parallel, sampler, pruner)
and the driver that runs it are the manifest's ``study`` section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

from ..errors import ConfigError
from .objective import Objective

__all__ = ["STUDY_DIR", "JOURNAL_FILE", "DRIVER_FILE", "SAMPLERS", "PRUNERS", "require_optuna",
           "study_dir", "open_study", "make_sampler", "make_pruner", "startup_trials"]  # fmt: skip

#: The study's folder in the sweep directory.
STUDY_DIR = "study"
#: Optuna's journal (the study itself), in :data:`STUDY_DIR`.
JOURNAL_FILE = "journal.log"
#: What the driver runs (script, Hydra arguments with their real values, working directory); owner-only.
DRIVER_FILE = "driver.json"
#: ``--sampler`` choices.
SAMPLERS = ("tpe", "random")
#: ``--prune`` choices.
PRUNERS = ("median", "percentile", "hyperband")
#: ``--prune percentile`` keeps the trials in this best percentile at each step.
KEEP_PERCENTILE = 25.0


def require_optuna() -> None:
    """Raise a one-line ConfigError naming the extra when optuna (>= 4) is not installed."""
    try:
        import optuna
    except ImportError:
        raise ConfigError("--optimize needs Optuna: pip install 'hpctrack[optimize]'") from None
    if int(optuna.__version__.split(".")[0]) < 4:
        raise ConfigError(f"--optimize needs Optuna >= 4 (installed: {optuna.__version__}): "
                          "pip install 'hpctrack[optimize]'")  # fmt: skip


def study_dir(sweep_dir: Path) -> Path:
    """``<sweep>/study``."""
    return Path(sweep_dir) / STUDY_DIR


def startup_trials(trials: int) -> int:
    """Trials a sampler draws at random, and a pruner waits for, before they use the study's results."""
    return min(10, max(2, trials // 4))


def make_sampler(name: str, trials: int, seed: Optional[int] = None) -> Any:
    """The Optuna sampler ``name`` (:data:`SAMPLERS`)."""
    import warnings

    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # constant_liar: trials still running count as bad guesses, so a batch of parallel trials spreads out;
    # multivariate: the parameters are modelled jointly, which finds the optimum in far fewer trials
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(n_startup_trials=startup_trials(trials), constant_liar=True,
                                          multivariate=True, seed=seed)  # fmt: skip


def make_pruner(name: Optional[str], trials: int) -> Any:
    """The Optuna pruner ``name`` (:data:`PRUNERS`), or one that never prunes."""
    import optuna

    startup = startup_trials(trials)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=1)
    if name == "percentile":
        return optuna.pruners.PercentilePruner(KEEP_PERCENTILE, n_startup_trials=startup, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_study(sweep_dir: Path, study: Dict[str, Any]) -> Any:
    """The sweep's Optuna study (created on first use), from the manifest's ``study`` section."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = study_dir(sweep_dir)
    folder.mkdir(exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(folder / JOURNAL_FILE)))
    objective = Objective.from_json(study["objective"])
    return optuna.create_study(
        storage=storage,
        study_name=str(study["name"]),
        direction="minimize" if objective.minimize else "maximize",
        sampler=make_sampler(str(study.get("sampler") or "tpe"), int(study["trials"]), study.get("seed")),
        pruner=make_pruner(study.get("prune"), int(study["trials"])),
        load_if_exists=True,
    )
