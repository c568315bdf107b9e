"""Which keys hold secrets, and masking them (``***``) in everything hpctrack writes or prints.

One rule decides whether a key looks like a secret, for config keys (``db.password``),
override keys (``+db.password``), command-line flags (``--api-token``) and environment
variables (``SLURM_MYSECRET_TOKEN``): a key is secret when one of its components (split
on ``.`` and ``/``) is. A component is secret when, lower-cased with its separators
removed, it contains ``passw``, ``passphrase``, ``secret``, ``credential``, ``apikey``,
``privatekey`` or ``accesskey``, or when one of its words (split on ``_``, ``-`` and
camelCase) is ``pwd``, ``token``, ``auth``, ``authorization`` or ``cookie``. So
``db.password``, ``dbPassword``, ``api_key``, ``github_token`` and ``secrets.db.host`` are
secret; ``max_tokens``, ``tokenizer`` and ``author`` are not.

``HPCTRACK_SECRET_KEYS`` adjusts the rule: comma-separated shell-style patterns matched
against each component, case-insensitively; a pattern adds to the rule, and one starting
with ``!`` exempts the components it matches (``HPCTRACK_SECRET_KEYS='license,*_dsn,!pad_token'``).

Only what hpctrack records is masked; the job itself receives the real values.
A value that is one interpolation (``${oc.env:DB_PASSWORD}``) is kept as written: it
names where the secret is, it is not the secret.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

__all__ = ["MASK", "is_secret_key", "masked_keys", "mask_mapping", "mask_config", "mask_overrides", "mask_argv",
           "mask_text", "mask_yaml_text", "mask_diff", "mask_json_argv",
           "mask_yaml_file"]  # fmt: skip

#: What a secret value is recorded as.
MASK = "***"
_SUBSTRINGS = ("passw", "passphrase", "secret", "credential", "apikey", "privatekey", "accesskey")
_WORDS = frozenset({"pwd", "token", "auth", "authorization", "cookie"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")
#: One interpolation and nothing else: a reference to the value, not the value.
_ONE_INTERPOLATION = re.compile(r"^\$\{[^{}]*(\{[^{}]*\}[^{}]*)*\}$")
_INTERPOLATION = re.compile(r"\$\{([^{}]*)\}")


def _patterns() -> Tuple[List[str], List[str]]:
    from .settings import get

    raw = get("HPCTRACK_SECRET_KEYS") or ""
    items = [p.strip().lower() for p in raw.split(",") if p.strip()]
    return [p for p in items if not p.startswith("!")], [p[1:] for p in items if p.startswith("!")]


def _component_is_secret(component: str, extra: Sequence[str], exempt: Sequence[str]) -> bool:
    lower = component.lower()
    if any(fnmatch.fnmatchcase(lower, p) for p in exempt):
        return False
    if any(fnmatch.fnmatchcase(lower, p) for p in extra):
        return True
    words = [w for w in _SEPARATORS.split(_CAMEL.sub("_", component).lower()) if w]
    joined = "".join(words)
    return any(s in joined for s in _SUBSTRINGS) or any(w in _WORDS for w in words)


#: ``is_secret_key``'s answers, by ``HPCTRACK_SECRET_KEYS`` and key: a job's Hydra record alone asks for
#: hundreds of keys, the same in every job of a sweep.
_ANSWERS: Dict[Tuple[str, str], bool] = {}
_MAX_ANSWERS = 100_000


def is_secret_key(key: str) -> bool:
    """Whether ``key`` (a dotted config key, an override key, a flag or an environment variable) names a secret.

    Leading ``+``, ``~`` and ``-`` (override and flag syntax) are ignored.
    """
    from .settings import get

    asked = (get("HPCTRACK_SECRET_KEYS") or "", key)
    found = _ANSWERS.get(asked)
    if found is None:
        extra, exempt = _patterns()
        parts = [p for p in re.split(r"[./]", key.lstrip("+~-")) if p]
        found = any(_component_is_secret(p, extra, exempt) for p in parts)
        if len(_ANSWERS) < _MAX_ANSWERS:
            _ANSWERS[asked] = found
    return found


def _keeps_raw(raw: Any) -> bool:
    """A secret key's value that may be recorded as written: a single interpolation (``${oc.env:X}``)."""
    return isinstance(raw, str) and bool(_ONE_INTERPOLATION.match(raw.strip()))


