"""The slash-command grammar: ``/<component> <operation> ['<json>' ...] [--flag ...]``.

Tokens are split shell-style (single quotes literal, double quotes with backslash
escapes, backslash outside quotes escapes the next character). Each token keeps the
position of every character in the original text, so an error inside a JSON
argument that spans lines can still be reported at its line and column.
"""

from __future__ import annotations

import json
import re
import sys
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any


class CommandSyntaxError(ValueError):
    """Bad command text; ``offset`` is 0-based into the text, ``line``/``column`` 1-based."""

    def __init__(
        self, message: str, text: str, offset: int, code: str = "INVALID_SYNTAX", details: dict[str, Any] | None = None
    ) -> None:
        self.message = message
        self.text = text
        self.offset = max(0, min(offset, len(text)))
        self.line, self.column = line_col(text, self.offset)
        self.code = code
        self.details = details or {}
        super().__init__(f"line {self.line}, column {self.column}: {message}")


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a 0-based offset."""
    before = text[:offset]
    line = before.count("\n") + 1
    col = offset - (before.rfind("\n") + 1) + 1
    return line, col


MAX_COMMAND_CHARS = 262_144
"""The longest command text accepted (256 Ki characters): longer text is refused
before it is split, with an error naming the limit."""


@dataclass
class Token:
    """One shell word: its value and where its characters came from in the text.

    ``runs`` holds ``(value index, text offset)`` at the start of each stretch of
    characters copied contiguously from the text (a quote or an escape starts a new
    one), so a character's offset is found by bisection without one entry per
    character."""

    value: str
    start: int
    runs: list[tuple[int, int]] = field(default_factory=list)
    quoted: bool = False

    def offset_of(self, i: int) -> int:
        """Text offset of the value's i-th character (end of token if past it)."""
        if not self.runs:
            return self.start
        if i >= len(self.value):
            vi, off = self.runs[-1]
            return off + (len(self.value) - 1 - vi) + 1
        k = bisect_right(self.runs, (i, sys.maxsize)) - 1
        vi, off = self.runs[max(k, 0)]
        return off + (i - vi)


_PLAIN = re.compile(r"""[^\s'"\\]+""")
_SIMPLE_WORD = re.compile(r"""[^\s'"\\]+(?=\s|\Z)""")
_SPACE = re.compile(r"\s+")
_IN_DOUBLE = re.compile(r'[^"\\]+')
_DOUBLE_ESCAPES = '"\\$`\n'


class _Builder:
    """The value of the token being read, as pieces joined once (linear time)."""

    def __init__(self, start: int) -> None:
        self.token = Token("", start)
        self.parts: list[str] = []
        self.length = 0
        self.next_offset = -1

    def add(self, piece: str, offset: int) -> None:
        if offset != self.next_offset:
            self.token.runs.append((self.length, offset))
        self.parts.append(piece)
        self.length += len(piece)
        self.next_offset = offset + len(piece)

    def done(self) -> Token:
        self.token.value = "".join(self.parts)
        return self.token


