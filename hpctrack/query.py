"""The filter language of ``table --filter``, ``Sweep.table(where=)`` and ``compare --filter``.

A filter is data, never code: it is parsed here into a small expression tree
and evaluated over a table's columns with pandas/numpy operations. Nothing of
it reaches ``eval``, ``DataFrame.query`` or Python's attribute lookup, so a
filter can name columns and compare values, and nothing else. Everything that
reads a filter (the CLI, the Python API, later ``runs --where``, the registry
and the dashboard) parses it here.

Grammar (lowest precedence first)::

    expr    := or
    or      := and (("or" | "|") and)*
    and     := not (("and" | "&") not)*
    not     := ("not" | "~") not | compare
    compare := sum ((== != < <= > >= | in | not in) sum)*     # chains: 0 < x <= 1
    sum     := term (("+" | "-") term)*
    term    := unary (("*" | "/" | "//" | "%") unary)*
    unary   := ("-" | "+") unary | power
    power   := atom ("**" unary)?
    atom    := NUMBER | STRING | true | false | null | inf | nan
             | COLUMN | `any column name` | "(" expr ")" | "[" literal, ... "]"

A COLUMN is written bare, dots, slashes and colons included (``optimizer.lr``,
``val/acc:max``, ``loss:at=100``): at each operand the longest column name of
the table that stands there is taken, unless a longer bare name stands there
(then that name must be a column). So ``val/acc:max > 0.9`` needs no quoting,
and ``a-b`` is a minus when ``a`` and ``b`` are columns. Backticks quote any
name (`` `2nd stage` ``); a column called like a keyword (``in``, ``null``)
needs them. Strings take single or double quotes.

Values: numbers compare with numbers, text with text; a row whose value is of
the other kind, or missing (null, NaN), matches no ``==``, ``<``, ``<=``, ``>``,
``>=`` and ``in``, and matches every ``!=`` and ``not in``; ``x == null`` (or
``x == nan``) selects the rows where ``x`` is missing.

Attribute access, calls, subscripts, ``@`` variables, dunder names, assignment,
lambdas, comprehensions and f-strings are refused with a one-line message
saying what is allowed.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FilterError",
    "Expr",
    "parse",
    "filter_frame",
    "matches",
    "SYNTAX_HELP",
    "SYNTAX_EXAMPLE",
    "MAX_FILTER_LENGTH",
]

#: The example condition SYNTAX_HELP gives (on a sweep's columns); other tables swap in one of theirs.
SYNTAX_EXAMPLE = "optimizer.lr < 0.1 and state == 'COMPLETED'"
SYNTAX_HELP = (f"write conditions on columns, e.g. \"{SYNTAX_EXAMPLE}\": "
               "comparisons (== != < <= > >= in, not in), and/or/not, + - * / // % **, numbers, "
               "'strings', [lists], true/false/null")  # fmt: skip

#: Longer filters are refused: no sensible filter is this long, and a bound keeps parsing cheap.
MAX_FILTER_LENGTH = 10_000
#: Parentheses, unary signs and ``not`` nest at most this deep (Python's own recursion limit stays far away).
_MAX_DEPTH = 100


class FilterError(ConfigError):
    """A filter that is not in the filter language, or names an unknown column."""


# -- the expression tree ----------------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    """A node of a parsed filter: ``op`` with ``args`` (sub-expressions), or a leaf.

    ``op`` is one of ``col`` (args: the name), ``lit`` (the value), ``list`` (a
    tuple of values), ``and``, ``or``, ``not``, ``neg``, ``pos``, ``cmp``
    (comparison, left, right) and the arithmetic operators.
    """

    op: str
    args: Tuple[Any, ...] = ()

    @property
    def columns(self) -> List[str]:
        """The column names the filter reads, in order of appearance."""
        out: Dict[str, None] = {}

        def walk(node: "Expr") -> None:
            if node.op == "col":
                out[node.args[0]] = None
            for arg in node.args:
                if isinstance(arg, Expr):
                    walk(arg)

        walk(self)
        return list(out)

    def evaluate(self, frame: "pd.DataFrame") -> "pd.Series":
        """A boolean Series over ``frame``'s rows (see the module docstring for missing values).

        Raises
        ------
        FilterError
            The filter is a value rather than a condition, or mixes kinds that
            cannot be combined (arithmetic on text).
        """
        import pandas as pd

        try:
            value = _eval(self, frame)
        except (TypeError, ValueError, OverflowError, ZeroDivisionError) as err:
            if isinstance(err, FilterError):
                raise
            raise FilterError(f"cannot evaluate the filter: {' '.join(str(err).split())}") from None
        if not isinstance(value, pd.Series):
            value = pd.Series([value] * len(frame), index=frame.index, dtype=object)
        if not _is_boolean(value):
            raise FilterError(f"the filter must be a condition (true or false per row), not a value; {SYNTAX_HELP}")
        return _bools(value)


# -- tokens -------------------------------------------------------------------------------------

_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
#: A bare name as written: identifier parts joined by dots or slashes, then an optional ``:stat``
#: or ``:at=STEP`` selector suffix. Anything longer needs to be a known column (or backticks).
_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[./][A-Za-z0-9_]+)*(?::[A-Za-z_]+(?:=-?\d+)?)?")
_OPERATORS = ("**", "//", "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "(", ")", "[", "]", ",",
              "&", "|", "~")  # fmt: skip
_LITERALS = {"true": True, "True": True, "false": False, "False": False, "null": None, "None": None,
             "inf": math.inf, "nan": math.nan}  # fmt: skip
_KEYWORDS = {"and", "or", "not", "in", *_LITERALS}
#: Python words a filter may be mistaken for, each with what to write instead.
_REFUSED_WORDS = {
    "lambda": "lambdas are not allowed in a filter",
    "for": "comprehensions are not allowed in a filter; write a [list] of literal values",
    "if": "'if' is not allowed in a filter; combine conditions with and/or",
    "else": "'else' is not allowed in a filter; combine conditions with and/or",
    "is": "'is' is not allowed in a filter; write == or != (x == null for a missing value)",
    "import": "'import' is not allowed in a filter",
    "from": "'from' is not allowed in a filter",
    "yield": "'yield' is not allowed in a filter",
    "await": "'await' is not allowed in a filter",
    "def": "'def' is not allowed in a filter",
    "class": "'class' is not allowed in a filter",
    "del": "'del' is not allowed in a filter",
    "global": "'global' is not allowed in a filter",
    "exec": "'exec' is not allowed in a filter",
    "eval": "'eval' is not allowed in a filter",
}
_STRING_PREFIX = re.compile(r"(?i)(?:f|b|r|u|rb|br|fr|rf)(?=['\"])")


@dataclass(frozen=True)
class _Token:
    kind: str  # "num", "str", "col", "kw", "op", "end"
    value: Any
    pos: int


def _dunder(name: str) -> bool:
    """Whether ``name`` holds a Python dunder part (``__class__``, ``x.__dict__``, ``__import__``)."""
    return any(part.startswith("__") for part in re.split(r"[./:]", name))


def _tokens(text: str, columns: Sequence[str]) -> List[_Token]:
    """Tokens of ``text``; bare column names are matched longest first against ``columns``."""
    known = sorted({c for c in columns if c}, key=len, reverse=True)
    out: List[_Token] = []
    i, n = 0, len(text)

    def operand_expected() -> bool:
        if not out:
            return True
        last = out[-1]
        return (last.kind == "op" and last.value not in (")", "]")) or (
            last.kind == "kw" and last.value in ("and", "or", "not", "in")
        )

    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
            continue
        if ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0:
            raise FilterError(f"control character {ch!r} at position {i}: remove it from the filter")
        if ch == "@":
            raise FilterError(f"'@' (a Python variable) is not allowed in a filter; {SYNTAX_HELP}")
        if ch == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise FilterError(f"unclosed ` at position {i}: close the quoted column name with `")
            out.append(_Token("col", text[i + 1 : end], i))
            i = end + 1
            continue
        prefix = _STRING_PREFIX.match(text, i)
        if prefix and not (i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")):
            raise FilterError(f"{prefix.group()}-strings are not allowed in a filter (position {i}); "
                              "write a plain 'string'")  # fmt: skip
        if ch in "'\"":
            value, end = _string(text, i)
            out.append(_Token("str", value, i))
            i = end
            continue
        word_match = _BARE_NAME.match(text, i)
        word = word_match.group() if word_match else ""
        if operand_expected() and word not in _KEYWORDS:
            # The longest known column standing here, unless a longer bare name stands here:
            # `x==1` is x, `a-b` is a minus b, but `optimizer.lr` is never `optimizer` plus `.lr`.
            match = next((c for c in known if len(c) >= len(word) and text.startswith(c, i)), None)
            if match is not None and not _NUMBER.fullmatch(match):
                out.append(_Token("col", match, i))
                i += len(match)
                continue
        m = _NUMBER.match(text, i)
        if m:
            out.append(_Token("num", _number(m.group(), i), i))
            i = m.end()
            continue
        if word:
            if word in _KEYWORDS:
                out.append(_Token("kw", word, i))
            elif word in _REFUSED_WORDS:
                raise FilterError(f"{_REFUSED_WORDS[word]} (position {i}); {SYNTAX_HELP}")
            else:
                out.append(_Token("col", word, i))
            i += len(word)
            continue
        if ch == "." and i + 1 < n and (text[i + 1].isalpha() or text[i + 1] == "_"):
            raise FilterError(f"attribute access ('.{_BARE_NAME.match(text, i + 1).group()}' at position {i}) "  # type: ignore[union-attr]
                              f"is not allowed in a filter; {SYNTAX_HELP}")  # fmt: skip
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if op is None:
            if text.startswith(":=", i) or text.startswith("=", i):
                raise FilterError(f"assignment ('{text[i:i + 2] if ch == ':' else '='}' at position {i}) is not "
                                  "allowed in a filter; write '==' to compare")  # fmt: skip
            raise FilterError(f"unexpected {ch!r} at position {i}; {SYNTAX_HELP}")
        out.append(_Token("op", op, i))
        i += len(op)
    out.append(_Token("end", None, n))
    return out


def _number(text: str, pos: int) -> Union[int, float]:
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:  # an integer of thousands of digits
        raise FilterError(f"number at position {pos} is too long") from None


def _string(text: str, start: int) -> Tuple[str, int]:
    """The string literal starting at ``start`` (its quote) and the position after it."""
    quote = text[start]
    chars: List[str] = []
    i = start + 1
    escapes = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            chars.append(escapes.get(text[i + 1], text[i + 1]))
            i += 2
            continue
        if ch == quote:
            return "".join(chars), i + 1
        chars.append(ch)
        i += 1
    raise FilterError(f"unclosed string starting at position {start}: close it with {quote}")


# -- parser -----------------------------------------------------------------------------------

_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


class _Parser:
    def __init__(self, tokens: List[_Token], columns: Optional[Sequence[str]]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0
        self.columns = None if columns is None else set(columns)

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def at(self, kind: str, *values: Any) -> bool:
        return self.tok.kind == kind and (not values or self.tok.value in values)

    def expect(self, kind: str, value: Any) -> None:
        if not self.at(kind, value):
            shown = "the end" if self.tok.kind == "end" else repr(self.tok.value)
            raise FilterError(f"expected {value!r} at position {self.tok.pos}, found {shown}; {SYNTAX_HELP}")
        self.take()

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise FilterError(f"the filter nests deeper than {_MAX_DEPTH} levels; write it flatter")

    def parse(self) -> Expr:
        if self.at("end"):
            raise FilterError(f"the filter is empty; {SYNTAX_HELP}")
        node = self.or_()
        if not self.at("end"):
            self._unexpected()
        return node

    def _unexpected(self) -> None:
        tok = self.tok
        prev = self.tokens[self.i - 1] if self.i else None
        if tok.kind == "op" and tok.value == "(" and prev is not None and (
                prev.kind in ("col", "str", "num") or prev.value in (")", "]")):  # fmt: skip
            raise FilterError(f"function calls are not allowed in a filter (position {tok.pos}); {SYNTAX_HELP}")
        if tok.kind == "op" and tok.value == "[" and prev is not None and (
                prev.kind in ("col", "str", "num") or prev.value in (")", "]")):  # fmt: skip
            raise FilterError(f"subscripts are not allowed in a filter (position {tok.pos}); {SYNTAX_HELP}")
        if tok.kind == "end":
            raise FilterError(f"the filter ends too soon (at position {tok.pos}): something must follow "
                              f"{self.tokens[self.i - 1].value!r}; {SYNTAX_HELP}")  # fmt: skip
        raise FilterError(f"unexpected {tok.value!r} at position {tok.pos}; {SYNTAX_HELP}")

    def or_(self) -> Expr:
        # and/or chains are one node with every operand (a or b or c ...): evaluated in a loop,
        # so a long chain never deepens the recursion.
        parts = [self.and_()]
        while self.at("kw", "or") or self.at("op", "|"):
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else Expr("or", tuple(parts))

    def and_(self) -> Expr:
        parts = [self.not_()]
        while self.at("kw", "and") or self.at("op", "&"):
            self.take()
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else Expr("and", tuple(parts))

    def not_(self) -> Expr:
        if self.at("kw", "not") or self.at("op", "~"):
            self.take()
            self.deeper()
            node = Expr("not", (self.not_(),))
            self.depth -= 1
            return node
        return self.compare()

    def _not_in(self) -> bool:
        if not self.at("kw", "not"):
            return False
        nxt = self.tokens[self.i + 1]
        return nxt.kind == "kw" and nxt.value == "in"

    def compare(self) -> Expr:
        left = self.sum_()
        parts: List[Expr] = []
        while True:
            if self.at("op", *_COMPARISONS):
                op = self.take().value
            elif self.at("kw", "in"):
                self.take()
                op = "in"
            elif self._not_in():
                self.take()
                self.take()
                op = "not in"
            else:
                break
            right = self.sum_()
            if op in ("in", "not in") and right.op != "list":
                raise FilterError(f"'{op}' takes a [list] of values, e.g. optimizer.name in ['adam', 'sgd']")
            if op not in ("in", "not in") and (right.op == "list" or left.op == "list"):
                raise FilterError(f"a [list] goes after 'in' or 'not in', not after '{op}'")
            parts.append(Expr("cmp", (op, left, right)))
            left = right
        if not parts:
            return left
        return parts[0] if len(parts) == 1 else Expr("and", tuple(parts))  # 0 < x <= 1: 0 < x and x <= 1

    def sum_(self) -> Expr:
        node = self.term()
        depth = self.depth
        while self.at("op", "+", "-"):
            op = self.take().value
            self.deeper()  # each operator of a chain nests the tree one level: counted like brackets
            node = Expr(op, (node, self.term()))
        self.depth = depth
        return node

    def term(self) -> Expr:
        node = self.unary()
        depth = self.depth
        while self.at("op", "*", "/", "//", "%"):
            op = self.take().value
            self.deeper()
            node = Expr(op, (node, self.unary()))
        self.depth = depth
        return node

    def unary(self) -> Expr:
        if self.at("op", "-", "+"):
            op = "neg" if self.take().value == "-" else "pos"
            self.deeper()
            node = Expr(op, (self.unary(),))
            self.depth -= 1
            return node
        return self.power()

    def power(self) -> Expr:
        node = self.atom()
        if self.at("op", "**"):
            self.take()
            self.deeper()
            node = Expr("**", (node, self.unary()))
            self.depth -= 1
        return node

    def atom(self) -> Expr:
        tok = self.tok
        if tok.kind in ("num", "str"):
            self.take()
            return Expr("lit", (tok.value,))
        if tok.kind == "kw" and tok.value in _LITERALS:
            self.take()
            return Expr("lit", (_LITERALS[tok.value],))
        if tok.kind == "col":
            return self._column()
        if tok.kind == "op" and tok.value == "(":
            self.take()
            self.deeper()
            node = self.or_()
            self.expect("op", ")")
            self.depth -= 1
            return node
        if tok.kind == "op" and tok.value == "[":
            return self._list()
        self._unexpected()
        raise AssertionError("unreachable")  # pragma: no cover

    def _column(self) -> Expr:
        name = self.take().value
        if _dunder(name) and (self.columns is None or name not in self.columns):
            raise FilterError(f"dunder names are not allowed in a filter: {name!r}")
        if self.at("op", "("):
            raise FilterError(f"function calls are not allowed in a filter ({name}(...)); {SYNTAX_HELP}")
        if self.columns is not None and name not in self.columns:
            owner = next((c for c in sorted(self.columns, key=len, reverse=True)
                          if name.startswith(c + ".")), None)  # fmt: skip
            if owner is not None:
                raise FilterError(f"attribute access ({name[len(owner):]}) is not allowed in a filter; "
                                  f"{SYNTAX_HELP}")  # fmt: skip
            raise FilterError(f"unknown column {name!r}{self._column_hint(name)}; columns: {_shown(self.columns)}")
        if self.at("op", "["):
            raise FilterError(f"subscripts are not allowed in a filter ({name}[...]); {SYNTAX_HELP}")
        return Expr("col", (name,))

    def _column_hint(self, name: str) -> str:
        """What the user may have meant by the unknown column ``name`` (just taken), or ""."""
        named = self.tokens[self.i - 1]
        # `tags.my-key`: a bare name ends at "-" (a minus); a name going on right after it wanted backticks
        end = named.pos + len(name)
        joined = name
        at = self.i
        while (at + 1 < len(self.tokens) and self.tokens[at].kind == "op" and self.tokens[at].value == "-"
               and self.tokens[at].pos == end and self.tokens[at + 1].pos == end + 1
               and self.tokens[at + 1].kind in ("col", "kw", "num")):  # fmt: skip
            part = str(self.tokens[at + 1].value)
            joined, end, at = f"{joined}-{part}", end + 1 + len(part), at + 2
        if joined != name:
            return f" (a name with '-' is written in backticks: `{joined}`)"
        before = self.tokens[self.i - 2] if self.i >= 2 else None
        if before is not None and before.kind in ("op", "kw") and before.value in _COMPARISONS:
            return f" (a text value is quoted: '{name}')"
        import difflib

        close = difflib.get_close_matches(name, sorted(self.columns or ()), n=3, cutoff=0.6)
        return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""

    def _list(self) -> Expr:
        self.take()
        items: List[Any] = []
        while not self.at("op", "]"):
            item = self.sum_()
            if item.op in ("neg", "pos") and item.args[0].op == "lit" and _is_number(item.args[0].args[0]):
                value = item.args[0].args[0]
                item = Expr("lit", (-value if item.op == "neg" else value,))
            if item.op != "lit":
                raise FilterError("a list in a filter holds literal values only, e.g. [0.1, 0.01, 'adam']")
            items.append(item.args[0])
            if not self.at("op", ","):
                break
            self.take()
        self.expect("op", "]")
        return Expr("list", (tuple(items),))


def _shown(columns: Iterable[str], limit: int = 30) -> str:
    names = sorted(columns)
    if not names:
        return "none"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(repr(n) if not n.isprintable() else n for n in names[:limit]) + more


def parse(text: str, columns: Optional[Iterable[str]] = None) -> Expr:
    """Parse filter ``text``; bare names are matched against ``columns`` (None: any name is a column).

    Parameters
    ----------
    text:
        The filter, e.g. ``"optimizer.lr < 0.1 and state == 'COMPLETED'"``.
    columns:
        The names of the table's columns. With them, an unknown name is an
        error that lists them; without, every name is taken as a column.

    Raises
    ------
    FilterError
        The text is not in the filter language, or names a column not in ``columns``.
    """
    if not isinstance(text, str):
        raise FilterError(f"a filter is text, got {type(text).__name__}")
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(f"the filter is {len(text)} characters long; at most {MAX_FILTER_LENGTH} are allowed")
    cols = list(columns) if columns is not None else None
    return _Parser(_tokens(text, cols or []), cols).parse()


# -- evaluation -------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_boolean(series: "pd.Series") -> bool:
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return True
    return all(isinstance(v, bool) or type(v).__name__ == "bool_" for v in series.dropna())


def _bools(series: "pd.Series") -> "pd.Series":
    """A true/false Series, a missing value being false."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return series.astype(bool)
    return pd.Series([not _missing(v) and bool(v) for v in series], index=series.index, dtype=bool)


