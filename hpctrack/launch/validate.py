"""Check a sweep's job configs before launch without composing every job.

Hydra's ``Sweeper.validate_batch_is_legal`` composes every job's config (a
``load_configuration`` each: 1,000 jobs take over a minute). The jobs of a sweep
differ in a few overrides, and only the overrides of config groups change which
config files are composed. So :class:`BatchValidator` composes one config per
distinct combination of config-group choices (with those overrides only), and
checks every job's other overrides against that composed structure, the way
Hydra applies them (``ConfigLoaderImpl._apply_overrides_to_config``):

- ``key=value``: every part of ``key`` exists, and the value fits a typed node;
- ``+key=value``: nothing is at ``key`` yet (or the value is a dict or list);
- ``++key=value``: the value fits a typed node that is there;
- ``~key[=value]``: something is at ``key`` (and equals ``value`` when given).

A dict value is checked key by key against the node it merges into. A job whose
overrides this cannot decide cheaply (two overrides of one job on nested keys,
a list value, a new key under a typed container) is composed in full, as Hydra does. A job that fails a check is
composed in full too: Hydra's own error for it is raised, the same error, and
for the same (first) failing job, as Hydra's validation would give. Each job
still composes its own full config when it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override
    from omegaconf import DictConfig

__all__ = ["BatchValidator", "ParsedLine", "SweeperChosenByConfig", "parse_sweep_lines", "validator_for"]

_ABSENT = object()


class SweeperChosenByConfig(Exception):
    """The script's config chooses its own sweeper (``name``): ``hpctrack launch`` runs it with that one."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the config chooses the sweeper {name!r}")
        self.name = name


@dataclass(frozen=True)
class ParsedLine:
    """One job's override line as Hydra parsed it: the override (its key and prefix) and this line's value."""

    override: "Override"
    value: Any


@dataclass
class BatchValidator:
    """Validates batches of jobs against configs composed once per config-group combination.

    Parameters
    ----------
    compose:
        ``compose(overrides)`` returns the job config for those overrides (Hydra's
        ``load_sweep_config``) or raises Hydra's error.
    is_group:
        Whether an override key names a config group (Hydra's ``group_exists``).
    lines:
        The parsed form of the override lines the sweeper generated (``key=value``
        text -> :class:`ParsedLine`); a line not in it makes its job composed in full.
    """

    compose: Callable[[List[str]], "DictConfig"]
    is_group: Callable[[str], bool]
    lines: Mapping[str, ParsedLine] = field(default_factory=dict)
    #: Configs composed so far (one per config-group combination, plus each job composed in full).
    compositions: int = field(default=0, init=False)
    _bases: Dict[Tuple[str, ...], Optional["DictConfig"]] = field(default_factory=dict, init=False, repr=False)
    _groups: Dict[str, bool] = field(default_factory=dict, init=False, repr=False)
    _passed: Dict[Tuple[Tuple[str, ...], str], bool] = field(default_factory=dict, init=False, repr=False)
    _independent: Dict[Tuple[str, ...], bool] = field(default_factory=dict, init=False, repr=False)

    def validate(self, batch: Sequence[Sequence[str]]) -> None:
        """Raise Hydra's error for the first job of ``batch`` whose config cannot be composed."""
        for overrides in batch:
            job = list(overrides)
            if not self._fast_check(job):
                self._compose(job)  # raises Hydra's own error for the job, if it has one

    def _compose(self, overrides: List[str]) -> "DictConfig":
        self.compositions += 1
        return self.compose(overrides)

    def _group(self, line: str) -> bool:
        parsed = self.lines.get(line)
        if parsed is None:
            return False
        key = parsed.override.key_or_group
        if key not in self._groups:
            self._groups[key] = self.is_group(key)
        return self._groups[key] and not isinstance(parsed.value, dict)

    def _fast_check(self, job: List[str]) -> bool:
        """Whether the job's config composes, decided from its combination's config; False: compose it."""
        if any(line not in self.lines for line in job):
            return False
        groups = tuple(line for line in job if self._group(line))
        others = [line for line in job if not self._group(line)]
        keys = tuple(self.lines[line].override.key_or_group for line in others)
        if keys not in self._independent:
            self._independent[keys] = _independent(keys)
        if not self._independent[keys]:
            return False
        if groups not in self._bases:
            try:
                self._bases[groups] = self._compose(list(groups))
            except Exception:
                self._bases[groups] = None  # each job of the combination is composed in full, for its own error
        base = self._bases[groups]
        if base is None:
            return False
        for line in others:
            known = self._passed.get((groups, line))
            if known is None:
                try:
                    known = _applies(base, self.lines[line])
                except Exception:  # a structure these checks do not know: composing decides
                    known = False
                self._passed[(groups, line)] = known
            if not known:
                return False
        return True


def _independent(keys: Sequence[str]) -> bool:
    """Whether no key is another's or lies under another's: then each override applies on its own."""
    return not any(a == b or b.startswith((a + ".", a + "[")) or a.startswith((b + ".", b + "["))
                   for i, a in enumerate(keys) for b in keys[i + 1:])  # fmt: skip