def _refers_to_secret(raw: Any) -> bool:
    """A string that interpolates a secret key (``postgres://u:${db.password}@h``)."""
    if not isinstance(raw, str):
        return False
    for inner in _INTERPOLATION.findall(raw):
        ref = inner.split(":", 1)[1] if ":" in inner.split(",")[0] else inner  # oc.select:db.password,x
        if is_secret_key(ref.split(",")[0].strip()):
            return True
    return False


def mask_mapping(data: Any, prefix: str = "") -> Any:
    """``data`` (mappings, lists and scalars) with the values of secret keys masked.

    Keys are matched with their path (``prefix`` + dotted parents), so ``{"db": {"password": x}}``
    and ``{"db.password": x}`` are masked alike. Strings elsewhere have their ``KEY=VALUE``
    assignments masked (:func:`mask_text`): Hydra's ``override_dirname``, recorded overrides.
    """
    if isinstance(data, Mapping):
        out: Dict[Any, Any] = {}
        for key, value in data.items():
            path = f"{prefix}{key}"
            if is_secret_key(str(path)):
                out[key] = value if _keeps_raw(value) else MASK
            else:
                out[key] = mask_mapping(value, f"{path}.")
        return out
    if isinstance(data, (list, tuple)):
        return [mask_mapping(v, prefix) for v in data]
    if isinstance(data, str):
        return mask_text(data)
    return data


def mask_config(cfg: Any) -> Any:
    """The resolved config as plain containers, with secret values masked.

    A secret key whose value is one interpolation, and any value interpolating a secret key,
    are kept unresolved (``${oc.env:DB_PASSWORD}``): the value on disk names the secret's
    source, never the secret. Raises what resolving the config raises.
    """
    from omegaconf import DictConfig, OmegaConf

    if not isinstance(cfg, DictConfig):
        return mask_mapping(cfg)
    raw = OmegaConf.to_container(cfg, resolve=False)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    return _merge(raw, resolved, "")


def _merge(raw: Any, resolved: Any, prefix: str) -> Any:
    if isinstance(resolved, Mapping):
        raw_map = raw if isinstance(raw, Mapping) else {}
        out: Dict[Any, Any] = {}
        for key, value in resolved.items():
            path = f"{prefix}{key}"
            written = raw_map.get(key)
            if is_secret_key(str(path)):
                out[key] = written if _keeps_raw(written) else MASK
            elif _refers_to_secret(written):
                out[key] = written
            else:
                out[key] = _merge(written, value, f"{path}.")
        return out
    if isinstance(resolved, list):
        raw_list = raw if isinstance(raw, list) and len(raw) == len(resolved) else [None] * len(resolved)
        return [written if _refers_to_secret(written) else _merge(written, value, prefix)
                for written, value in zip(raw_list, resolved)]  # fmt: skip
    if isinstance(resolved, str):
        return mask_text(resolved)
    return resolved


def mask_overrides(overrides: Iterable[str]) -> List[str]:
    """Hydra overrides with secret values masked: ``db.password=x`` -> ``db.password=***`` (also ``+``, ``++``, ``~``)."""
    out = []
    for override in overrides:
        key, sep, value = str(override).partition("=")
        if sep and value and is_secret_key(key.strip()) and not _keeps_raw(value):
            out.append(f"{key}={MASK}")
        else:
            out.append(mask_text(str(override)) if sep else str(override))
    return out


def masked_keys(overrides: Iterable[str]) -> List[str]:
    """The keys of the overrides whose value is masked, in order (``+db.password=***`` -> ``+db.password``)."""
    return [o.partition("=")[0] for o in overrides if o.partition("=")[2] == MASK]


