"""The Segment-compatible collection endpoint: /v1/identify, track, page, alias, batch.

Existing Segment and RudderStack client libraries pointed at cdp work
unchanged: the write key is the HTTP basic-auth user name (or ``writeKey`` in
the body), ``messageId`` makes re-sends no-ops, a call is limited to 32 KB and
a batch to 500 KB (400 with the reason beyond), and ``Sec-GPC: 1`` is recorded
as an opt-out of sale/sharing. Bad calls are quarantined, never dropped.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from typing import Any

from litestar import Controller, Request, post
from litestar.datastructures import State

from cdp._exceptions import InputError, RecordRejected
from cdp.access import CustomerStore
from cdp.access.context import connector_context
from cdp.connectors.prepare import normalise_record
from cdp.connectors.website import MAX_BATCH_BYTES, MAX_CALL_BYTES, call_to_record, message_id
from cdp.model import IncomingRecord
from cdp.settings import Settings


class Unauthorized(InputError):
    http_status = 401


def _write_key(request: Request[Any, Any, Any], body: dict[str, Any]) -> str:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("malformed basic authorization header") from None
        return decoded.partition(":")[0]
    key = body.get("writeKey")
    return key if isinstance(key, str) else ""


def _authorise(settings: Settings, key: str) -> None:
    if not key:
        raise Unauthorized("missing write key: send it as the basic-auth user name")
    if not any(hmac.compare_digest(key.encode(), k.encode()) for k in settings.write_keys):
        raise Unauthorized("unknown write key")


async def _read_json(request: Request[Any, Any, Any], limit: int, what: str) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > limit:
        raise InputError(f"{what} is {len(raw)} bytes, over the {limit // 1024} KB limit")
    try:
        body = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InputError("body must be a JSON object")
    return body


class CollectController(Controller):
    path = "/v1"

    def _ingest(
        self, state: State, calls: list[dict[str, Any]], *, gpc: bool, forced_type: str | None
    ) -> dict[str, Any]:
        store: CustomerStore = state.store
        settings: Settings = state.settings
        normalizers = state.normalizers
        ctx = connector_context("website")
        records: list[IncomingRecord] = []
        rejected: list[dict[str, str]] = []
        for original in calls:
            call = original if forced_type is None else {**original, "type": forced_type}
            try:
                if len(json.dumps(call).encode()) > MAX_CALL_BYTES:
                    raise RecordRejected("call is over the 32 KB limit", record=message_id(call), field="")
                record = call_to_record(call, gpc=gpc, strict_keys=False)
                records.append(normalise_record(record, normalizers, settings.default_region))
            except RecordRejected as exc:
                position = f"http:{message_id(call)}"
                store.quarantine(
                    ctx,
                    source="website",
                    stream="calls",
                    position=position,
                    field=exc.field or None,
                    reason=exc.message,
                    raw=json.dumps(call, ensure_ascii=False),
                )
                rejected.append({"messageId": message_id(call), "field": exc.field, "reason": exc.reason})
        outcome = store.ingest(ctx, records) if records else None
        if rejected and not records:
            raise InputError(f"{rejected[0]['messageId']}: field {rejected[0]['field']!r}: {rejected[0]['reason']}")
        return {
            "success": True,
            "accepted": outcome.accepted if outcome else 0,
            "duplicates": outcome.duplicates if outcome else 0,
            "rejected": rejected,
        }

    async def _single(self, request: Request[Any, Any, State], kind: str) -> dict[str, Any]:
        body = await _read_json(request, MAX_CALL_BYTES, "call")
        _authorise(request.app.state.settings, _write_key(request, body))
        return self._ingest(request.app.state, [body], gpc=request.headers.get("sec-gpc") == "1", forced_type=kind)

    @post("/identify", status_code=200)
    async def identify(self, request: Request[Any, Any, State]) -> dict[str, Any]:
        return await self._single(request, "identify")

    @post("/track", status_code=200)
    async def track(self, request: Request[Any, Any, State]) -> dict[str, Any]:
        return await self._single(request, "track")

    @post("/page", status_code=200)
    async def page(self, request: Request[Any, Any, State]) -> dict[str, Any]:
        return await self._single(request, "page")

    @post("/screen", status_code=200)
    async def screen(self, request: Request[Any, Any, State]) -> dict[str, Any]:
        return await self._single(request, "screen")

    @post("/alias", status_code=200)
    async def alias(self, request: Request[Any, Any, State]) -> dict[str, Any]:
        return await self._single(request, "alias")

    @post("/group", status_code=200)
    async def group(self, request: Request[Any, Any, State]) -> dict[str, Any]:
        return await self._single(request, "group")

    @post(["/batch", "/import"], status_code=200)
    async def batch(self, request: Request[Any, Any, State]) -> dict[str, Any]:
        body = await _read_json(request, MAX_BATCH_BYTES, "batch")
        _authorise(request.app.state.settings, _write_key(request, body))
        calls = body.get("batch")
        if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
            raise InputError("field 'batch' must be a list of call objects")
        context = body.get("context")
        if isinstance(context, dict):
            calls = [{**c, "context": {**context, **(c.get("context") or {})}} for c in calls]
        return self._ingest(request.app.state, calls, gpc=request.headers.get("sec-gpc") == "1", forced_type=None)
