"""Mapping cdp's error tree to HTTP, in one place."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response

from cdp._exceptions import CDPError


def cdp_error_handler(_request: Request[Any, Any, Any], error: Exception) -> Response[dict[str, object]]:
    assert isinstance(error, CDPError)
    body: dict[str, object] = {"success": False, "error": type(error).__name__, "message": error.message}
    return Response(body, status_code=error.http_status)
