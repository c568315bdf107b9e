"""A box-less rich ``Table`` laid out at its natural width without rich's table machinery.

rich measures and renders every cell of a table through several layers (padding, wrapping,
cropping), about a millisecond per row: seconds for the status or results table of a
sweep of a thousand runs. The tables hpctrack prints have no box, no wrapping and every
column at its widest cell, so each line is simply its padded cells side by side; this
builds those lines as one ``Text`` and prints it once, the same characters rich would print.
A table with anything else (a box, fixed widths, a title wider than the table) is left to rich.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

__all__ = ["plain_lines"]


def _handled(table: "Table") -> bool:
    """Whether the table is one whose layout :func:`plain_lines` reproduces."""
    return (
        table.box is None
        and not table.show_footer
        and str(table.style or "none") == "none"
        and table.padding == (0, 1, 0, 1)
        and table.pad_edge
        and not table.collapse_padding
        and not table.expand
        and table.width is None
        and not table.caption
        and not table.row_styles
        and not any(r.style or r.end_section for r in table.rows)
        and all(
            c.width is None and c.min_width is None and c.max_width is None and c.ratio is None and not c.style
            for c in table.columns
        )  # fmt: skip
    )


def plain_lines(table: "Table", console: "Console") -> Optional["Text"]:
    """The table's lines (title, header, rows) as one ``Text``, or None for a table left to rich."""
    from rich.cells import cell_len
    from rich.text import Text

    if not _handled(table):
        return None
    if console.color_system is None:
        # No style reaches the output (a pipe, a file, NO_COLOR): the same characters from plain
        # strings, without a styled Text per cell (a third of a second for a thousand rows).
        return _colourless(table, console)

    def to_text(value: Any) -> Optional[Text]:
        if isinstance(value, Text):
            return value
        if isinstance(value, str):
            if "[" not in value and ":" not in value:
                return Text(value)  # no markup, no emoji code: what render_str would make, sooner
            return console.render_str(value, highlight=False)  # rich highlights no cell of a table
        return None

    columns: List[List[Text]] = []
    for column in table.columns:
        found = [to_text(value) for value in ([column.header] if table.show_header else []) + list(column.cells)]
        cells = [c for c in found if c is not None and "\n" not in c.plain]
        if len(cells) < len(found):
            return None  # a renderable other than text, or a cell of several lines: rich lays it out
        columns.append(cells)
    if not columns:
        return None
    widths = [max((cell_len(c.plain) for c in cells), default=0) for cells in columns]
    total = sum(widths) + 2 * len(widths)
    out = Text()
    if table.title is not None:
        title = to_text(table.title)
        if title is None or "\n" in title.plain or cell_len(title.plain) > total:
            return None
        title = title.copy()
        title.align(table.title_justify or "center", total)  # type: ignore[arg-type]
        title.stylize_before(console.get_style(table.title_style or "table.title"), 0, len(title))
        out.append_text(title)
        out.append("\n")
    rows = len(columns[0])
    for row in range(rows):
        header = table.show_header and row == 0
        for width, cells, column in zip(widths, columns, table.columns):
            # A header cell is styled whole, padding included; a body cell's padding has no style.
            style = (console.get_style(table.header_style or "") + console.get_style(column.header_style or "")
                     if header else None)  # fmt: skip
            text = cells[row].copy()
            if column.justify in ("right", "center"):
                text.rstrip()  # as rich justifies: trailing blanks go, the cell is aligned without them
            gap = width - cell_len(text.plain)
            left = gap if column.justify == "right" else gap // 2 if column.justify == "center" else 0
            text.pad_left(left)
            text.pad_right(gap - left)
            if style is not None:
                text.stylize_before(style, 0, len(text))
            out.append(" ", style=style)
            out.append_text(text)
            out.append(" ", style=style)
        if row < rows - 1:
            out.append("\n")
    return out


def _colourless(table: "Table", console: "Console") -> Optional["Text"]:
    """:func:`plain_lines` for a console that prints no style: the same characters, as one unstyled ``Text``."""
    from rich.cells import cell_len
    from rich.text import Text

    seen: dict = {}

    def plain(value: Any) -> Optional[str]:
        if isinstance(value, Text):
            return value.plain
        if not isinstance(value, str):
            return None
        if "[" not in value and ":" not in value:
            return value
        if value not in seen:  # markup or an emoji code: rendered once per distinct cell (states repeat)
            seen[value] = console.render_str(value, highlight=False).plain
        return seen[value]

    columns: List[List[str]] = []
    for column in table.columns:
        values = ([column.header] if table.show_header else []) + list(column.cells)
        found = [plain(value) for value in values]
        cells = [c for c in found if c is not None and "\n" not in c]
        if len(cells) < len(found):
            return None  # a renderable other than text, or a cell of several lines: rich lays it out
        columns.append(cells)
    if not columns:
        return None
    widths = [max((cell_len(c) for c in cells), default=0) for cells in columns]
    total = sum(widths) + 2 * len(widths)
    lines: List[str] = []
    if table.title is not None:
        title = plain(table.title)
        if title is None or "\n" in title or cell_len(title) > total:
            return None
        lines.append(_aligned(title, total, table.title_justify or "center"))
    justify = [column.justify for column in table.columns]
    for row in range(len(columns[0])):
        parts = []
        for width, cells, how in zip(widths, columns, justify):
            text = cells[row].rstrip() if how in ("right", "center") else cells[row]
            parts.append(" " + _aligned(text, width, how) + " ")
        lines.append("".join(parts))
    return Text("\n".join(lines))


def _aligned(text: str, width: int, how: str) -> str:
    """``text`` padded with blanks to ``width`` cells, as rich justifies a table cell."""
    from rich.cells import cell_len

    gap = width - cell_len(text)
    left = gap if how == "right" else gap // 2 if how == "center" else 0
    return " " * left + text + " " * (gap - left)
