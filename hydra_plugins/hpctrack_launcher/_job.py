"""Running one job's task as Hydra's ``run_job`` (``hydra.core.utils``, Hydra 1.3) does, for less.

The steps are Hydra's, in Hydra's order: the job's config becomes Hydra's own
(``HydraConfig``), its output directory is made (and entered when
``hydra.job.chdir``), logging is configured, ``.hydra/{config,hydra,overrides}.yaml``
are written, ``hydra.job.env_set`` is applied, the callbacks and the task run, and
Hydra's config and the working directory are restored. Two things differ:

- Hydra copies the job's Hydra config three times (``HydraConfig.set_config``
  before and after the output directory is known, and once more for the
  ``JobReturn``); here Hydra's config is the job's own ``hydra`` node, read-only,
  which shows the output directory once it is set, and the ``JobReturn`` holds it
  (nothing changes it: the next job's config replaces it as a whole);
- the task's config is copied from the job's without its ``hydra`` node (Hydra
  copies the whole config, then drops that node from the copy);
- ``.hydra/*.yaml`` are written with secret values already masked
  (:func:`hpctrack.secrets.mask_mapping`), instead of being written with the real
  values and then read back and rewritten: the secret never reaches the disk.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, List, Optional

from hydra import version
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobRuntime, JobStatus, _flush_loggers, configure_log, env_override
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

__all__ = ["run_job"]


def _ascii(data: Any) -> bool:
    """Whether every key and string in ``data`` (plain containers) is ASCII."""
    if isinstance(data, dict):
        return all(_ascii(k) and _ascii(v) for k, v in data.items())
    if isinstance(data, list):
        return all(_ascii(v) for v in data)
    return not isinstance(data, str) or data.isascii()


def _dumper(data: Any) -> Any:
    """OmegaConf's YAML dumper; on libyaml's emitter when that writes the same text (all of ``data`` ASCII).

    The two emitters render ASCII alike; beyond it libyaml escapes what PyYAML's
    emitter writes as it is (characters outside Unicode's basic plane).
    """
    import yaml
    from omegaconf._utils import OmegaConfDumper, get_omega_conf_dumper

    if not getattr(yaml, "__with_libyaml__", False) or not _ascii(data):
        return get_omega_conf_dumper()
    if not _C_DUMPER:

        class _OmegaConfCDumper(yaml.CDumper):
            pass

        _OmegaConfCDumper.add_representer(str, OmegaConfDumper.str_representer)
        _C_DUMPER.append(_OmegaConfCDumper)
    return _C_DUMPER[0]


_C_DUMPER: List[Any] = []


def _masked_yaml(cfg: Any) -> str:
    """``OmegaConf.to_yaml(cfg)``, with the values of secret keys masked."""
    import yaml

    from hpctrack.secrets import mask_mapping

    masked = mask_mapping(OmegaConf.to_container(cfg, resolve=False, enum_to_str=True))
    return yaml.dump(masked, default_flow_style=False, allow_unicode=True, sort_keys=False, Dumper=_dumper(masked))


def _save_config(cfg: Any, filename: str, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(str(output_dir / filename), "w", encoding="utf-8") as file:
        file.write(_masked_yaml(cfg))


def _set_output_dir(cfg: DictConfig, output_dir: str) -> None:
    with read_write(cfg.hydra.runtime):
        with open_dict(cfg.hydra.runtime):
            cfg.hydra.runtime.output_dir = output_dir


def _set_hydra_config(config: DictConfig) -> DictConfig:
    """``HydraConfig.instance().set_config(config)`` without copying the job's Hydra config.

    Hydra's ``set_config`` makes its config a copy of ``config.hydra`` (``masked_copy``)
    whose node it then parents to ``config``, so that interpolations resolve in the job's
    config: here the node is ``config.hydra`` itself, read-only as Hydra makes it, under a
    container of the same shape.
    """
    from hydra.conf import HydraConf
    from omegaconf import flag_override

    OmegaConf.set_readonly(config.hydra, True)
    hydra_node_type = OmegaConf.get_type(config, "hydra")
    assert hydra_node_type is not None and issubclass(hydra_node_type, HydraConf)
    view = DictConfig(content={})
    with flag_override(view, "no_deepcopy_set_nodes", True):
        view["hydra"] = config._get_node("hydra")
    view.hydra._set_parent(config)  # as Hydra's: the job's config is the node's parent, as it was
    HydraConfig.instance().cfg = view  # type: ignore[assignment]
    return view


def run_job(
    task_function: TaskFunction,
    config: DictConfig,
    job_dir_key: str,
    job_subdir_key: Optional[str],
    hydra_context: HydraContext,
) -> JobReturn:
    """Hydra's ``run_job(task_function, config, job_dir_key, job_subdir_key, hydra_context)``."""
    callbacks = hydra_context.callbacks
    old_cwd = os.getcwd()
    orig_hydra_cfg = HydraConfig.instance().cfg

    # The job's Hydra config, for ${hydra:...} in the output directory's keys.
    hydra_cfg = _set_hydra_config(config)

    output_dir = str(OmegaConf.select(config, job_dir_key))
    if job_subdir_key is not None:
        # evaluated here, in the job: it may name the job's own number or id
        subdir = str(OmegaConf.select(config, job_subdir_key))
        output_dir = os.path.join(output_dir, subdir)

    _set_output_dir(config, os.path.abspath(output_dir))  # Hydra's config shows it: the same node
    _chdir = None
    try:
        ret = JobReturn()
        # Hydra deep-copies the whole config, then drops the copy's hydra node: it is not copied here
        # (handed over as it is, the original stays the job config's, and the copy drops it).
        hydra_node = config._get_node("hydra")
        task_cfg = copy.deepcopy(config, {id(hydra_node): hydra_node})
        with read_write(task_cfg):
            with open_dict(task_cfg):
                del task_cfg["hydra"]

        ret.cfg = task_cfg
        ret.hydra_cfg = hydra_cfg
        overrides = OmegaConf.to_container(config.hydra.overrides.task)
        assert isinstance(overrides, list)
        ret.overrides = overrides
        # handle output directories here
        Path(str(output_dir)).mkdir(parents=True, exist_ok=True)

        _chdir = hydra_cfg.hydra.job.chdir

        if _chdir is None:
            if version.base_at_least("1.2"):
                _chdir = False

        if _chdir is None:
            from textwrap import dedent

            from hydra._internal.deprecation_warning import deprecation_warning

            url = "https://hydra.cc/docs/1.2/upgrades/1.1_to_1.2/changes_to_job_working_dir/"
            deprecation_warning(
                message=dedent(
                    f"""\
                    Future Hydra versions will no longer change working directory at job runtime by default.
                    See {url} for more information."""
                ),
                stacklevel=2,
            )
            _chdir = True

        if _chdir:
            os.chdir(output_dir)
            ret.working_dir = output_dir
        else:
            ret.working_dir = os.getcwd()

        configure_log(config.hydra.job_logging, config.hydra.verbose)

        if config.hydra.output_subdir is not None:
            hydra_output = Path(config.hydra.runtime.output_dir) / Path(config.hydra.output_subdir)
            _save_config(task_cfg, "config.yaml", hydra_output)
            _save_config(hydra_cfg, "hydra.yaml", hydra_output)
            _save_config(config.hydra.overrides.task, "overrides.yaml", hydra_output)

        with env_override(hydra_cfg.hydra.job.env_set):
            callbacks.on_job_start(config=config, task_function=task_function)
            try:
                ret.return_value = task_function(task_cfg)
                ret.status = JobStatus.COMPLETED
            except Exception as e:
                ret.return_value = e
                ret.status = JobStatus.FAILED

        ret.task_name = JobRuntime.instance().get("name")

        _flush_loggers()

        callbacks.on_job_end(config=config, job_return=ret)

        return ret
    finally:
        HydraConfig.instance().cfg = orig_hydra_cfg
        if _chdir:
            os.chdir(old_cwd)
