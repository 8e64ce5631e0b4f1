"""Condition text -> AST (:mod:`pipeline.rules.ast`), with Falco's syntax.

The grammar lives in ``condition.lark``; one LALR parser is built on first use
and reused. The AST is built while parsing (lark's embedded transformer), so
no parse tree is kept and deep nesting costs no recursion.

Every failure is a :class:`ConditionSyntaxError` whose position is 1-based
within the condition text and whose message says what was expected, in
words ("unexpected ')'; expected a field, a macro, 'not' or '('"), never a
lark traceback.
"""

from __future__ import annotations

import functools
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from pipeline.errors import ConditionSyntaxError, SourceLocation
from pipeline.rules.ast import (
    And,
    Compare,
    FieldRef,
    FieldValue,
    ListValue,
    Literal,
    MacroRef,
    Node,
    Not,
    Or,
    Pos,
    Transform,
)

GRAMMAR_PATH = Path(__file__).with_name("condition.lark")
KEYWORDS = frozenset({"and", "or", "not"})

# What each terminal means to a person reading an error, in the order listed.
_EXPECTED_WORDS: tuple[tuple[str, str], ...] = (
    ("NAME", "a field"),
    ("MACRO", "a macro"),
    ("NOT", "'not'"),
    ("LPAR", "'('"),
    ("SCALAR_OP", "an operator"),
    ("LIST_OP", "an operator"),
    ("EXISTS", "an operator"),
    ("BARE", "a value"),
    ("STRING", "a value"),
    ("FIELD_ARG", "a field argument"),
    ("VAL", "val(...)"),
    ("TRANSFORMER", "a transformer such as tolower(...)"),
    ("_LSQB", "'['"),
    ("_RSQB", "']'"),
    ("_COMMA", "','"),
    ("_AND", "'and'"),
    ("_OR", "'or'"),
    ("_RPAR", "')'"),
    ("$END", "the end of the condition"),
)


class _Reject(Exception):
    """Raised inside the transformer for text the grammar accepts but Falco does not."""

    def __init__(self, message: str, line: int, col: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col


def _pos_of(token: Token) -> Pos:
    return Pos(token.line, token.column)


_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "\\": "\\", "/": "/", " ": "\\"}


def unescape(token: Token) -> str:
    """A quoted string's text, with Falco's escapes (``\\n``, ``\\t``, ``\\\\``, ``\\"`` in
    double quotes, ``\\'`` in single quotes, ``\\/``, ``\\xHH``); any other escape is an error."""
    raw = str(token)
    quote, body = raw[0], raw[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    chars = iter(body)
    for ch in chars:
        if ch != "\\":
            out.append(ch)
            continue
        nxt = next(chars, "")
        if nxt in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[nxt])
        elif nxt in "\"'" and nxt:
            if nxt != quote:
                raise _Reject(f"invalid \\{nxt} escape in a {quote}-quoted string", token.line, token.column)
            out.append(nxt)
        elif nxt == "x":  # \xHH, a character by its code (Falco 0.45+)
            digits = next(chars, "") + next(chars, "")
            if len(digits) != 2 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise _Reject(f"'\\x' takes two hex digits in a quoted string, got '\\x{digits}'", token.line, token.column)
            out.append(chr(int(digits, 16)))
        else:
            raise _Reject(f"unsupported escape sequence '\\{nxt}' in a quoted string", token.line, token.column)
    return "".join(out)


def _flatten(kind: type, items: list[Node]) -> tuple[Node, ...]:
    flat: list[Node] = []
    for item in items:
        if type(item) is kind:
            flat.extend(item.items)  # type: ignore[union-attr]
        else:
            flat.append(item)
    return tuple(flat)


@v_args(inline=True)
class _BuildAst(Transformer):
    """Parse-time actions: lark calls one method per grammar rule (by name or alias)."""

    def start(self, node: Node) -> Node:
        return node

    @v_args(inline=False)
    def or_expr(self, items: list[Node]) -> Or:
        return Or(_flatten(Or, items), items[0].pos)

    @v_args(inline=False)
    def and_expr(self, items: list[Node]) -> And:
        return And(_flatten(And, items), items[0].pos)

    def negation(self, keyword: Token, operand: Node) -> Not:
        return Not(operand, _pos_of(keyword))

    def group(self, paren: Token, inner: Node) -> Node:
        return inner

    def macro(self, name: Token) -> MacroRef:
        if "." in name:
            raise _Reject(f"field '{name}' needs an operator and a value, e.g. {name} = x", name.line, name.column)
        if name in KEYWORDS:
            raise _Reject(f"unexpected '{name}'; expected a field, a macro, 'not' or '('", name.line, name.column)
        return MacroRef(str(name), _pos_of(name))

    def binary(self, left, op: Token, right) -> Compare:
        return Compare(left, str(op), right, left.pos)

    def unary(self, left, op: Token) -> Compare:
        return Compare(left, "exists", None, left.pos)

    def field(self, name: Token, arg: Token | None = None) -> FieldRef:
        if "." not in name:
            raise _Reject(f"'{name}' is not a field name (fields look like proc.name)", name.line, name.column)
        if arg is None:
            return FieldRef(str(name), None, _pos_of(name))
        text = unescape(arg) if arg.type == "STRING" else str(arg)
        return FieldRef(str(name), text, _pos_of(name))

    def transform(self, opener: Token, operand) -> Transform:
        return Transform(str(opener)[:-1], operand, _pos_of(opener))

    def val(self, opener: Token, operand) -> FieldValue:
        return FieldValue(operand, _pos_of(opener))

    def transformed_value(self, transform: Transform) -> FieldValue:
        return FieldValue(transform, transform.pos)

    def literal(self, token: Token) -> Literal:
        if token.type == "STRING":
            return Literal(unescape(token), True, _pos_of(token))
        return Literal(str(token), False, _pos_of(token))

    def single_item_list(self, token: Token) -> ListValue:
        # `proc.name in my_list`: Falco reads a bare identifier after a list
        # operator as a list name; a one-item list lets the loader expand it.
        return ListValue((Literal(str(token), False, _pos_of(token)),), _pos_of(token))

    @v_args(inline=False)
    def list(self, children) -> ListValue:
        paren, items = children[0], children[1:]
        return ListValue(tuple(item for item in items if item is not None), _pos_of(paren))