def mask_argv(argv: Sequence[str]) -> List[str]:
    """A command line with secrets masked: ``db.password=x``, ``--password=x`` and ``--password x``."""
    out: List[str] = []
    hide_next = False
    for arg in map(str, argv):
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        if arg.startswith("-") and "=" not in arg and len(arg) > 1 and is_secret_key(arg):
            hide_next = True
            out.append(arg)
            continue
        key, sep, value = arg.partition("=")
        if sep and value and " " not in key and is_secret_key(key) and not _keeps_raw(value):
            out.append(f"{key}={MASK}")
        else:
            out.append(mask_text(arg))
    return out


# KEY=VALUE inside free text: a key preceded by a start, a separator or a quote; a value up to
# the next separator (or a whole quoted string).
_ASSIGNMENT = re.compile(
    r"""(?P<key>(?<![\w.\-/+~])[+~-]*[A-Za-z_][\w.\-/]*)=(?P<value>\$\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}|'[^']*'|"[^"]*"|[^\s,'"\[\]{}]+)"""
)


def mask_text(text: str) -> str:
    """``text`` with every ``KEY=VALUE`` whose key looks secret masked (Hydra's ``override_dirname``, logs)."""
    if "=" not in text:
        return text

    def sub(m: "re.Match[str]") -> str:
        if is_secret_key(m.group("key")) and not _keeps_raw(m.group("value").strip("'\"")):
            return f"{m.group('key')}={MASK}"
        value = m.group("value")
        # A quoted value may hold assignments itself ('db.password=x,seed=1').
        quoted = value[:1] in ("'", '"')
        return f"{m.group('key')}={mask_text(value) if quoted else value}"

    return _ASSIGNMENT.sub(sub, text)


def mask_yaml_text(text: str) -> str:
    """A YAML document (Hydra's ``multirun.yaml``, ``.hydra/*.yaml``) with secret values masked."""
    import yaml

    # libyaml's safe loader where PyYAML has it: the same documents, ~30x sooner (every job of a
    # sweep reads its Hydra record here before its task starts).
    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    masked = mask_mapping(data)
    if masked == data:
        return text
    return yaml.safe_dump(masked, default_flow_style=False, sort_keys=False, allow_unicode=True)


def mask_yaml_file(path: "os.PathLike[str] | str") -> bool:
    """Rewrite the YAML file ``path`` with secrets masked (atomically); whether it changed.

    Never raises: a file that is missing is left alone, one that cannot be read or
    rewritten is said on stderr.
    """
    import sys
    from pathlib import Path

    from .locking import atomic_write

    file = Path(path)
    try:
        text = file.read_text()
    except FileNotFoundError:
        return False
    except OSError as err:
        print(f"hpctrack: warning: cannot mask secrets in {file}: {err}", file=sys.stderr)
        return False
    try:
        masked = mask_yaml_text(text)
    except Exception as err:  # not YAML we can read: leave it, say so
        print(f"hpctrack: warning: cannot mask secrets in {file}: {type(err).__name__}: {err}", file=sys.stderr)
        return False
    if masked == text:
        return False
    try:
        atomic_write(file, masked)
    except OSError as err:
        print(f"hpctrack: warning: cannot mask secrets in {file}: {err}", file=sys.stderr)
        return False
    return True


# A line assigning a value to a key, in YAML, INI, .env, Python or JSON: (indent and key)(separator)(value).
_LINE = re.compile(r"""^(?P<head>\s*(?:export\s+|-\s+)?["']?(?P<key>[A-Za-z_][\w.\-]*)["']?\s*)(?P<sep>[:=]\s*)"""
                   r"""(?P<value>.*?)(?P<tail>,?(?:\s+#.*)?\s*)$""")  # fmt: skip
_LITERAL = re.compile(r"""^(?:'[^']*'|"[^"]*"|[^\s'"()\[\]{}$]+)$""")


def _mask_line(line: str) -> Tuple[str, bool]:
    m = _LINE.match(line)
    if not m or not m.group("value") or not is_secret_key(m.group("key")):
        return line, False
    value = m.group("value")
    if not _LITERAL.match(value):  # an expression (os.environ[...]) or an interpolation: not a secret itself
        return line, False
    quote = value[0] if value[0] in "'\"" else ""
    return f"{m.group('head')}{m.group('sep')}{quote}{MASK}{quote}{m.group('tail')}", True


