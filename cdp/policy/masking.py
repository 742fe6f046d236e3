"""Masking functions applied by the access layer, and only there.

``partial`` keeps just enough to recognise a value (``j***@example.com``),
``hash`` gives the SHA-256 of the normalised value (what ad platforms expect
for customer-match audiences), ``generalise`` coarsens (birth date → age
band, postcode → its outward/leading part), ``redact`` removes the value.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from datetime import date

REDACTED = "[redacted]"

AGE_BANDS: tuple[tuple[int, int, str], ...] = (
    (0, 17, "<18"),
    (18, 24, "18-24"),
    (25, 34, "25-34"),
    (35, 44, "35-44"),
    (45, 54, "45-54"),
    (55, 64, "55-64"),
    (65, 200, "65+"),
)


def age_band(age: int) -> str:
    for low, high, label in AGE_BANDS:
        if low <= age <= high:
            return label
    return "unknown"


def age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def partial(field: str, value: str) -> str:
    if not value:
        return value
    if field == "email" and "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    if field == "phone":
        digits = value[-4:]
        return f"{value[:2]}{'*' * max(len(value) - 6, 3)}{digits}" if len(value) > 6 else "***"
    if field == "date_of_birth":
        return f"{value[:4]}-**-**"
    return f"{value[:1]}***"


def sha256_hex(field: str, value: str) -> str:
    normalised = value.strip().lower()
    if field == "phone":
        normalised = "".join(c for c in normalised if c.isdigit())
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def generalise(field: str, value: str, today: date | None = None) -> str:
    if not value:
        return value
    if field == "date_of_birth":
        try:
            born = date.fromisoformat(value[:10])
        except ValueError:
            return "unknown"
        return age_band(age_on(born, today or date.today()))
    if field == "postcode":
        compact = value.replace(" ", "")
        if compact.isdigit():
            return compact[:3] + "*" * max(len(compact) - 3, 0)
        return compact[:-3] if len(compact) > 4 else compact[:2]
    if field == "city":
        return value[:1] + "…"
    return REDACTED


def _partial_text(field: str) -> Callable[[str], str]:
    """:func:`partial` for one field, its branch chosen once (the same output for every text value)."""
    if field == "email":

        def email(value: str) -> str:
            if "@" in value:
                local, _, domain = value.partition("@")
                return f"{local[:1]}***@{domain}"
            return f"{value[:1]}***" if value else value

        return email
    if field == "phone":

        def phone(value: str) -> str:
            if len(value) > 6:
                return f"{value[:2]}{'*' * max(len(value) - 6, 3)}{value[-4:]}"
            return "***" if value else value

        return phone
    if field == "date_of_birth":
        return lambda value: f"{value[:4]}-**-**" if value else value
    return lambda value: f"{value[:1]}***" if value else value


def text_treatment(treatment: str, field: str) -> Callable[[str], str] | None:
    """``apply_treatment`` for one (treatment, field) and text values, resolved once: None means ``allow``.

    For callers whose values are always text (the profile read's golden values): one call per
    value, with the field's branch of the masking chosen here rather than per value.
    """
    if treatment == "allow":
        return None
    if treatment == "mask:partial":
        return _partial_text(field)
    handler = _HANDLERS.get(treatment)
    if handler is None:
        return lambda _value: REDACTED
    return functools.partial(handler, field)


def treatment_function(treatment: str, field: str) -> Callable[[object], object] | None:
    """``apply_treatment`` for one (treatment, field), resolved once: None means ``allow``.

    Reads mask the same field of every row the same way, so the dispatch is done once
    per read instead of once per value.
    """
    text = text_treatment(treatment, field)
    if text is None:
        return None
    if treatment not in _HANDLERS:
        return lambda value: None if value is None else REDACTED

    def treat(value: object) -> object:
        if value.__class__ is str:  # what reads hand over; checked first since masking runs per value
            return text(value)
        if value is None:
            return None
        return text(value.isoformat() if isinstance(value, date) else str(value))

    return treat


def apply_treatment(treatment: str, field: str, value: object) -> object:
    """Apply one policy treatment to one value. ``deny`` never reaches here."""
    if value is None or treatment == "allow":
        return value
    text = value.isoformat() if isinstance(value, date) else str(value)
    handler = _HANDLERS.get(treatment)
    if handler is None:
        return REDACTED
    return handler(field, text)


_HANDLERS: dict[str, Callable[[str, str], str]] = {
    "mask:partial": partial,
    "mask:hash": sha256_hex,
    "mask:generalise": generalise,
}
