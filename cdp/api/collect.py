"""The Segment-compatible collection endpoint: /v1/identify, track, page, alias, batch.

Existing Segment and RudderStack client libraries pointed at cdp work
unchanged: the write key is the HTTP basic-auth user name (or ``writeKey`` in
the body), ``messageId`` makes re-sends no-ops, a call is limited to 32 KB and
a batch to 500 KB (400 with the reason beyond; gzip bodies are measured
after decompression), and ``Sec-GPC: 1`` is recorded as an opt-out of
sale/sharing. Bad calls are quarantined, never dropped.

Parsing happens on the event loop; storing runs on a worker thread through a
group commit (:class:`GroupWriter`): requests that arrive while a
transaction is being written share the next one, so concurrent clients cost
one transaction per round instead of one each.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, post
from litestar.datastructures import State

from cdp._exceptions import InputError, RecordRejected
from cdp.access import CustomerStore
from cdp.access.context import connector_context
from cdp.connectors.prepare import normalise_record
from cdp.connectors.website import MAX_BATCH_BYTES, MAX_CALL_BYTES, call_to_record, message_id
from cdp.model import IncomingRecord, IngestOutcome
from cdp.settings import Settings

SOURCE = "website"
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


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


def _too_big(what: str, size: int | str, limit: int) -> InputError:
    return InputError(f"{what} is {size} bytes, over the {limit // 1024} KB limit")


async def _read_body(request: Request[Any, Any, Any], limit: int, what: str) -> bytes:
    """The body, refused as soon as it is known to exceed ``limit`` (declared, received or inflated)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_big(what, int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_big(what, f"more than {limit}", limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        inflater = zlib.decompressobj(wbits=47 if encoding != "deflate" else 15)
        try:
            raw = inflater.decompress(raw, limit + 1)
        except zlib.error:
            raise InputError(f"body is not valid {encoding} data") from None
        if len(raw) > limit or inflater.unconsumed_tail:
            raise _too_big(what, f"more than {limit} (decompressed)", limit)
    elif encoding not in ("", "identity"):
        raise InputError(f"unsupported content-encoding {encoding!r}")
    return raw


async def _read_json(request: Request[Any, Any, Any], limit: int, what: str) -> dict[str, Any]:
    raw = await _read_body(request, limit, what)
    try:
        body = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InputError("body must be a JSON object")
    return body


class GroupWriter:
    """Stores records for concurrent requests, several requests per transaction.

    A request adds its records and rejects to the pending list and waits; whoever
    holds the lock writes everything pending on a worker thread (quarantine
    entries first, then all records in one ``ingest_many`` transaction) and
    hands each request its own outcome. If a shared transaction fails, each
    request's part is retried alone, so one bad request cannot fail the others.
    """

    def __init__(self, store: CustomerStore, on_stored: Callable[[Sequence[str]], None] | None = None) -> None:
        self.store = store
        self.on_stored = on_stored  # told the ids of committed records (identity matching on arrival)
        self.ctx = connector_context(SOURCE)
        self.lock = asyncio.Lock()
        self.pending: list[tuple[list[IncomingRecord], list[dict[str, Any]], asyncio.Future[IngestOutcome]]] = []

    async def write(self, records: list[IncomingRecord], rejects: list[dict[str, Any]]) -> IngestOutcome:
        future: asyncio.Future[IngestOutcome] = asyncio.get_running_loop().create_future()
        self.pending.append((records, rejects, future))
        async with self.lock:
            if not future.done():
                jobs, self.pending = self.pending, []
                try:
                    outcomes = await anyio.to_thread.run_sync(self._store, jobs)
                except Exception as exc:
                    for _, _, waiting in jobs:
                        waiting.set_exception(exc)
                else:
                    for (_, _, waiting), outcome in zip(jobs, outcomes, strict=True):
                        if isinstance(outcome, BaseException):
                            waiting.set_exception(outcome)
                        else:
                            waiting.set_result(outcome)
                            if self.on_stored is not None and outcome.record_ids:
                                self.on_stored(outcome.record_ids)
        return await future

    def _store(self, jobs: Sequence[tuple[list[IncomingRecord], list[dict[str, Any]], Any]]) -> list[Any]:
        try:
            self.store.quarantine_many(self.ctx, [entry for _, rejects, _ in jobs for entry in rejects])
            if not any(records for records, _, _ in jobs):
                return [IngestOutcome(0, 0) for _ in jobs]
            return list(self.store.ingest_many(self.ctx, [records for records, _, _ in jobs]))
        except Exception:
            if len(jobs) == 1:
                raise
        results: list[Any] = []
        for records, rejects, _ in jobs:
            try:
                self.store.quarantine_many(self.ctx, rejects)
                results.append(self.store.ingest(self.ctx, records))
            except Exception as exc:  # this request's own failure, reported to it alone
                results.append(exc)
        return results


def _writer(state: State) -> GroupWriter:
    writer = state.get("group_writer")
    if writer is None:
        matcher = state.get("matcher")
        writer = state["group_writer"] = GroupWriter(state.store, matcher.submit if matcher is not None else None)
    assert isinstance(writer, GroupWriter)
    return writer


def _prepare(
    state: State, calls: list[dict[str, Any]], *, gpc: bool, forced_type: str | None
) -> tuple[list[IncomingRecord], list[dict[str, Any]], list[dict[str, str]]]:
    settings: Settings = state.settings
    normalizers = state.normalizers
    records: list[IncomingRecord] = []
    rejects: list[dict[str, Any]] = []
    rejected: list[dict[str, str]] = []
    received = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for original in calls:
        call = original if forced_type is None else {**original, "type": forced_type}
        if "receivedAt" not in call:
            # Like Segment: a call without a timestamp is dated when received. The id is fixed first,
            # so a re-sent call without a messageId keeps its content-hash id.
            call = {**call, "messageId": message_id(call), "receivedAt": received}
        text = ""
        try:
            text = _ENCODE(call)
            size = len(text.encode())
            if size > MAX_CALL_BYTES:
                raise RecordRejected(
                    f"call is {size} bytes, over the 32 KB limit", record=message_id(call), field="(size)"
                )
            if not isinstance(call.get("type"), str | None):  # not hashable either: reject before parsing
                raise RecordRejected("must be text", record=message_id(call), field="type")
            record = call_to_record(call, gpc=gpc, strict_keys=False)
            records.append(normalise_record(record, normalizers, settings.default_region))
        except RecordRejected as exc:
            mid = message_id(call)
            rejects.append(
                {
                    "source": SOURCE,
                    "stream": "calls",
                    "position": f"http:{mid}",
                    "field": exc.field or None,
                    "reason": exc.message,
                    "raw": text or _ENCODE(call),
                }
            )
            rejected.append({"messageId": mid, "field": exc.field, "reason": exc.reason})
    return records, rejects, rejected


class CollectController(Controller):
    path = "/v1"

    async def _ingest(
        self, state: State, calls: list[dict[str, Any]], *, gpc: bool, forced_type: str | None
    ) -> dict[str, Any]:
        records, rejects, rejected = _prepare(state, calls, gpc=gpc, forced_type=forced_type)
        outcome = await _writer(state).write(records, rejects)
        if rejected and not records:
            first = rejected[0]
            raise InputError(f"{first['messageId']}: field {first['field']!r}: {first['reason']}")
        return {
            "success": True,
            "accepted": outcome.accepted,
            "duplicates": outcome.duplicates,
            "rejected": rejected,
        }

    async def _single(self, request: Request[Any, Any, State], kind: str) -> dict[str, Any]:
        body = await _read_json(request, MAX_CALL_BYTES, "call")
        _authorise(request.app.state.settings, _write_key(request, body))
        return await self._ingest(
            request.app.state, [body], gpc=request.headers.get("sec-gpc") == "1", forced_type=kind
        )

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
            calls = [
                {**c, "context": {**context, **(c.get("context") or {})}}
                if isinstance(c.get("context") or {}, dict)
                else c  # a malformed per-call context is rejected (and quarantined) with the call
                for c in calls
            ]
        return await self._ingest(request.app.state, calls, gpc=request.headers.get("sec-gpc") == "1", forced_type=None)