_ARITHMETIC: Dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow,
}  # fmt: skip
_COMPARE: Dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip


def _eval(node: Expr, frame: "pd.DataFrame") -> Any:
    import pandas as pd

    op = node.op
    if op == "lit":
        return node.args[0]
    if op == "list":
        return list(node.args[0])
    if op == "col":
        name = node.args[0]
        if name not in frame.columns:
            return pd.Series([None] * len(frame), index=frame.index, dtype=object)
        column = frame[name]
        if isinstance(column, pd.DataFrame):  # a param and a summary value of the same name
            raise FilterError(f"column {name!r} appears {column.shape[1]} times in the table; "
                              "filter on a metric selector instead (e.g. KEY:last)")  # fmt: skip
        return column
    if op in ("and", "or"):
        result = _as_mask(_eval(node.args[0], frame), frame)
        for arg in node.args[1:]:
            mask = _as_mask(_eval(arg, frame), frame)
            result = (result & mask) if op == "and" else (result | mask)
        return result
    if op == "not":
        return ~_as_mask(_eval(node.args[0], frame), frame)
    if op in ("neg", "pos"):
        value = _numeric(_eval(node.args[0], frame), node)
        return -value if op == "neg" else value
    if op == "cmp":
        kind, left_node, right_node = node.args
        null = next((n for n in (left_node, right_node) if n.op == "lit" and _missing(n.args[0])), None)
        if null is not None:  # x == null, nan != x: whether x is missing
            if kind not in ("==", "!="):
                raise FilterError(f"null and nan can only be compared with == or != (x == null), not with {kind}")
            other = _eval(right_node if null is left_node else left_node, frame)
            if isinstance(other, pd.Series):
                return other.isna() if kind == "==" else other.notna()
            return _missing(other) == (kind == "==")
        return _compare(kind, _eval(left_node, frame), _eval(right_node, frame), frame)
    left, right = (_numeric(_eval(a, frame), node) for a in node.args)
    return _arithmetic(op, left, right)


