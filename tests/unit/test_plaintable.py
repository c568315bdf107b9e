"""The box-less tables the CLI prints are laid out as rich lays them out, character for character."""

from __future__ import annotations

import io

import pytest
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hpctrack.cli._plaintable import plain_lines


def _table(title: bool = True) -> Table:
    table = Table(title="sweep 2026-x (名前) · slurm" if title else None, title_justify="left", box=None,
                  header_style="bold")  # fmt: skip
    table.add_column("job", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("value", justify="right")
    table.add_column("mid", justify="center")
    table.add_column("error / note")
    table.add_row("0", "[green]COMPLETED", "0.5", "x", "")
    table.add_row("10", "[red]FAILED[/] [yellow](stalled)", "12.25 ± ", "wide", escape("boom: [red]x[/red] é漢字"))
    table.add_row("7", "[dim]PENDING", "", "", ":smile: [dim]waiting")
    table.add_row("1001", "CANCELLED", "nan ±  ", "  ", "trailing   ")
    return table


def _printed(renderable, terminal: bool) -> str:
    out = io.StringIO()
    Console(file=out, width=300, force_terminal=terminal, color_system="truecolor" if terminal else None).print(
        renderable
    )
    return out.getvalue()


@pytest.mark.parametrize("terminal", [False, True])
@pytest.mark.parametrize("title", [True, False])
def test_the_plain_layout_is_what_rich_prints(terminal, title):
    out = io.StringIO()
    console = Console(file=out, width=300, force_terminal=terminal, color_system="truecolor" if terminal else None)
    lines = plain_lines(_table(title), console)
    assert lines is not None
    console.print(lines)
    assert out.getvalue() == _printed(_table(title), terminal)


def test_a_table_it_does_not_lay_out_is_left_to_rich():
    boxed = _table()
    boxed.box = box.SIMPLE
    narrow = Table(title="a title far wider than the table's one column", box=None)
    narrow.add_column("x")
    narrow.add_row("1")
    console = Console(file=io.StringIO(), width=300)
    assert plain_lines(boxed, console) is None
    assert plain_lines(narrow, console) is None
