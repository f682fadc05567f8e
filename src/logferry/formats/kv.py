"""Generic ``key=value`` body parser (Sophos SFOS, CEF extensions, most appliance syslog bodies).

A value is either quoted
(``key="a b \\"c\\""``, backslash escapes ``\\"`` and ``\\\\``) or bare; a bare value runs until a
separator that is followed by the next ``key=``, so ``ether_type=Unknown (0x0000)`` stays whole (the
look-ahead rule Elastic's Sophos pipeline uses, sophos.md §2). Runs of separators count as one
(SFOS 19 writes ``packets_sent=2  packets_received=2``).

Each configuration precompiles two regexes: a split that cuts an ordinary line into keys, values and
quote marks in one C call (the hot path), and an exact tokenizer, walked pair by pair, for lines the
split cannot vouch for (escapes, quotes inside values, malformed text); the two agree on every input
(tests/formats/test_kv.py checks it), and only the tokenizer words errors, with their positions.

    parser = KVParser()                      # space-separated, '"' quotes, last duplicate wins
    parser.parse('a=1 b="x y" c=Unknown (0x0000)')
    # {'a': '1', 'b': 'x y', 'c': 'Unknown (0x0000)'}
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from logferry.core.types import Record
from logferry.formats import ParseError

__all__ = ["KEY_PATTERN", "DuplicateKeys", "KVParser", "unescape_quoted"]

DuplicateKeys = Literal["last", "first", "list", "error"]

# Keys as appliances write them: Sophos (a-z0-9_-), CEF (cs1Label), dotted vendor keys (ad.user).
KEY_PATTERN = r"[A-Za-z0-9_.\-]+"

_QUOTED_ESCAPE = re.compile(r"\\([\"\\])")


def unescape_quoted(value: str) -> str:
    """Undo ``\\"`` and ``\\\\``; any other backslash stays (Windows paths arrive unescaped)."""
    return _QUOTED_ESCAPE.sub(r"\1", value) if "\\" in value else value


