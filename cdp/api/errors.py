"""Mapping cdp's error tree to HTTP, in one place.

The body carries ``code`` and ``message`` (the fields Segment's client
libraries read from an error response) besides cdp's own ``error`` name, so
a client pointed at cdp reports the real reason instead of "unknown".
Messages are cdp's own and never contain personal data.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response

from cdp._exceptions import CDPError


def cdp_error_handler(_request: Request[Any, Any, Any], error: Exception) -> Response[dict[str, object]]:
    assert isinstance(error, CDPError)
    name = type(error).__name__
    body: dict[str, object] = {"success": False, "error": name, "code": name, "message": error.message}
    headers = {"WWW-Authenticate": 'Basic realm="cdp"'} if error.http_status == 401 else None
    return Response(body, status_code=error.http_status, headers=headers)