@functools.cache
def _parser() -> Lark:
    return Lark(
        GRAMMAR_PATH.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        transformer=_BuildAst(),
    )


def parse_condition(text: str) -> Node:
    """Parse one condition. Raises ConditionSyntaxError, and nothing else, on bad text."""
    if not isinstance(text, str):
        raise ConditionSyntaxError(f"a condition must be text, got {type(text).__name__}", SourceLocation(None, 1, 1), None)
    if not text.strip():
        raise ConditionSyntaxError("empty condition", SourceLocation(None, 1, 1), text.split("\n", 1)[0])
    try:
        node = _parser().parse(text)
    except _Reject as reject:
        raise _error(text, reject.message, reject.line, reject.col) from None
    except VisitError as error:  # an action raised (only _Reject is expected)
        if isinstance(error.orig_exc, _Reject):
            reject = error.orig_exc
            raise _error(text, reject.message, reject.line, reject.col) from None
        raise _error(text, f"invalid condition: {error.orig_exc}", 1, 1) from None
    except UnexpectedInput as error:
        raise _describe(text, error) from None
    except RecursionError:
        raise _error(text, "condition is nested too deeply", 1, 1) from None
    except LarkError as error:  # anything else lark may raise: still a syntax error
        raise _error(text, f"invalid condition: {error}", 1, 1) from None
    too_deep = _deeper_than(node, MAX_NESTING)
    if too_deep is not None:
        raise _error(text, f"condition is nested too deeply (more than {MAX_NESTING} levels of and/or/not, "
                           f"parentheses and transformers)", too_deep.line, too_deep.col)
    return node


MAX_NESTING = 100  # the compiler's own limit (macros included) is lower; this one keeps every recursive pass safe


def _deeper_than(node: Node, limit: int) -> Pos | None:
    """Where ``node`` first goes deeper than ``limit`` levels, or None (walked without recursion:
    ``not not not ...`` a thousand times parses, then every recursive pass over it overflowed)."""
    stack: list[tuple[object, int]] = [(node, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return getattr(item, "pos", None) or Pos(1, 1)
        if isinstance(item, (And, Or)):
            stack.extend((child, depth + 1) for child in item.items)
        elif isinstance(item, Not):
            stack.append((item.operand, depth + 1))
        elif isinstance(item, Compare):
            stack.append((item.left, depth + 1))
            if isinstance(item.right, FieldValue):
                stack.append((item.right.field, depth + 1))
        elif isinstance(item, Transform):
            stack.append((item.operand, depth + 1))
    return None


def _lines(text: str) -> list[str]:
    # lark counts lines by "\n" only; str.splitlines() would also split on \x0b, \u2028...
    return [line.rstrip("\r") for line in text.split("\n")]


def _error(text: str, message: str, line: int, col: int) -> ConditionSyntaxError:
    lines = _lines(text)
    line = min(max(line, 1), len(lines))
    return ConditionSyntaxError(message, SourceLocation(None, line, max(col, 1)), lines[line - 1])


def _end_position(text: str) -> tuple[int, int]:
    lines = _lines(text)
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()  # point just after the last line with content
    return len(lines), len(lines[-1]) + 1


def _describe(text: str, error: UnexpectedInput) -> ConditionSyntaxError:
    if isinstance(error, UnexpectedToken):
        token = error.token
        expected = set(error.expected) | set(getattr(error, "accepts", None) or ())
        if token.type == "$END":
            line, col = _end_position(text)
            found = "end of condition"
        else:
            line, col = token.line, token.column
            value = str(token)
            if value[:1] in "()[],=\"'":
                value = value[:1]  # the fallback lexer may have swallowed more than the bad character
            found = repr(value) if len(value) <= 40 else repr(value[:37] + "...")
        return _error(text, f"unexpected {found}; expected {_expected_words(expected)}", line, col)
    if isinstance(error, UnexpectedCharacters):
        char = text[error.pos_in_stream] if 0 <= error.pos_in_stream < len(text) else ""
        expected = set(error.allowed or ())
        message = f"unexpected {char!r}"
        if char in "\"'":
            message = f"unterminated string starting with {char}"
        elif expected:
            message += f"; expected {_expected_words(expected)}"
        return _error(text, message, error.line, error.column)
    return _error(text, "invalid condition", getattr(error, "line", 1) or 1, getattr(error, "column", 1) or 1)


def _expected_words(expected: set[str]) -> str:
    names = set(expected)
    if "NAME" in names and "NOT" in names:
        names.add("MACRO")
    if "NAME" in names:
        names.discard("TRANSFORMER")  # "a field" covers tolower(field)
    words: list[str] = []
    for name, word in _EXPECTED_WORDS:
        if name in names and word not in words:
            words.append(word)
    if not words:
        return "something else"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]
