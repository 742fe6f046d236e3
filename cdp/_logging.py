"""Structured logging that cannot leak personal data.

structlog renders JSON in production and pretty lines in a terminal. Before
rendering, :func:`redact_personal_data` runs on every event: values under keys
that name personal data are replaced, and any string that looks like an email
address, a phone number or a card number is masked wherever it appears. The
rule is enforced here, once, rather than trusted to every call site
(``tests/test_logging_pii.py`` proves it).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

REDACTED = "[redacted]"

# Keys whose values are personal data whatever they contain.
PERSONAL_KEYS = frozenset(
    {
        "email",
        "phone",
        "name",
        "first_name",
        "last_name",
        "given_name",
        "family_name",
        "full_name",
        "firstname",
        "lastname",
        "address",
        "street",
        "birthday",
        "date_of_birth",
        "dob",
        "birth_date",
        "ip",
        "traits",
        "payload",
        "value",
        "values",
        "plaintext",
        "customer_name",
        "customer_email",
        "customer_phone",
        "respondent",
        "feedback",
        "password",
        "secret",
        "token",
        "write_key",
    }
)

_EMAIL = re.compile(r"[^\s@<>\"'(),;:]+@[^\s@<>\"'(),;:]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\w.])\+?\d[\d\s().\-]{6,}\d(?![\w.])")
_LONG_DIGITS = re.compile(r"\b\d{12,19}\b")


def scrub_text(text: str) -> str:
    """Mask anything in free text that looks like an email, phone or card number."""
    text = _EMAIL.sub(REDACTED, text)
    text = _LONG_DIGITS.sub(REDACTED, text)
    return _PHONE.sub(lambda m: REDACTED if sum(c.isdigit() for c in m.group()) >= 7 else m.group(), text)


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 6:
        return REDACTED
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {k: (REDACTED if str(k).lower() in PERSONAL_KEYS else _scrub(v, depth + 1)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v, depth + 1) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, int | float | bool) or value is None:
        return value
    return scrub_text(str(value))


def redact_personal_data(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the last line of defence against personal data in logs."""
    for key in list(event_dict):
        if key.lower() in PERSONAL_KEYS:
            event_dict[key] = REDACTED
        elif key == "exc_info":
            continue
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def _scrub_exception(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    exception = event_dict.get("exception")
    if isinstance(exception, str):
        event_dict["exception"] = scrub_text(exception)
    return event_dict


def configure_logging(*, environment: str = "development", level: str = "INFO", stream: Any = None) -> None:
    """Configure structlog once per process; safe to call again (tests do)."""
    out = stream if stream is not None else sys.stderr
    json_output = environment == "production" or not getattr(out, "isatty", lambda: False)()
    renderer: Any = structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_personal_data,
            structlog.processors.format_exc_info,
            _scrub_exception,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