#: ``"key": "value"``, ``key='value'``, ``["KEY"] = "value"`` anywhere in a line: a quoted literal value.
_QUOTED_PAIR = re.compile(r"""(?P<q>["']?)(?P<key>[A-Za-z_][\w.\-]*)(?P=q)\s*\]?\s*(?P<sep>:|=(?!=))\s*"""
                          r"""(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")  # fmt: skip
#: Credentials in a URL (``scheme://user:pass@host``) and bearer tokens, wherever they appear.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^\s'\"<>]*@(?=[\w\[])")
_BEARER = re.compile(r"(?i)\b(?P<word>bearer|basic|token)\s+[A-Za-z0-9\-._~+/]{8,}=*")
#: A YAML key whose value follows on the next, more indented lines (a block scalar or a nested block).
_BLOCK_START = re.compile(r"""^(?P<indent>\s*)(?:-\s+)?["']?(?P<key>[A-Za-z_][\w.\-]*)["']?\s*:\s*"""
                          r"""(?P<value>[|>][-+0-9]*\s*(?:#.*)?$|[\[{].*$|\s*(?:#.*)?$)""")  # fmt: skip


def _mask_content(line: str) -> Tuple[str, bool]:
    """One line of a file with every secret it shows masked: (line, whether anything was masked)."""
    masked, hit = _mask_line(line)

    def pair(m: "re.Match[str]") -> str:
        value = m.group("value")
        if not is_secret_key(m.group("key")) or value[1:-1] == MASK:
            return m.group(0)
        return m.group(0)[: m.start("value") - m.start()] + value[0] + MASK + value[0]

    masked = _QUOTED_PAIR.sub(pair, masked)
    masked = _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{MASK}@", masked)
    masked = _BEARER.sub(lambda m: f"{m.group('word')} {MASK}", masked)
    return masked, hit or masked != line


def mask_diff(diff: str) -> Tuple[str, int]:
    """A unified diff with the secrets its lines show masked; (diff, lines masked).

    Masked: the values of keys that look secret, assigned a literal on one line
    (``password: x``, ``TOKEN=x``, ``api_key = "x"``, ``{"token": "x"}``,
    ``os.environ["HF_TOKEN"] = "x"``), or on the more indented lines below the
    key (a YAML block scalar, list or mapping); credentials in URLs and bearer
    tokens anywhere. Expressions (``password = os.environ["PW"]``) and
    interpolations are kept.
    """
    out: List[str] = []
    count = 0
    block: Optional[int] = None  # the indent of a secret key whose value continues on deeper lines
    for line in diff.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        end = line[len(body) :]
        if body[:1] not in ("+", "-", " ") or body.startswith(("+++ ", "--- ")):
            block = None  # a new file or hunk
            out.append(line)
            continue
        content = body[1:]
        indent = len(content) - len(content.lstrip())
        if block is not None and content.strip() and indent > block:
            out.append(f"{body[0]}{' ' * indent}{MASK}{end}")
            count += 1
            continue
        if content.strip():
            block = None
        opened = _BLOCK_START.match(content)
        if opened and is_secret_key(opened.group("key")):
            value = opened.group("value") or ""
            if value[:1] in ("[", "{"):  # a flow collection: masked whole, to the end of the line
                content = content[: opened.start("value")] + MASK
                out.append(body[0] + content + end)
                count += 1
                block = len(opened.group("indent"))
                continue
            block = len(opened.group("indent"))
        masked, hit = _mask_content(content)
        if hit:
            out.append(body[0] + masked + end)
            count += 1
            continue
        out.append(line)
    return "".join(out), count


def mask_json_argv(text: Optional[str]) -> Optional[str]:
    """A JSON-encoded command line (``HPCTRACK_COMMAND``) with its secrets masked."""
    if not text:
        return text
    try:
        argv = json.loads(text)
    except ValueError:
        return mask_text(text)
    return json.dumps(mask_argv(argv)) if isinstance(argv, list) else mask_text(text)
