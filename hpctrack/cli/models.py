"""``hpctrack models ...``: the model registry (:mod:`hpctrack.models`); each command is one library call."""

from __future__ import annotations

import sys
import time
from typing import Any, Dict, Optional, Sequence

import click

from ._base import cli, echo, echo_json, handle_errors, root_option

_FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)


def _when(t: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(t))) if t else "-"


@cli.group("models")
def models() -> None:
    """The model registry: register a run's model, name versions with aliases, load them by name.

    A version is NAME (the newest not deleted), NAME/3 (or NAME@v3) or NAME@ALIAS.
    """


@models.command("register")
@click.argument("run")
@click.option("--name", required=True, help="The model's name (letters, digits, '.', '_', '-').")
@click.option("--artifact", default=None, metavar="PATH", help="A file or directory of the run (relative to its "
              "directory, e.g. artifacts/model.npz), or the name of an artifact it logged.")  # fmt: skip
@click.option("--checkpoint", default=None, metavar="latest|N", help="The run's newest checkpoint, or number N.")
@click.option("--alias", "aliases", multiple=True, metavar="ALIAS", help="Point ALIAS at the new version (repeatable).")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag of the version (repeatable).")
@click.option(
    "--parent", "parents", multiple=True, metavar="REF", help="A version it was fine-tuned from (repeatable)."
)
@click.option("--description", default=None, help="One line about the version.")
@root_option
@handle_errors
def register(run: str, name: str, artifact: Optional[str], checkpoint: Optional[str], aliases: Sequence[str],
             tags: Sequence[str], parents: Sequence[str], description: Optional[str], root: Optional[str]) -> None:  # fmt: skip
    """Register a file of RUN (SWEEP/JOB, e.g. latest/3) as the next version of model --name."""
    from ..labels import parse_tag_args
    from ..models import register as register_version

    if (artifact is None) == (checkpoint is None):
        raise click.UsageError("give exactly one of --artifact PATH (relative to the run directory) and --checkpoint "
                               "latest|N")  # fmt: skip
    values, empty = parse_tag_args(tags)
    if empty:
        raise click.BadParameter(f"tag {empty[0]!r} has no value: write KEY=VALUE", param_hint="--tag")
    v = register_version(run, name=name, artifact=artifact, checkpoint=checkpoint, aliases=aliases, tags=values,
                         parents=parents, description=description, root=root)  # fmt: skip
    size = sum(int(f["size"]) for f in v.files.values())
    echo(f"registered {v.ref} from run {v.lineage['run']['run_id']}: {v.payload} ({len(v.files)} file"
         f"{'s' if len(v.files) != 1 else ''}, {size / 1e6:.1f} MB)" + (f"; aliases: {', '.join(v.aliases)}"
                                                                          if v.aliases else ""))  # fmt: skip
    for note in v.notes:
        echo(f"note: {note}", err=True)


@models.command("ls")
@_FORMAT
@root_option
@handle_errors
def ls(fmt: str, root: Optional[str]) -> None:
    """Every model: versions, the latest, aliases."""
    from ..models import list_models

    rows = list_models(root=root)
    if fmt == "json":
        echo_json(rows)
        return
    if not rows:
        echo("no models yet (`hpctrack models register RUN --artifact PATH --name NAME`)")
    for r in rows:
        if r.get("problems"):
            echo(f"{r['name']}  problem: {r['problems'][0]}" + (f" (and {len(r['problems']) - 1} more; see "
                 "`hpctrack models verify`)" if len(r["problems"]) > 1 else ""))  # fmt: skip
            continue
        aliases = " ".join(f"{a}={v}" for a, v in sorted(r["aliases"].items())) or "-"
        echo(f"{r['name']}  versions: {r['versions']}  latest: {r['latest'] or '-'}  aliases: {aliases}"
             + (f"  ({r['deleted']} deleted)" if r["deleted"] else ""))  # fmt: skip


