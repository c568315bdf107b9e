"""Text from a store or a manifest made safe for a terminal: control characters shown, never obeyed.

A sweep name, a param key or value, a metric name, a tag or an error line is
whatever the job, or someone with write access to the root, put there. Printed
raw, ``ESC [ 2 J`` clears the screen, an OSC sequence retitles the window or
writes to the clipboard, ``\\r`` and backspace overwrite what was printed, a
newline forges a line of output, and U+202E reverses the text after it. Every
human-readable renderer of the CLI passes such text through :func:`printable`
(or :func:`markup` for rich tables, whose ``[...]`` is markup too), which
writes each of those characters as a visible escape (``\\x1b``, ``\\n``,
``\\u202e``). Machine-readable outputs (JSON, CSV, parquet) keep the exact values.
"""

from __future__ import annotations

from typing import Any, Dict

__all__ = ["printable", "printable_block", "markup"]

#: Bidirectional controls (embeddings, overrides, isolates, marks) and the Unicode line separators.
_BIDI_AND_SEPARATORS = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(code: int) -> str:
    char = chr(code)
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


#: C0 controls, DEL, C1 controls (0x9b is a one-byte CSI), bidi controls and line separators.
_ESCAPES: Dict[int, str] = {code: _escape(code) for code in (*range(0x20), *range(0x7F, 0xA0), *_BIDI_AND_SEPARATORS)}
_BLOCK_ESCAPES: Dict[int, str] = {code: text for code, text in _ESCAPES.items() if chr(code) not in "\n\t"}


def printable(value: Any) -> str:
    """``str(value)`` as one line with every control character written as a visible escape."""
    return str(value).translate(_ESCAPES)


def printable_block(text: str) -> str:
    """Multi-line ``text`` (a diff, a config) with its newlines and tabs kept, every other control escaped."""
    return text.translate(_BLOCK_ESCAPES)


def markup(value: Any) -> str:
    """:func:`printable`, then escaped for rich markup: a cell shows ``[red]`` rather than turning red."""
    text = printable(value)
    if "[" not in text and "\\" not in text:
        return text  # nothing rich could read as markup (most cells: numbers, names)
    from rich.markup import escape

    return escape(text)