def _arithmetic(op: str, left: Any, right: Any) -> Any:
    import numpy as np
    import pandas as pd

    if op == "**":
        # In floats: Python ints would compute 10**10**10 digit by digit, and int64 columns wrap around.
        left = left.astype(float) if isinstance(left, pd.Series) else float(left)
        right = right.astype(float) if isinstance(right, pd.Series) else float(right)
    try:
        with np.errstate(all="ignore"):
            return _ARITHMETIC[op](left, right)
    except ZeroDivisionError:
        return math.nan
    except OverflowError:
        return math.inf


def _numeric(value: Any, node: Expr) -> Any:
    import pandas as pd

    if isinstance(value, pd.Series):
        if pd.api.types.is_bool_dtype(value):
            raise FilterError(f"arithmetic ({node.op}) on a column of true/false values")
        if not pd.api.types.is_numeric_dtype(value):
            converted = pd.to_numeric(value, errors="coerce")
            if converted.isna().sum() > value.isna().sum():
                raise FilterError(f"arithmetic ({node.op}) on a column that holds text")
            return converted
        return value
    if not _is_number(value):
        raise FilterError(f"arithmetic ({node.op}) needs numbers, got {value!r}")
    return value


def _as_mask(value: Any, frame: "pd.DataFrame") -> "pd.Series":
    import pandas as pd

    if isinstance(value, pd.Series) and _is_boolean(value):
        return _bools(value)
    if isinstance(value, bool):
        return pd.Series([value] * len(frame), index=frame.index, dtype=bool)
    raise FilterError("and/or/not combine conditions, not values; e.g. x > 1 and y < 2")