def tokenize(text: str) -> list[Token]:
    """Split shell-style, keeping character positions; unterminated quotes are errors.
    Linear in the length of the text; text over :data:`MAX_COMMAND_CHARS` is refused."""
    if len(text) > MAX_COMMAND_CHARS:
        raise CommandSyntaxError(
            f"the command is {len(text):,} characters long; the limit is {MAX_COMMAND_CHARS:,}",
            "",
            0,
            code="COMMAND_TOO_LONG",
            details={"length": len(text), "limit": MAX_COMMAND_CHARS},
        )
    tokens: list[Token] = []
    i = 0
    n = len(text)
    cur: _Builder | None = None
    while i < n:
        c = text[i]
        if c.isspace():
            if cur is not None:
                tokens.append(cur.done())
                cur = None
            i = _SPACE.match(text, i).end()  # type: ignore[union-attr]
            continue
        if cur is None:
            m = _SIMPLE_WORD.match(text, i)
            if m is not None:  # the common case: a word without quotes or escapes
                tokens.append(Token(m.group(), i, [(0, i)]))
                i = m.end()
                continue
            cur = _Builder(i)
        if c == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise CommandSyntaxError("unterminated single quote", text, i, details={"expected": "a closing '"})
            cur.token.quoted = True
            if end > i + 1:
                cur.add(text[i + 1 : end], i + 1)
            i = end + 1
        elif c == '"':
            j = i + 1
            cur.token.quoted = True
            while True:
                m = _IN_DOUBLE.match(text, j)
                if m is not None:
                    cur.add(m.group(), j)
                    j = m.end()
                if j >= n:
                    raise CommandSyntaxError("unterminated double quote", text, i, details={"expected": 'a closing "'})
                if text[j] == '"':
                    break
                # a backslash: it escapes only these characters, else it is itself
                if j + 1 < n and text[j + 1] in _DOUBLE_ESCAPES:
                    cur.add(text[j + 1], j + 1)
                    j += 2
                else:
                    cur.add("\\", j)
                    j += 1
            i = j + 1
        elif c == "\\" and i + 1 < n:
            cur.add(text[i + 1], i + 1)
            i += 2
        else:
            m = _PLAIN.match(text, i)
            if m is None:  # a lone backslash at the very end
                cur.add(c, i)
                i += 1
            else:
                cur.add(m.group(), i)
                i = m.end()
    if cur is not None:
        tokens.append(cur.done())
    return tokens


_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
_FLAG_RE = re.compile(r"^--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)(?:=(.*))?$", re.S)


@dataclass
class Argument:
    """A positional argument: a JSON value (object/array) or a bare word."""

    value: Any
    token: Token
    is_json: bool


@dataclass
class ParsedCommand:
    """The syntax of one command, before it is resolved against the registry."""

    text: str
    component: str
    component_token: Token
    words: list[Token]
    """Bare words after the component, in order (operation, workflow id, ...)."""
    arguments: list[Argument]
    """Every positional argument after the component, words and JSON alike, in order."""
    flags: dict[str, tuple[Any, Token]]


def parse(text: str) -> ParsedCommand:
    """Parse command text; raise :class:`CommandSyntaxError` naming the column."""
    if not isinstance(text, str):
        raise CommandSyntaxError("a command is text", "", 0)
    stripped = text.strip()
    if not stripped:
        raise CommandSyntaxError("empty command: expected /<component> <operation> ...", text, 0, code="EMPTY_COMMAND")
    tokens = tokenize(text)
    head = tokens[0]
    if head.quoted or not head.value.startswith("/"):
        raise CommandSyntaxError(
            f"a command starts with /<component>, found {head.value[:20]!r}",
            text,
            head.start,
            details={"expected": "/<component>"},
        )
    component = head.value[1:]
    if not _NAME_RE.match(component):
        # The likely intent: lower case, one slash, words joined by '-' (``//Resource_Manager``).
        guess = re.sub(r"[\s_]+", "-", component.lstrip("/").lower())
        hint = f"; did you mean /{guess}?" if _NAME_RE.match(guess) else ""
        raise CommandSyntaxError(
            f"component {component!r} must be lowercase words joined by '-'{hint}",
            text,
            head.start + 1,
            code="UNKNOWN_COMPONENT",
            details={"component": component, **({"suggestions": [f"/{guess}"]} if hint else {})},
        )
    words: list[Token] = []
    arguments: list[Argument] = []
    flags: dict[str, tuple[Any, Token]] = {}
    for tok in tokens[1:]:
        v = tok.value
        if not tok.quoted and v.startswith("--"):
            m = _FLAG_RE.match(v)
            if not m:
                raise CommandSyntaxError(
                    f"malformed flag {v!r}: expected --name or --name=value", text, tok.start, code="INVALID_FLAG"
                )
            name = m.group(1)
            if name in flags:
                raise CommandSyntaxError(f"flag --{name} given twice", text, tok.start, code="INVALID_FLAG")
            flags[name] = (m.group(2) if m.group(2) is not None else True, tok)
            continue
        if v.lstrip()[:1] in ("{", "["):
            arguments.append(Argument(parse_json(tok, text), tok, True))
        else:
            if not v:
                raise CommandSyntaxError("empty argument", text, tok.start, code="INVALID_ARGUMENT")
            if v.startswith("-") and not tok.quoted:
                raise CommandSyntaxError(
                    f"unknown option {v!r}: flags start with --", text, tok.start, code="INVALID_FLAG"
                )
            words.append(tok)
            arguments.append(Argument(v, tok, False))
    return ParsedCommand(text, component, head, words, arguments, flags)


