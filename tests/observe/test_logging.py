from __future__ import annotations

import io
import logging
import re
from typing import Literal

import orjson
import pytest

from logferry.observe import configure_logging, log_event, register_secret

_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
_LOG = logging.getLogger("logferry.tests.observe")


def _json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_has_ts_level_logger_event_and_fields() -> None:
    out = io.StringIO()
    configure_logging(level="info", fmt="json", stream=out)

    log_event(_LOG, logging.INFO, "poll_completed", source="duo", events=120, lag_secs=4.5)

    [line] = _json_lines(out)
    assert list(line)[:4] == ["ts", "level", "logger", "event"]
    assert _TS.match(str(line["ts"]))
    assert line["level"] == "info"
    assert line["logger"] == "logferry.tests.observe"
    assert line["event"] == "poll_completed"
    assert (line["source"], line["events"], line["lag_secs"]) == ("duo", 120, 4.5)


def test_json_output_is_one_line_per_record_even_with_newlines_in_values() -> None:
    out = io.StringIO()
    configure_logging(level="info", stream=out)

    log_event(_LOG, logging.INFO, "a", detail="line1\nline2")
    _LOG.warning("b")

    assert len(out.getvalue().splitlines()) == 2
    assert [line["event"] for line in _json_lines(out)] == ["a", "b"]


def test_plain_extra_keys_become_fields_and_core_keys_are_not_overwritten() -> None:
    out = io.StringIO()
    configure_logging(stream=out)

    _LOG.info("evt", extra={"sink": "sentinel", "fields": {"level": "spoofed", "n": 1}})

    [line] = _json_lines(out)
    assert line["level"] == "info"
    assert line["level_"] == "spoofed"
    assert (line["sink"], line["n"]) == ("sentinel", 1)


def test_records_below_the_configured_level_are_dropped() -> None:
    out = io.StringIO()
    configure_logging(level="warning", stream=out)

    log_event(_LOG, logging.INFO, "quiet")
    log_event(_LOG, logging.WARNING, "loud")

    assert [line["event"] for line in _json_lines(out)] == ["loud"]


def test_configure_logging_twice_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(stream=first)
    configure_logging(stream=second)

    _LOG.info("once")

    assert first.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1
    assert len(logging.getLogger("logferry").handlers) == 1


def test_records_do_not_propagate_to_root_handlers() -> None:
    root_out = io.StringIO()
    root_handler = logging.StreamHandler(root_out)
    logging.getLogger().addHandler(root_handler)
    try:
        configure_logging(stream=io.StringIO())
        _LOG.warning("client_secret=abc")
    finally:
        logging.getLogger().removeHandler(root_handler)
    assert root_out.getvalue() == ""


def test_unknown_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging(level="verbose")


def test_exception_is_one_error_field_with_type_and_message_at_info() -> None:
    out = io.StringIO()
    configure_logging(level="info", stream=out)

    try:
        raise ValueError("bad page token")
    except ValueError:
        _LOG.exception("page_failed")

    [line] = _json_lines(out)
    assert line["error"] == "ValueError: bad page token"
    assert "Traceback" not in out.getvalue()


def test_exception_cause_is_included_in_the_error_field() -> None:
    out = io.StringIO()
    configure_logging(level="info", stream=out)

    try:
        try:
            raise ConnectionResetError("peer reset")
        except ConnectionResetError as exc:
            raise RuntimeError("delivery failed") from exc
    except RuntimeError:
        _LOG.exception("send_failed")

    [line] = _json_lines(out)
    assert line["error"] == "RuntimeError: delivery failed (caused by ConnectionResetError: peer reset)"


def test_exception_traceback_is_included_at_debug() -> None:
    out = io.StringIO()
    configure_logging(level="debug", stream=out)

    try:
        raise KeyError("cursor")
    except KeyError as exc:
        log_event(_LOG, logging.ERROR, "cursor_missing", exc_info=exc, source="duo")

    [line] = _json_lines(out)
    error = str(line["error"])
    assert error.startswith("Traceback (most recent call last):")
    assert error.endswith("KeyError: 'cursor'")
    assert line["source"] == "duo"


def test_text_format_is_ts_level_logger_event_then_key_values() -> None:
    out = io.StringIO()
    configure_logging(level="info", fmt="text", stream=out)

    log_event(_LOG, logging.WARNING, "retry_scheduled", sink="sentinel", delay_secs=2.5, note="slow down")

    ts, rest = out.getvalue().rstrip("\n").split(" ", 1)
    assert _TS.match(ts)
    assert (
        rest == 'WARNING logferry.tests.observe retry_scheduled sink=sentinel delay_secs=2.5 note="slow down"'
    )


def test_text_format_puts_the_debug_traceback_below_the_line() -> None:
    out = io.StringIO()
    configure_logging(level="debug", fmt="text", stream=out)

    try:
        raise OSError("disk full")
    except OSError:
        _LOG.exception("outbox_write_failed")

    first, *rest = out.getvalue().rstrip("\n").split("\n")
    assert first.endswith('outbox_write_failed error="OSError: disk full"')
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "OSError: disk full"


_SECRET = "reg-Secret-v4lue"


def _log_everything_sensitive() -> None:
    register_secret(_SECRET)
    # In the message, in field values, nested in a dict, and in exception text.
    _LOG.info("token request for %s with client_secret=plain-cs-1", _SECRET)
    log_event(
        _LOG,
        logging.WARNING,
        "vendor_error",
        headers={"Authorization": "Bearer xyz", "Accept": "*/*"},
        body='{"client_secret": "plain-cs-2", "error": "invalid_client"}',
        echoed=f"key is {_SECRET}",
        auth_header="Authorization: Basic dXNlcjpwYXNz",
    )
    try:
        raise PermissionError(f"401 for Authorization: Bearer xyz secret={_SECRET} client_secret=plain-cs-3")
    except PermissionError:
        _LOG.exception("auth_failed")


@pytest.mark.parametrize("fmt", ["json", "text"])
@pytest.mark.parametrize("level", ["info", "debug"])
def test_secrets_and_credentials_never_reach_the_output(fmt: Literal["json", "text"], level: str) -> None:
    out = io.StringIO()
    configure_logging(level=level, fmt=fmt, stream=out)

    _log_everything_sensitive()

    text = out.getvalue()
    for leaked in (_SECRET, "Bearer xyz", "plain-cs-1", "plain-cs-2", "plain-cs-3", "dXNlcjpwYXNz"):
        assert leaked not in text
    # The lines are still there and still say what happened.
    assert text.count("***") >= 8
    assert "auth_failed" in text
    assert "invalid_client" in text


def test_registered_secret_with_json_special_characters_is_redacted_in_json_output() -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    register_secret('p"a\\ss\tword')

    log_event(_LOG, logging.INFO, "x", value='p"a\\ss\tword', nested={"k": ['p"a\\ss\tword']})

    [line] = _json_lines(out)
    assert line["value"] == "***"
    assert line["nested"] == {"k": ["***"]}