@models.command("versions")
@click.argument("name")
@click.option("--where", default=None, help="Keep versions matching a filter (as `table --filter`), e.g. "
              "\"val/acc:max > 0.9 and tags.task == 'cls'\".")  # fmt: skip
@click.option("--sort", "sort", multiple=True, metavar="[-]COLUMN", help="Sort by COLUMN (-COLUMN: descending).")
@click.option("--deleted", is_flag=True, help="Include deleted versions.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]), default="table",
              show_default=True)  # fmt: skip
@root_option
@handle_errors
def versions(name: str, where: Optional[str], sort: Sequence[str], deleted: bool, fmt: str,
             root: Optional[str]) -> None:  # fmt: skip
    """The versions of model NAME with their aliases, run, tags and metrics at registration."""
    from ..aggregate import export_table
    from ..models import versions as version_table
    from .render import print_frame

    frame = version_table(name, where=where, sort=list(sort) or None, deleted=deleted, root=root)
    if fmt == "table":
        print_frame(frame)
    else:
        click.echo(export_table(frame, fmt), nl=False)


def _state(v: Any) -> str:
    """What ``show`` can say of a version's payload without reading it: sizes and links only."""
    if v.deleted is not None:
        return "DELETED" + (" (payload purged)" if v.purged else "")
    verify = f"`hpctrack models verify {v.ref}` checks it"
    damaged = v.quick_problems()
    if damaged:
        return (
            f"DAMAGED: {damaged[0]}" + (f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else "") + f"; {verify}"
        )
    return f"sizes match; contents not verified: {verify}"


def _print_version(d: Dict[str, Any], state: str) -> None:
    lin, src = d["lineage"], d["source"]
    run, code = lin.get("run") or {}, lin.get("code") or {}
    lines = [
        f"model {d['ref']}  ({state})",
        f"  path:        {d['path']}" if not d["purged"] else "  path:        (purged by `hpctrack models gc --purge`)",
        f"  aliases:     {', '.join(d['aliases']) or '-'}",
        f"  registered:  {_when(d['created'])} by {d['by']}@{d['host']}",
        f"  tags:        {' '.join(f'{k}={v}' for k, v in sorted(d['tags'].items())) or '-'}",
        f"  run:         {run.get('run_id')}  (sweep {run.get('sweep_name') or run.get('sweep_id')}, job "
        f"{run.get('job')}, {run.get('state')})",
        f"  overrides:   {' '.join(run.get('overrides') or []) or '-'}",
        f"  source:      {src.get('artifact') or 'checkpoint'}"
        + (f"  (checkpoint {src['checkpoint']['seq']}, step {src['checkpoint']['step']})" if src.get("checkpoint")
           else ""),
        f"  code:        commit {code.get('commit') or '-'}" + (" (dirty)" if code.get("dirty") else "")
        + f"  diff {code.get('diff_sha256') or '-'}  snapshot {code.get('snapshot_digest') or '-'}",
        f"  packages:    {lin.get('packages_count', 0)} (sha256 {lin.get('packages_sha256') or '-'})",
        f"  parents:     {', '.join(d['parents']) or '-'}",
    ]  # fmt: skip
    lines += [f"  problem:     {p}" for p in d.get("problems") or []]
    if d.get("description"):
        lines.append(f"  description: {d['description']}")
    if d["deleted"]:
        lines.append(f"  deleted:     {_when(d['deleted'].get('time'))} by {d['deleted'].get('by')}"
                     + (f": {d['deleted']['reason']}" if d["deleted"].get("reason") else ""))  # fmt: skip
    metrics = lin.get("metrics") or {}
    if metrics:
        lines.append("  metrics at registration:")
        lines += [f"    {k} = {v}" for k, v in sorted(metrics.items())]
    config = lin.get("config") or {}
    if config:
        lines.append("  config:")
        lines += [f"    {k} = {v}" for k, v in sorted(config.items())]
    for line in lines:
        echo(line)