def _compare(kind: str, left: Any, right: Any, frame: "pd.DataFrame") -> Any:
    import pandas as pd

    if kind in ("in", "not in"):
        values = list(right)
        if isinstance(left, pd.Series):
            hit = left.isin([v for v in values if not _missing(v)])
            if any(_missing(v) for v in values):
                hit = hit | left.isna()
            hit = _bools(hit)
            return ~hit if kind == "not in" else hit
        found = any(_same(left, v) for v in values)
        return (not found) if kind == "not in" else found
    fn = _COMPARE[kind]
    if isinstance(left, pd.Series) or isinstance(right, pd.Series):
        return _compare_series(fn, kind, left, right, frame)
    return _compare_one(fn, kind, left, right)


def _same(a: Any, b: Any) -> bool:
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    return _compare_one(operator.eq, "==", a, b)


def _compare_one(fn: Callable[[Any, Any], Any], kind: str, a: Any, b: Any) -> bool:
    """One value against another: text never equals, nor orders with, a number; missing matches only !=."""
    if _missing(a) or _missing(b):
        return kind == "!="
    if isinstance(a, str) != isinstance(b, str):
        return kind == "!="
    try:
        return bool(fn(a, b))
    except TypeError:
        return kind == "!="


def _text_against_text(fn: Callable[[Any, Any], Any], kind: str, left: Any, right: Any) -> Any:
    """A column holding only text (or nothing) against a text literal, as one array operation; else None.

    The same outcome as :func:`_compare_one` row by row, without a Python call per row
    (a query over a million runs compares a million names).
    """
    import numpy as np
    import pandas as pd

    if isinstance(left, pd.Series) and isinstance(right, str):
        column, flip = left, False
    elif isinstance(right, pd.Series) and isinstance(left, str):
        column, flip = right, True
    else:
        return None
    if column.dtype != object or pd.api.types.infer_dtype(column, skipna=True) not in ("string", "empty"):
        return None
    values = column.to_numpy(dtype=object)
    present = ~pd.isna(values)
    out = np.full(len(values), kind == "!=", dtype=bool)  # a missing value matches only !=
    if present.any():
        picked = values[present]
        out[present] = np.asarray(fn(left, picked) if flip else fn(picked, right), dtype=bool)
    return out


