"""The built-in normalisers, registered as a plugin through the ``cdp_normalizers`` hook.

cdp's own features are default plugins of its own hooks (the datasette way),
so a third-party plugin can replace, say, the phone normaliser for one market
by returning ``{"phone": its_function}`` from the same hook: later plugins
override earlier ones. This module only wires :mod:`cdp.identity.normalize`
into that hook.

Callables and their call shapes (they are not interchangeable):

- ``email(value)`` → :class:`~cdp.identity.normalize.NormalizedEmail` | None
- ``phone(value, default_region="US")`` → E.164 str | None
- ``name(given=None, family=None, full=None, *, country=None)`` →
  :class:`~cdp.identity.normalize.NormalizedName` | None
- ``date_of_birth(value, *, country=None, today=None)`` → date | None
- ``postcode(value, country=None)``, ``city(value)``, ``country(value)`` → str | None
"""

from __future__ import annotations

from typing import Any

from cdp.hookspecs import PluginContext, hookimpl
from cdp.identity.normalize import (
    normalize_city,
    normalize_country,
    normalize_date_of_birth,
    normalize_email,
    normalize_name,
    normalize_phone,
    normalize_postcode,
)

__all__ = ["cdp_normalizers"]


@hookimpl
def cdp_normalizers(context: PluginContext) -> dict[str, Any]:
    """Return the built-in ``{field_type: normaliser}`` mapping."""
    return {
        "email": normalize_email,
        "phone": normalize_phone,
        "name": normalize_name,
        "date_of_birth": normalize_date_of_birth,
        "postcode": normalize_postcode,
        "city": normalize_city,
        "country": normalize_country,
    }