@models.command("show")
@click.argument("ref")
@_FORMAT
@root_option
@handle_errors
def show(ref: str, fmt: str, root: Optional[str]) -> None:
    """Version REF with its lineage: run, sweep, config, code, packages, metrics, parents."""
    from ..models import get_version

    version = get_version(ref, root=root)
    data = version.to_json()
    if fmt == "json":
        echo_json(data)
    else:
        _print_version(data, _state(version))


@models.command("alias")
@click.argument("name")
@click.argument("version")
@click.argument("alias")
@click.option("--reason", default=None, help="Why (kept in the history).")
@root_option
@handle_errors
def alias(name: str, version: str, alias: str, reason: Optional[str], root: Optional[str]) -> None:
    """Point ALIAS of model NAME at VERSION (a number, v<N>, or latest)."""
    from ..models import get_version, set_alias

    old = set_alias(name, version, alias, reason=reason, root=root)
    now = get_version(f"{name}@{alias}", root=root).version
    echo(f"{name}@{alias} -> {now}" + (f" (was {old})" if old is not None and old != now else
                                        " (unchanged)" if old == now else ""))  # fmt: skip


@models.command("unalias")
@click.argument("name")
@click.argument("alias")
@click.option("--reason", default=None, help="Why (kept in the history).")
@root_option
@handle_errors
def unalias(name: str, alias: str, reason: Optional[str], root: Optional[str]) -> None:
    """Remove ALIAS from model NAME."""
    from ..models import remove_alias

    old = remove_alias(name, alias, reason=reason, root=root)
    echo(f"removed {name}@{alias} (it held {old})")


@models.command("tag")
@click.argument("ref")
@click.argument("tags", nargs=-1, required=True)
@root_option
@handle_errors
def tag(ref: str, tags: Sequence[str], root: Optional[str]) -> None:
    """Set tags of version REF: key=value ...; key= removes one."""
    from ..labels import parse_tag_args
    from ..models import set_tag

    values, gone = parse_tag_args(tags)
    now: Dict[str, str] = {}
    for key, value in [*values.items(), *[(k, None) for k in gone]]:
        now = set_tag(ref, key, value, root=root)
    echo(f"{ref}: " + (" ".join(f"{k}={v}" for k, v in sorted(now.items())) or "no tags"))


def _tags_text(tags: Any) -> str:
    """``stage=prod task=cls`` (``-``: none), as ``models tag`` takes them."""
    if not isinstance(tags, dict):
        return str(tags) if tags else "-"
    return " ".join(f"{k}={v}" for k, v in sorted(tags.items())) or "-"


def _event_line(e: Dict[str, Any]) -> str:
    kind, what = e.get("kind"), ""
    if kind == "register":
        what = f"registered version {e.get('version')}"
    elif kind == "alias":
        what = f"{e.get('alias')}: {e.get('old') if e.get('old') is not None else '-'} -> {e.get('new')}"
    elif kind == "unalias":
        what = f"{e.get('alias')}: {e.get('old')} -> removed"
    elif kind == "tag":
        what = f"tags of {e.get('version')}: {_tags_text(e.get('old'))} -> {_tags_text(e.get('new'))}"
    elif kind in ("delete", "purge"):
        what = f"{'deleted' if kind == 'delete' else 'purged the payload of'} version {e.get('version')}"
    who = f"{e.get('by')}@{e.get('host')}" + (f" job {e['job']}" if e.get("job") else "")
    return f"{_when(e.get('time'))}  {what}  ({who})" + (f"  reason: {e['reason']}" if e.get("reason") else "")


@models.command("history")
@click.argument("name")
@click.option("--alias", "alias_name", default=None, help="Only the changes of this alias.")
@click.option("--at", "at", default=None, metavar="WHEN",
              help="Which version each alias held at WHEN (2026-12-01T12:00, or 30d back).")  # fmt: skip