def _node(cfg: "DictConfig", key: str) -> Any:
    """The node at ``key`` (``_ABSENT`` when a part of the key is missing), and whether its parent is typed."""
    from omegaconf import OmegaConf

    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, default=_ABSENT, throw_on_missing=False) if parent_key else cfg
    if parent is _ABSENT or not OmegaConf.is_dict(parent):
        return _ABSENT, parent
    node = parent._get_node(leaf, throw_on_missing_key=False) if leaf in parent else _ABSENT
    return node, parent


def _plain_parent(parent: Any) -> bool:
    """A parent that takes a new key of any value: an untyped dict config (no dataclass, no element type)."""
    from omegaconf import OmegaConf

    if not OmegaConf.is_dict(parent):
        return False
    meta = parent._metadata
    return meta.object_type in (None, dict) and meta.element_type in (Any, None)


def _value_fits(node: Any, value: Any) -> bool:
    """Whether ``value`` can be set on (or, a dict, merged into) ``node`` in a struct config."""
    from omegaconf import AnyNode, OmegaConf, ValueNode
    from omegaconf._utils import _is_interpolation

    if isinstance(value, dict) and OmegaConf.is_dict(node) and not node._is_none() and not node._is_missing():
        # merged key by key: each key must be there already (struct), each value fit its node
        for key, item in value.items():
            if not isinstance(key, str) or key not in node:
                return False
            if not _value_fits(node._get_node(key), item):
                return False
        return True
    if isinstance(value, (dict, list)):
        return False  # a list, or a dict replacing a value: decided by composing
    if isinstance(node, AnyNode):
        return True
    if not isinstance(node, ValueNode):
        return False  # a container replaced by a value: decided by composing
    if value is None:
        return bool(node._is_optional())
    if isinstance(value, str) and _is_interpolation(value):
        return True  # checked when resolved, as by OmegaConf
    try:
        node.validate_and_convert(value)
    except Exception:
        return False
    return True


def _applies(base: "DictConfig", parsed: ParsedLine) -> bool:
    """Whether Hydra can apply the override ``parsed`` to ``base`` (False: unsure or not)."""
    override, value = parsed.override, parsed.value
    if override.package is not None:
        return False
    key = override.key_or_group
    node, parent = _node(base, key)
    if override.is_delete():
        if node is _ABSENT or value is not None:
            return False  # missing, or a value to compare: decided by composing
        from omegaconf import OmegaConf

        return OmegaConf.select(base, key, throw_on_missing=False) is not None and _plain_parent(parent)
    if override.is_add() or override.is_force_add():
        if node is _ABSENT or _is_none(node):
            if parent is _ABSENT:
                # a new branch: only under an untyped parent, reached through dicts that exist or not
                return _new_branch_ok(base, key)
            return _plain_parent(parent) and not isinstance(value, (dict, list))
        if override.is_add():
            return False  # "an item is already at ..."
    if node is _ABSENT:
        return False  # not in struct: Hydra's "Could not override"
    return _value_fits(node, value)


def _is_none(node: Any) -> bool:
    from omegaconf import ValueNode

    return isinstance(node, ValueNode) and node._value() is None


def _new_branch_ok(base: "DictConfig", key: str) -> bool:
    """``+a.b.c=v`` where ``a.b`` is missing: the deepest existing ancestor must be an untyped dict."""
    from omegaconf import OmegaConf

    parts = key.split(".")
    for depth in range(len(parts) - 1, 0, -1):
        ancestor = OmegaConf.select(base, ".".join(parts[:depth]), default=_ABSENT, throw_on_missing=False)
        if ancestor is not _ABSENT:
            return _plain_parent(ancestor)
    return _plain_parent(base)


def parse_sweep_lines(overrides: Sequence["Override"]) -> Dict[str, ParsedLine]:
    """Each job line (``key=value``) :meth:`BasicSweeper.split_arguments` makes of ``overrides``, parsed."""
    lines: Dict[str, ParsedLine] = {}
    for override in overrides:
        key = override.get_key_element()
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                continue
            texts = list(override.sweep_string_iterator())
            values = list(override.sweep_iterator())
            if len(texts) != len(values):
                continue
            for text, value in zip(texts, values):
                lines[f"{key}={text}"] = ParsedLine(override, value)
        else:
            lines[f"{key}={override.get_value_element_as_str()}"] = ParsedLine(override, override.value())
    return lines


def validator_for(config_loader: Any, master: "DictConfig", lines: Mapping[str, ParsedLine]) -> BatchValidator:
    """A :class:`BatchValidator` composing with Hydra's ``config_loader`` from the sweep's ``master`` config."""

    def compose(overrides: List[str]) -> "DictConfig":
        return config_loader.load_sweep_config(master_config=master, sweep_overrides=overrides)

    repository: Optional[Any] = getattr(config_loader, "repository", None)

    def is_group(key: str) -> bool:
        return bool(repository is not None and repository.group_exists(key))

    if repository is None:  # an unknown config loader: every job is composed, as Hydra does
        return BatchValidator(compose=compose, is_group=is_group, lines={})
    return BatchValidator(compose=compose, is_group=is_group, lines=dict(lines))