def _compare_series(
    fn: Callable[[Any, Any], Any], kind: str, left: Any, right: Any, frame: "pd.DataFrame"
) -> "pd.Series":
    import pandas as pd

    def numeric(v: Any) -> bool:
        return pd.api.types.is_numeric_dtype(v) if isinstance(v, pd.Series) else _is_number(v)

    if numeric(left) and numeric(right):  # the fast path: numbers against numbers, NaN as pandas does
        out = fn(left, right)
        return out if isinstance(out, pd.Series) else pd.Series(out, index=frame.index)
    text = _text_against_text(fn, kind, left, right)
    if text is not None:
        return pd.Series(text, index=frame.index, dtype=bool)
    # Text and numbers mixed in one column: row by row; a row whose value cannot be
    # compared with the other side does not match (like a missing value).
    lefts = left if isinstance(left, pd.Series) else [left] * len(frame)
    rights = right if isinstance(right, pd.Series) else [right] * len(frame)
    return pd.Series([_compare_one(fn, kind, a, b) for a, b in zip(lefts, rights)], index=frame.index, dtype=bool)


def filter_frame(frame: "pd.DataFrame", text: Union[str, Expr]) -> "pd.DataFrame":
    """The rows of ``frame`` where filter ``text`` holds (index reset, attrs kept).

    Raises
    ------
    FilterError
        ``text`` is not in the filter language, names an unknown column, or is not a condition.
    """
    expr = text if isinstance(text, Expr) else parse(text, [str(c) for c in frame.columns])
    mask = expr.evaluate(frame)
    attrs = dict(frame.attrs)
    out = frame[mask.to_numpy()].reset_index(drop=True)
    out.attrs.update(attrs)
    return out


def matches(record: Dict[str, Any], text: Union[str, Expr]) -> bool:
    """Whether one record (column -> value) satisfies the filter.

    A column the record lacks is a missing value; with ``text`` as a string,
    names are checked against the record's keys.
    """
    import pandas as pd

    expr = text if isinstance(text, Expr) else parse(text, list(record))
    frame = pd.DataFrame([dict(record)])
    return bool(expr.evaluate(frame).iloc[0])