@_FORMAT
@root_option
@handle_errors
def history(name: str, alias_name: Optional[str], at: Optional[str], fmt: str, root: Optional[str]) -> None:
    """Every change of model NAME (register, alias moves, tags, deletions): who, where, when, why."""
    from datetime import datetime

    from ..models import aliases_at, parse_moment
    from ..models import history as events

    if at is None:
        found = events(name, alias=alias_name, root=root)
        if fmt == "json":
            echo_json(found)
        for e in found if fmt == "text" else []:
            echo(_event_line(e))
        return
    held = aliases_at(name, at, alias=alias_name, root=root)
    moment = datetime.fromtimestamp(parse_moment(at)).isoformat(timespec="seconds")
    if moment != at.strip():  # a duration back from now, or a shorter form: say which moment it meant
        moment += f" ({at.strip()})"
    if fmt == "json":
        echo_json({a: (ev["new"] if ev else None) for a, ev in held.items()})
        return
    if not held:
        echo(f"model {name} has no alias" + (f" {alias_name!r}" if alias_name else "") + " in its history")
    for a, ev in held.items():
        if ev is None:
            echo(f"{name}@{a} at {moment}: none")
            continue
        why = f": {ev['reason']}" if ev.get("reason") else ""
        echo(
            f"{name}@{a} at {moment}: version {ev['new']}  (since {_when(ev['time'])}, set by {ev['by']}@{ev['host']}{why})"
        )


@models.command("path")
@click.argument("ref")
@root_option
@handle_errors
def path(ref: str, root: Optional[str]) -> None:
    """The read-only path of REF's payload, after checking every file's sha256 (for scripts)."""
    from ..models import get_path

    click.echo(str(get_path(ref, root=root)))


@models.command("download")
@click.argument("ref")
@click.argument("dest")
@root_option
@handle_errors
def download(ref: str, dest: str, root: Optional[str]) -> None:
    """Copy REF's payload into directory DEST, checking every byte against its sha256."""
    from ..models import download as fetch

    echo(f"downloaded to {fetch(ref, dest, root=root)}")


@models.command("verify")
@click.argument("ref", required=False)
@root_option
@handle_errors
def verify(ref: Optional[str], root: Optional[str]) -> None:
    """Check every version (of model REF, or version REF): sizes, sha256, read-only; exit 1 on a problem."""
    from ..models import verify as check

    problems = check(ref, root=root)
    for line in problems:
        echo(line)
    if problems:
        echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''}", err=True)
        sys.exit(1)
    echo("registry ok" if ref is None else f"{ref} ok")


@models.command("delete")
@click.argument("ref")
@click.option("--reason", default=None, help="Why (kept in the history).")
@root_option
@handle_errors
def delete(ref: str, reason: Optional[str], root: Optional[str]) -> None:
    """Delete version REF (NAME/N): a tombstone; `models gc --purge` removes its files."""
    from ..models import delete as tombstone

    v = tombstone(ref, reason=reason, root=root)
    echo(f"deleted {v.ref}; its files stay until `hpctrack models gc --purge`"
         + ("" if v.notes else "; its run is no longer pinned for it"))  # fmt: skip
    for note in v.notes:
        echo(f"note: {note}", err=True)


@models.command("gc")
@click.option("--purge", is_flag=True, help="Also remove the files of deleted versions.")
@root_option
@handle_errors
def gc(purge: bool, root: Optional[str]) -> None:
    """Remove abandoned registrations and temporary files, write events a killed process owed."""
    from ..models import gc as collect

    done = collect(purge=purge, root=root)
    for line in [*done.staging_removed, *done.repaired]:
        echo(f"  {line}")
    echo(f"removed {len(done.staging_removed)} abandoned registration(s) and {done.temp_files_removed} temporary "
         f"file(s); repaired {len(done.repaired)}; purged {len(done.purged)} deleted version(s)"
         + (f": {', '.join(done.purged)}" if done.purged else ""))  # fmt: skip
