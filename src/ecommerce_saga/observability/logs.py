"""Logging set-up: JSON lines (or human-readable text), carrying structured fields such as saga ids.

Fields can also come from context: `add_log_context` registers a provider (the saga being run,
the current trace) whose fields are added to every record that lacks them. Both formatters
scrub secrets on the way out: values of sensitive fields (``authorization``, ``*token*``,
``card_number``, ...), bearer credentials and card numbers (Luhn-valid runs of 14-19 digits)
never reach the log.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's copy of the message with terminal colours
}

LogContext = Callable[[logging.LogRecord], Mapping[str, object]]
"""Returns fields for a record (e.g. the current trace id); it must be fast and must not raise."""

_contexts: list[LogContext] = []

REDACTED = "[REDACTED]"
_SENSITIVE_WORDS = ("authorization", "password", "secret", "token", "card_number", "cvv", "cvc")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_CARD = re.compile(r"(?<![\d.])\d(?:[ -]?\d){13,18}(?!\d)")


def add_log_context(provider: LogContext) -> None:
    """Add the fields `provider` returns to every record that does not carry them already."""
    if provider not in _contexts:
        _contexts.append(provider)


def remove_log_context(provider: LogContext) -> None:
    """Stop adding `provider`'s fields."""
    if provider in _contexts:
        _contexts.remove(provider)


class ContextFilter(logging.Filter):
    """Adds the fields of every registered `LogContext` to each record (installed on the handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Enrich `record`; never drops it."""
        for provider in list(_contexts):
            try:
                fields = provider(record)
            except Exception:  # noqa: BLE001, S112 - a broken context must not lose the line (nor log)
                continue
            for key, value in fields.items():
                if value is not None and key not in record.__dict__:
                    setattr(record, key, value)
        return True


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return f"[CARD ****{digits[-4:]}]" if _luhn_valid(digits) else match.group()


def scrub(text: str) -> str:
    """`text` with bearer/basic credentials and card numbers masked."""
    return _CARD.sub(_mask_card, _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text))


def _is_sensitive(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in _SENSITIVE_WORDS)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: REDACTED if _is_sensitive(key) else value
        for key, value in record.__dict__.items()
        if key not in _STANDARD
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and every structured field."""

    def format(self, record: logging.LogRecord) -> str:
        """Render `record` as JSON."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return scrub(json.dumps(entry, default=str))


class TextFormatter(logging.Formatter):
    """Human-readable lines with the structured fields appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        """Render `record` as text."""
        fields = " ".join(f"{key}={value}" for key, value in _extras(record).items())
        base = super().format(record)
        return scrub(f"{base} {fields}" if fields else base)


def configure_logging(fmt: str = "json", level: str = "INFO") -> None:
    """Send the root logger to stderr in `fmt` ("json" or "text") at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("pymongo", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
