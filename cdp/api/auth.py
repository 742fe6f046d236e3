"""Who is calling the API: an API key bound to an actor and a role, plus a declared purpose.

Keys come from ``CDP_API_KEYS`` (``actor:role:key``, comma-separated). The
caller declares the purpose in the ``X-CDP-Purpose`` header on every request;
there is no default, so a request without one is refused (fail closed) and the
refusal is audited by the access layer like any other denial.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from litestar import Request

from cdp._exceptions import AccessDenied, ConfigurationError
from cdp.access import AccessContext
from cdp.settings import Settings


class Unauthenticated(AccessDenied):
    http_status = 401


def _parse(settings: Settings) -> list[tuple[str, str, bytes]]:
    keys: list[tuple[str, str, bytes]] = []
    for entry in settings.api_keys:
        parts = entry.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise ConfigurationError("CDP_API_KEYS entries must look like actor:role:key")
        actor, role, key = parts
        keys.append((actor, role, hashlib.sha256(key.encode()).digest()))
    return keys


def request_context(request: Request[Any, Any, Any]) -> AccessContext:
    settings: Settings = request.app.state.settings
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    if not token:
        raise Unauthenticated("missing API key (Authorization: Bearer KEY)")
    digest = hashlib.sha256(token.encode()).digest()
    for actor, role, known in _parse(settings):
        if hmac.compare_digest(digest, known):
            purpose = request.headers.get("x-cdp-purpose", "")
            request_id = request.headers.get("x-request-id") or None
            context = AccessContext(f"api:{actor}", role, purpose)
            return AccessContext(context.actor, role, purpose, request_id) if request_id else context
    raise Unauthenticated("unknown API key")