def parse_json(tok: Token, text: str) -> Any:
    """Decode a JSON argument; an error names the line and column in the whole text.
    A ``\\uD800``-style escape that decodes to half a surrogate pair is refused: such a
    string is not text and could not be stored or hashed."""
    try:
        value = json.loads(tok.value)
    except json.JSONDecodeError as exc:
        raise CommandSyntaxError(
            f"invalid JSON: {exc.msg}", text, tok.offset_of(exc.pos), code="INVALID_JSON"
        ) from None
    except RecursionError:
        raise CommandSyntaxError("invalid JSON: nested too deeply", text, tok.start, code="INVALID_JSON") from None
    if _SURROGATE_ESCAPE.search(tok.value) and _has_lone_surrogate(value):
        m = _LONE_ESCAPE.search(tok.value)
        raise CommandSyntaxError(
            "invalid JSON: a \\u escape is half of a surrogate pair (not a character)",
            text,
            tok.offset_of(m.start()) if m else tok.start,
            code="INVALID_JSON",
        )
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_ESCAPE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])|(?<![0-9a-fA-F]{4})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def _has_lone_surrogate(value: Any) -> bool:
    """Whether any string (or key) in a decoded JSON value cannot be encoded as UTF-8."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def json_positions(src: str) -> dict[tuple[Any, ...], int]:
    """Offsets (into ``src``) of every value and object key in a valid JSON text,
    keyed by its path; used to point a validation error at the field's column."""
    out: dict[tuple[Any, ...], int] = {}
    n = len(src)

    def ws(i: int) -> int:
        while i < n and src[i] in " \t\r\n":
            i += 1
        return i

    def string_end(i: int) -> int:
        i += 1
        while i < n:
            if src[i] == "\\":
                i += 2
                continue
            if src[i] == '"':
                return i + 1
            i += 1
        return n

    def value(i: int, path: tuple[Any, ...]) -> int:
        i = ws(i)
        out.setdefault(path, i)
        if i >= n:
            return i
        c = src[i]
        if c == "{":
            i = ws(i + 1)
            if i < n and src[i] == "}":
                return i + 1
            while i < n:
                i = ws(i)
                kend = string_end(i)
                try:
                    key = json.loads(src[i:kend])
                except json.JSONDecodeError:
                    return n
                out[(*path, key, "__key__")] = i
                i = ws(kend)
                i = value(i + 1, (*path, key))
                i = ws(i)
                if i < n and src[i] == ",":
                    i += 1
                    continue
                return i + 1
            return i
        if c == "[":
            i = ws(i + 1)
            if i < n and src[i] == "]":
                return i + 1
            k = 0
            while i < n:
                i = value(i, (*path, k))
                i = ws(i)
                k += 1
                if i < n and src[i] == ",":
                    i += 1
                    continue
                return i + 1
            return i
        if c == '"':
            return string_end(i)
        while i < n and src[i] not in ",]} \t\r\n":
            i += 1
        return i

    try:
        value(0, ())
    except RecursionError:
        pass
    return out
