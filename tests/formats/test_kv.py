"""Generic key=value parser: quoting, escapes, bare values with spaces, duplicates, malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logferry.formats import ParseError
from logferry.formats.kv import KVParser, unescape_quoted

PARSER = KVParser()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('key=value key2="quoted value with spaces"', {"key": "value", "key2": "quoted value with spaces"}),
        (r'key3="with \"escaped\" quote"', {"key3": 'with "escaped" quote'}),
        (r'path="C:\Windows\temp\\"', {"path": "C:\\Windows\\temp\\"}),
        ("ether_type=Unknown (0x0000) x=1", {"ether_type": "Unknown (0x0000)", "x": "1"}),
        ("packets_sent=2  packets_received=2", {"packets_sent": "2", "packets_received": "2"}),
        ('status="" fw_rule_id=0 reason=', {"status": "", "fw_rule_id": "0", "reason": ""}),
        ("src_ip=2001:db8::1 dst_ip=fe80::1", {"src_ip": "2001:db8::1", "dst_ip": "fe80::1"}),
        ("url=http://a/?q=1&r=2 n=3", {"url": "http://a/?q=1&r=2", "n": "3"}),
        ('  a=1   b="x"  ', {"a": "1", "b": "x"}),
        ("", {}),
        ('msg="a=b c=d"', {"msg": "a=b c=d"}),
    ],
    ids=[
        "brief-example",
        "escaped-quotes",
        "backslashes-kept-unless-escaping",
        "bare-value-with-spaces",
        "double-space-between-pairs",
        "empty-values",
        "ipv6",
        "equals-inside-bare-value",
        "leading-and-trailing-separators",
        "empty-line",
        "pairs-inside-quotes-stay-in-value",
    ],
)
def test_parses_pairs(line: str, expected: dict[str, str]) -> None:
    assert PARSER.parse(line) == expected


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('a=1 b="never closed', "unterminated quote at position 6"),
        ("garbage a=1", "expected key=value at position 0"),
        ('a="x"y b=2', "unexpected text after closing quote at position 5"),
        ("(weird)=1", "invalid key '(weird)' at position 0"),
        ('a="x\\"', "unterminated quote at position 2"),
    ],
    ids=["unterminated-quote", "no-equals", "text-after-quote", "bad-key", "escaped-closing-quote"],
)
def test_malformed_input_raises_parse_error_with_position(line: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        PARSER.parse(line)


def test_duplicate_policies() -> None:
    line = "a=1 a=2 a=3"
    assert KVParser(duplicates="last").parse(line) == {"a": "3"}
    assert KVParser(duplicates="first").parse(line) == {"a": "1"}
    assert KVParser(duplicates="list").parse(line) == {"a": ["1", "2", "3"]}
    with pytest.raises(ParseError, match="duplicate key 'a' at position 4"):
        KVParser(duplicates="error").parse(line)


def test_custom_separators_and_quote() -> None:
    parser = KVParser(pair_sep=",", kv_sep=":", quote="'")
    assert parser.parse("a:1,b:'x, y',,c:two words") == {"a": "1", "b": "x, y", "c": "two words"}


def test_quoting_off_keeps_quote_characters() -> None:
    assert KVParser(quote=None, unescape=None).parse('a="b c" d=1') == {"a": '"b c"', "d": "1"}


def test_parse_from_offset() -> None:
    assert PARSER.parse("<30>a=1", 4) == {"a": "1"}


@pytest.mark.parametrize(
    "kwargs", [{"pair_sep": "  "}, {"quote": "="}, {"kv_sep": ""}], ids=["long-sep", "quote-is-sep", "empty"]
)
def test_rejects_bad_configuration(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        KVParser(**kwargs)  # type: ignore[arg-type]


def test_unescape_quoted_leaves_other_backslashes() -> None:
    assert unescape_quoted(r"a\"b\\c\d") == 'a"b\\c\\d'


_keys = st.from_regex(r"[A-Za-z0-9_.\-]{1,12}", fullmatch=True)
_values = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@given(st.dictionaries(_keys, _values, max_size=8), st.integers(1, 3))
def test_quoted_pairs_round_trip(pairs: dict[str, str], spaces: int) -> None:
    line = (" " * spaces).join(f"{k}={_quote(v)}" for k, v in pairs.items())
    assert PARSER.parse(line) == pairs


@given(st.text(max_size=60))
def test_any_text_parses_or_raises_parse_error(text: str) -> None:
    try:
        record = PARSER.parse(text)
    except ParseError:
        return
    assert all(isinstance(v, str) for v in record.values())


_kv_alphabet = st.text(st.sampled_from(["a", "b", "=", '"', " ", "\\", "(", "é"]), max_size=40)


@pytest.mark.parametrize(
    "parser",
    [KVParser(), KVParser(quote=None), KVParser(duplicates="list"), KVParser(pair_sep=",", quote="'")],
    ids=["default", "no-quotes", "list-duplicates", "comma-and-single-quote"],
)
@given(text=_kv_alphabet)
def test_fast_path_agrees_with_exact_tokenizer(parser: KVParser, text: str) -> None:
    text = text.replace(" ", parser._sep).replace('"', parser._quote or '"')
    try:
        exact = parser._parse_exact(text, 0)
    except ParseError:
        with pytest.raises(ParseError):
            parser.parse(text)
        return
    assert parser.parse(text) == exact


def test_rejects_equal_separators() -> None:
    with pytest.raises(ValueError, match="three different characters"):
        KVParser(pair_sep="=")