class KVParser:
    """A reusable parser for one ``key=value`` dialect; :meth:`parse` is pure and thread-safe.

    ``quote=None`` turns quoting off (CEF: a ``"`` is an ordinary character there). ``unescape``
    post-processes values that contain a backslash: quoted values by default, every value when
    quoting is off (CEF's ``\\=``). ``duplicates`` says what a repeated key does: keep the ``last``
    or ``first`` value, collect a ``list``, or raise (``error``).
    """

    __slots__ = ("_duplicates", "_kv_sep", "_pair", "_quote", "_sentinel", "_sep", "_split", "_unescape")

    def __init__(
        self,
        *,
        pair_sep: str = " ",
        kv_sep: str = "=",
        quote: str | None = '"',
        unescape: Callable[[str], str] | None = unescape_quoted,
        duplicates: DuplicateKeys = "last",
    ) -> None:
        for name, char in (("pair_sep", pair_sep), ("kv_sep", kv_sep), ("quote", quote)):
            if char is not None and len(char) != 1:
                raise ValueError(f"{name} must be one character, got {char!r}")
        if len({pair_sep, kv_sep, quote}) != 3:
            raise ValueError("pair_sep, kv_sep and quote must be three different characters")
        s, e = re.escape(pair_sep), re.escape(kv_sep)
        bare = rf"((?:[^{s}{re.escape(quote or '')}][^{s}]*)?(?:{s}+(?!{KEY_PATTERN}{e})[^{s}]+)*)"
        value = bare
        if quote is not None:
            q = re.escape(quote)
            # The unrolled form of (?:[^"\\]|\\.)*: one alternation per escape, not per character.
            value = rf"(?:{q}([^{q}\\]*(?:\\.[^{q}\\]*)*){q}|{bare})"
        self._pair = re.compile(rf"({KEY_PATTERN}){e}{value}(?:{s}+|\Z)", re.DOTALL)
        if quote is None:
            self._split = re.compile(rf"{s}+({KEY_PATTERN}){e}").split
        else:
            q = re.escape(quote)
            # Quotes show as empty groups ('' where present, None where not), so the closing quote after
            # each value lines up with the opening one as two lists. Starting with a literal (quote or
            # separator) lets the regex engine skip ahead to candidates, which roughly halves its time.
            self._split = re.compile(rf"(?:{q}(){s}|{s}){s}*({KEY_PATTERN}){e}(?:{q}()|)").split
        self._sentinel = f"{pair_sep}_{kv_sep}"
        self._sep, self._kv_sep, self._quote = pair_sep, kv_sep, quote
        self._unescape = unescape
        self._duplicates = duplicates

    def parse(self, text: str, start: int = 0) -> Record:
        """Parse ``text[start:]`` into a record of string values (or lists, with ``duplicates="list"``)."""
        sep = self._sep
        body = text[start:].strip(sep) if start else text.strip(sep)
        if not body:
            return {}
        # Fast path, all in C: one split on '<closing quote?> <key>=<opening quote?>' over the line framed by
        # a separator and a sentinel key, then whole-list checks. Anything unusual (a quote or backslash
        # inside a quoted value, text before the first key) goes to the exact tokenizer, which also
        # words the errors.
        parts = self._split(sep + body + self._sentinel)
        quote = self._quote
        if quote is None:
            if parts[0]:
                return self._parse_exact(text, start)
            keys, values = parts[1::2], parts[2::2]
            unescape = self._unescape
            if unescape is not None and "\\" in body:
                values = [unescape(v) if "\\" in v else v for v in values]
        else:
            opens = parts[3::4]
            if (
                parts[0]
                or parts[1] is not None
                or opens[:-1] != parts[5::4]
                or body.count(quote) != 2 * opens.count("")
                or "\\" in body
            ):
                return self._parse_exact(text, start)
            keys, values = parts[2::4], parts[4::4]
        keys.pop()  # the sentinel
        values.pop()
        record: Record = dict(zip(keys, values, strict=True))
        if len(record) != len(keys) and self._duplicates != "last":
            return self._parse_exact(text, start)
        return record

    def _parse_exact(self, text: str, start: int) -> Record:
        record: Record = {}
        sep, n = self._sep, len(text)
        pos = start
        while pos < n and text[pos] == sep:
            pos += 1
        match, unescape, quoted = self._pair.match, self._unescape, self._quote is not None
        while pos < n:
            m = match(text, pos)
            if m is None:
                raise self._error(text, pos)
            if quoted:
                key, value, bare = m.group(1, 2, 3)
                if value is None:
                    value = bare
                elif unescape is not None and "\\" in value:
                    value = unescape(value)
            else:
                key, value = m.group(1, 2)
                if unescape is not None and "\\" in value:
                    value = unescape(value)
            if key in record:
                self._duplicate(record, key, value, pos)
            else:
                record[key] = value
            pos = m.end()
        return record

    def _duplicate(self, record: Record, key: str, value: str, pos: int) -> None:
        policy = self._duplicates
        if policy == "last":
            record[key] = value
        elif policy == "list":
            previous = record[key]
            if isinstance(previous, list):
                previous.append(value)
            else:
                record[key] = [previous, value]
        elif policy == "error":
            raise ParseError(f"duplicate key {key!r} at position {pos}")

    def _error(self, text: str, pos: int) -> ParseError:
        """Say why no pair starts at ``pos``; only reached for malformed input, so it may be slow."""
        eq = text.find(self._kv_sep, pos)
        token_end = text.find(self._sep, pos)
        if eq == -1 or (token_end != -1 and token_end < eq):
            return ParseError(f"expected key{self._kv_sep}value at position {pos}: {_excerpt(text, pos)}")
        if re.fullmatch(KEY_PATTERN, text[pos:eq]) is None:
            return ParseError(f"invalid key {text[pos:eq]!r} at position {pos}")
        quote = self._quote
        if quote is not None and text.startswith(quote, eq + 1):
            close = _closing_quote(text, eq + 2, quote)
            if close == -1:
                return ParseError(f"unterminated quote at position {eq + 1} (value of {text[pos:eq]!r})")
            return ParseError(f"unexpected text after closing quote at position {close + 1}")
        return ParseError(f"unreadable value at position {eq + 1}: {_excerpt(text, eq + 1)}")


def _closing_quote(text: str, pos: int, quote: str) -> int:
    while True:
        close = text.find(quote, pos)
        if close == -1:
            return -1
        backslashes = 0
        while text[close - 1 - backslashes] == "\\":
            backslashes += 1
        if backslashes % 2 == 0:
            return close
        pos = close + 1


def _excerpt(text: str, pos: int) -> str:
    snippet = text[pos : pos + 40]
    return repr(snippet + "…" if len(text) > pos + 40 else snippet)
