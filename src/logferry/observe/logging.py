"""Structured, redacted logging for the ``logferry`` logger hierarchy.

Every record becomes one line: JSON for log shippers (a SIEM pipeline should be able to ingest its
own logs) or ``ts level logger event key=value`` for humans. Fields travel as
``extra={"fields": {...}}``; :func:`log_event` builds that for you. Each line passes through
:func:`~logferry.observe.redact.redact` as its last step, so neither messages, field values nor
exception text can carry a registered secret or a credential-shaped value out of the process.

Usage::

    configure_logging(level="info", fmt="json")
    log = logging.getLogger("logferry.sources.duo")
    log_event(log, logging.INFO, "poll_completed", source="duo", events=120, lag_secs=4.2)
"""

from __future__ import annotations

import logging
import sys
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import IO, Literal, TypeAlias

import orjson

from logferry.observe.redact import redact, redact_value

__all__ = ["LOGGER_NAME", "JsonFormatter", "TextFormatter", "configure_logging", "log_event"]

LOGGER_NAME = "logferry"

_ExcInfo: TypeAlias = (
    bool
    | BaseException
    | tuple[type[BaseException], BaseException, TracebackType | None]
    | tuple[None, None, None]
    | None
)

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is a field.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "fields",
}
_CORE_KEYS = frozenset({"ts", "level", "logger", "event", "error"})

# The handler this module installed, so a second configure_logging() replaces it instead of adding
# a second one (tests and the CLI both call it).
_installed: logging.Handler | None = None


def _timestamp(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__qualname__}: {exc}" if str(exc) else type(exc).__qualname__
    # aiohttp and asyncio wrap the useful error; without the cause the line says only "ClientError".
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return f"{text} (caused by {_describe(cause)})" if cause is not None else text


class _StructuredFormatter(logging.Formatter):
    """Collects a record into an ordered dict of already-redacted fields."""

    def __init__(self, *, include_traceback: bool = False) -> None:
        super().__init__()
        # Tracebacks are for whoever turned on debug; at info an operator wants one readable line.
        self.include_traceback = include_traceback

    def fields(self, record: logging.LogRecord) -> tuple[dict[str, object], str | None]:
        """The record as ordered, redacted fields, plus the traceback when debug asked for one."""
        out: dict[str, object] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        extra = {key: value for key, value in record.__dict__.items() if key not in _RECORD_ATTRS}
        given = getattr(record, "fields", None)
        if isinstance(given, dict):
            extra.update(given)
        elif given is not None:
            extra["fields"] = given
        for key, value in extra.items():
            out[f"{key}_" if key in _CORE_KEYS else str(key)] = value
        trace: str | None = None
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            out["error"] = _describe(exc)
            if self.include_traceback:
                trace = "".join(traceback.format_exception(exc)).rstrip()
        if record.stack_info and self.include_traceback:
            trace = f"{trace}\n{record.stack_info}" if trace else record.stack_info
        # Redact values before encoding too: once JSON-escaped, a secret containing a quote or
        # backslash no longer matches its raw spelling.
        return {key: redact_value(value) for key, value in out.items()}, trace and redact(trace)


class JsonFormatter(_StructuredFormatter):
    """One JSON object per line: ``{"ts", "level", "logger", "event", ...fields}``.

    At debug level ``error`` holds the whole traceback (JSON-escaped, so still one line).
    """

    def format(self, record: logging.LogRecord) -> str:
        fields, trace = self.fields(record)
        if trace is not None:
            fields["error"] = trace
        return redact(orjson.dumps(fields, default=str).decode())


class TextFormatter(_StructuredFormatter):
    """``ts level logger event key=value ...`` for a terminal; a debug traceback follows the line."""

    def format(self, record: logging.LogRecord) -> str:
        fields, trace = self.fields(record)
        head = [str(fields.pop(key)) for key in ("ts", "level", "logger", "event")]
        head[1] = head[1].upper()
        line = " ".join(head + [f"{key}={_text_value(value)}" for key, value in fields.items()])
        # A traceback reads better as-is below the line than escaped into a value.
        return redact(f"{line}\n{trace}" if trace else line)


def _text_value(value: object) -> str:
    if isinstance(value, str):
        if value and not any(ch.isspace() or ch in "\"'=\\" for ch in value):
            return value
        return orjson.dumps(value).decode()
    return orjson.dumps(value, default=str).decode()


def configure_logging(
    level: str = "info",
    fmt: Literal["json", "text"] = "json",
    stream: IO[str] | None = None,
) -> None:
    """Send the ``logferry`` logger hierarchy to ``stream`` (default stderr), one redacted line per record.

    Calling it again replaces the previous configuration. Records do not propagate to the root
    logger: a handler installed there by someone else would print them unredacted.
    """
    try:
        numeric = _LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}; expected one of {sorted(_LEVELS)}") from None
    formatter: logging.Formatter
    debug = numeric <= logging.DEBUG
    if fmt == "json":
        formatter = JsonFormatter(include_traceback=debug)
    elif fmt == "text":
        formatter = TextFormatter(include_traceback=debug)
    else:
        raise ValueError(f"unknown log format {fmt!r}; expected 'json' or 'text'")

    global _installed
    logger = logging.getLogger(LOGGER_NAME)
    if _installed is not None:
        logger.removeHandler(_installed)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    logger.setLevel(numeric)
    logger.propagate = False
    _installed = handler


def log_event(
    logger: logging.Logger,
    level: int,
    event: str,
    *,
    exc_info: _ExcInfo = None,
    **fields: object,
) -> None:
    """Log ``event`` (a snake_case name, not a sentence) with ``fields`` as structured key/values."""
    if logger.isEnabledFor(level):
        # stacklevel=2 attributes the record to the caller, not to this helper.
        logger.log(level, event, exc_info=exc_info, extra={"fields": fields}, stacklevel=2)
