"""The ``hpctrack_optimize`` Sweeper: a Hydra adapter over :class:`hpctrack.optimize.driver.Driver`.

Run twice per study. ``prepare: true`` in the launching process: the search
space is parsed and checked (Hydra composes a trial's config at each end of
the space), and the sweep is created with its ``study`` section and no job.
Then, in the detached driver process, it drives: each batch of trials goes
to the sweep's launcher (``launch(batch, initial_job_idx)``, which adds the
jobs to the one sweep and returns at once), and the driver follows them in
their runs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


class OptimizeSweeper(Sweeper):
    """``hydra/sweeper=hpctrack_optimize``; see the module's docs."""

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def _sweep_dir(self) -> Path:
        from hpctrack.config import resolve_root
        from hpctrack.errors import ConfigError
        from hpctrack.manifest import SWEEPS_DIR

        assert self.config is not None
        launcher = self.config.hydra.launcher
        sweep_id = launcher.get("sweep_id")
        if not sweep_id:
            raise ConfigError("hydra/sweeper=hpctrack_optimize runs under `hpctrack launch --optimize`, which names "
                              "the sweep (hydra.launcher.sweep_id)")  # fmt: skip
        return resolve_root(launcher.get("root")) / SWEEPS_DIR / str(sweep_id)

    def sweep(self, arguments: List[str]) -> Any:
        import os

        from hydra.errors import CompactHydraException

        from hpctrack.errors import HpctrackError
        from hydra_plugins.hpctrack_launcher.launcher import COMMAND_ENV

        try:
            return self._sweep(arguments)
        except HpctrackError as err:
            if COMMAND_ENV in os.environ:  # under hpctrack, which says its errors in one line itself
                raise
            raise CompactHydraException(f"hpctrack: {str(err).strip()}") from None

    def _sweep(self, arguments: List[str]) -> Any:
        from hpctrack.optimize.space import parse_space

        space = parse_space(list(arguments))
        if self.params.get("prepare"):
            self._prepare(space, list(arguments))
            return None
        from hpctrack.optimize.driver import Driver

        sweep_dir = self._sweep_dir()

        def submit(batch: List[List[str]]) -> List[int]:
            from hpctrack.manifest import load_manifest

            self.launcher.launch(batch, initial_job_idx=len(load_manifest(sweep_dir).jobs))
            return list(self.launcher.last_indices)

        return Driver(sweep_dir, space, submit, poll_s=self.params.get("poll_s")).run()

    def _prepare(self, space: Any, arguments: List[str]) -> None:
        """Check the space against the app's config, then create the sweep with its study and no job."""
        from hpctrack.launch import SweepRequest, backend_options, prepare_sweep
        from hpctrack.optimize.control import write_driver_file
        from hpctrack.optimize.objective import parse_objective
        from hpctrack.optimize.study import STUDY_DIR

        assert self.config is not None
        # Hydra composes a trial at each end of the space: an unknown key or a bad value stops here.
        ends = [{p.name: (p.choices[0] if p.kind == "categorical" else p.low) for p in space.params},
                {p.name: (p.choices[-1] if p.kind == "categorical" else p.high) for p in space.params}]  # fmt: skip
        self.validate_batch_is_legal([space.trial_overrides(values) for values in ends])
        objective = parse_objective(str(self.params["objective"]), self.params.get("direction"))
        launcher_conf = OmegaConf.to_container(self.config.hydra.launcher, resolve=True)
        launcher_conf = launcher_conf if isinstance(launcher_conf, dict) else {}
        backend = str(self.launcher._BACKEND)
        sweep_dir = self._sweep_dir()
        command = json.loads(os.environ["HPCTRACK_COMMAND"]) if "HPCTRACK_COMMAND" in os.environ else sys.argv
        study: Dict[str, Any] = {
            "name": sweep_dir.name,
            "objective": objective.to_json(),
            "trials": int(self.params["trials"]),
            "parallel": int(self.params["parallel"]),
            "sampler": str(self.params.get("sampler") or "tpe"),
            "prune": self.params.get("prune"),
            "poll_s": float(self.params.get("poll_s") or 2.0),
            "seed": None if self.params.get("seed") is None else int(self.params["seed"]),
            "space": [p.to_json() for p in space.params],
            "journal": f"{STUDY_DIR}/journal.log",
            "state": "created",
            "driver": {},
            "trial_of_job": {},
        }
        request = SweepRequest(
            jobs=[],
            backend=backend,
            backend_options={
                k: (OmegaConf.to_container(v) if OmegaConf.is_config(v) else v)
                for k, v in backend_options(backend, dict(launcher_conf)).items()
            },  # fmt: skip
            store=str(launcher_conf.get("store") or "hdf5"),
            root=launcher_conf.get("root"),
            sweep_id=sweep_dir.name,
            name=launcher_conf.get("name") or str(self.config.hydra.job.name),
            script=os.path.abspath(sys.argv[0]),
            command=list(command),
            cwd=os.getcwd(),
            overrides=list(arguments),
            launcher=launcher_conf,
            study=study,
        )
        manifest = prepare_sweep(request)
        # The driver runs the launch-time code: the snapshot's copy of the script, when it has one (an
        # untracked script in a git repository is not copied: its jobs get it pickled, the driver reads it)
        code = manifest.code
        script = os.path.abspath(sys.argv[0])
        if code.get("path") and os.path.isfile(os.path.join(code["path"], code["script"])):
            script = os.path.join(code["path"], code["script"])
        argv = [a for a in sys.argv[1:] if a != "hydra.sweeper.prepare=true"]
        write_driver_file(manifest.path, {"script": script, "argv": argv, "cwd": os.getcwd(),
                                          "command": list(command)})  # fmt: skip
