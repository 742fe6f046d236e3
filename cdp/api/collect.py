"""The Segment-compatible collection endpoint: /v1/identify, track, page, alias, batch.

Existing Segment and RudderStack client libraries pointed at cdp work
unchanged: the write key is the HTTP basic-auth user name (or ``writeKey`` in
the body), ``messageId`` makes re-sends no-ops, a call is limited to 32 KB and
a batch to 500 KB (400 with the reason beyond; gzip bodies are measured
after decompression), and ``Sec-GPC: 1`` is recorded as an opt-out of
sale/sharing. Bad calls are quarantined, never dropped.

Storing runs on a worker thread through a group commit (:class:`GroupWriter`):
requests that arrive while a transaction is being written share the next
one, so concurrent clients cost one transaction per round instead of one
each. Parsing a ``/v1/batch`` body of 4 KB or more (JSON, the Segment spec,
normalisation, payload JSON, blind indexes) runs in a parser process
(:class:`BatchParser`, started on the first such request), so it uses the
second core while this process stores; smaller calls are parsed on the
event loop. Bodies reach the parser through a pipe, never a file.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import multiprocessing
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Controller, Request, post
from litestar.datastructures import State

from cdp._exceptions import InputError, RecordRejected
from cdp._gc import fewer_collections, fewer_collections_from_now
from cdp.access import CustomerStore
from cdp.access._rows import Ready, RowMaker, pack_rows, unpack_rows
from cdp.access.context import connector_context
from cdp.connectors._parse import json_loads
from cdp.connectors.prepare import normalise_record
from cdp.connectors.website import MAX_BATCH_BYTES, MAX_CALL_BYTES, call_to_record, message_id
from cdp.model import IncomingRecord, IngestOutcome
from cdp.settings import Settings

SOURCE = "website"
PARSER_MIN_BYTES = 4096  # smaller batch bodies cost less to parse here than to send to the parser
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
_FAST_ENCODE = msgspec.json.Encoder().encode


class Unauthorized(InputError):
    http_status = 401


def _header_key(request: Request[Any, Any, Any]) -> str | None:
    """The write key of the basic-auth header; None without one."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("malformed basic authorization header") from None
        return decoded.partition(":")[0]
    return None


def _write_key(request: Request[Any, Any, Any], body: dict[str, Any]) -> str:
    header = _header_key(request)
    if header is not None:
        return header
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


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        body = json_loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InputError("body must be a JSON object")
    return body


async def _read_json(request: Request[Any, Any, Any], limit: int, what: str) -> dict[str, Any]:
    return _decode(await _read_body(request, limit, what))


def _batch_calls(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The calls of a batch body, each with the batch's shared ``context`` merged in."""
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
    return calls


Parsed = tuple[list[Ready], list[dict[str, Any]], list[dict[str, str]]]  # records, quarantine entries, rejected


class BatchParser:
    """A process that turns ``/v1/batch`` bodies into rows ready for storing (see ``RowMaker``).

    Why: parsing and preparing a call costs about as much CPU as storing it; in one process both
    take turns on the GIL. The parser is spawned (not forked: the server runs threads) with the
    settings, and opens the store only to read its policy and blind-index secret; it writes
    nothing. Plaintext crosses only the pipe between the processes.
    """

    def __init__(self, settings: Settings) -> None:
        context = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(1, mp_context=context, initializer=_parser_start, initargs=(settings,))

    async def parse(self, raw: bytes, gpc: bool) -> Parsed:
        packed, marshalled, rejects, rejected = await asyncio.get_running_loop().run_in_executor(
            self.pool, _parser_parse, raw, gpc
        )
        return unpack_rows(packed, marshalled), rejects, rejected

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


_PARSER_STATE: dict[str, Any] = {}  # in the parser process: settings, normalisers, row maker


def _parser_start(settings: Settings) -> None:
    from cdp.access import open_store
    from cdp.connectors.runner import load_normalizers

    store = open_store(settings)
    try:
        maker = store.row_maker(store.engine.dialect)
    finally:
        store.close()  # the maker keeps the policy and the indexer, not the database
    _PARSER_STATE.update(settings=settings, normalizers=load_normalizers(settings), maker=maker)
    fewer_collections_from_now()  # this process only parses: its per-body objects are short-lived


def _parser_parse(raw: bytes, gpc: bool) -> tuple[bytes, bool, list[dict[str, Any]], list[dict[str, str]]]:
    """In the parser process: the body's rows, packed (:func:`pack_rows`: marshal, read back in a
    third less time than the pickle the pool would use), its quarantine entries and its rejections."""
    calls = _batch_calls(_decode(raw))
    maker: RowMaker = _PARSER_STATE["maker"]
    records, rejects, rejected = _prepare(
        _PARSER_STATE["settings"], _PARSER_STATE["normalizers"], calls, gpc=gpc, forced_type=None
    )
    packed, marshalled = pack_rows(maker.make(records))
    return packed, marshalled, rejects, rejected


_PARSERS_LOCK = threading.Lock()


def _parser(state: State) -> BatchParser | None:
    """The app's parser process (started on first use); None where it cannot run."""
    with _PARSERS_LOCK:
        parser = state.get("batch_parser")
        if parser is None and not state.get("batch_parser_failed"):
            try:
                parser = state["batch_parser"] = BatchParser(state.settings)
            except (OSError, RuntimeError, ValueError):  # no processes here: parse in this one
                state["batch_parser_failed"] = True
        assert parser is None or isinstance(parser, BatchParser)
        return parser


async def stop_parser(state: State) -> None:
    """Stop the app's parser process, if one was started (on shutdown)."""
    parser = state.get("batch_parser")
    if isinstance(parser, BatchParser):
        state["batch_parser"] = None
        parser.close()


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
        self.pending: list[tuple[list[Ready], list[dict[str, Any]], asyncio.Future[IngestOutcome]]] = []
        # Rows are made with the store's dialect (here and in the parser): on SQLite, driver-ready.
        self.maker = store.row_maker(store.engine.dialect)

    async def write(self, records: list[Ready], rejects: list[dict[str, Any]]) -> IngestOutcome:
        """Store records made by :attr:`maker` (or the parser's, which is made alike)."""
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

    def _store(self, jobs: Sequence[tuple[list[Ready], list[dict[str, Any]], Any]]) -> list[Any]:
        with fewer_collections():
            return self._store_jobs(jobs)

    def _store_jobs(self, jobs: Sequence[tuple[list[Ready], list[dict[str, Any]], Any]]) -> list[Any]:
        converted = self.maker.converted
        try:
            self.store.quarantine_many(self.ctx, [entry for _, rejects, _ in jobs for entry in rejects])
            if not any(records for records, _, _ in jobs):
                return [IngestOutcome(0, 0) for _ in jobs]
            return list(self.store.ingest_ready(self.ctx, [records for records, _, _ in jobs], converted=converted))
        except Exception:
            if len(jobs) == 1:
                raise
        results: list[Any] = []
        for records, rejects, _ in jobs:
            try:
                self.store.quarantine_many(self.ctx, rejects)
                results.append(self.store.ingest_ready(self.ctx, [records], converted=converted)[0])
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


def _call_size(call: Mapping[str, Any]) -> int:
    """The size of ``call`` as compact JSON (what the 32 KB limit counts), or 0 when clearly below it.

    msgspec writes the same value in under a third of the time, and two compact JSON texts of one
    value differ in length by less than a factor of three (number spellings: ``1e-7`` or ``1e-07``,
    ``null`` or ``-Infinity``); only a call that might be near the limit is measured exactly.
    """
    try:
        if len(_FAST_ENCODE(call)) * 3 <= MAX_CALL_BYTES:
            return 0
    except (msgspec.MsgspecError, TypeError, ValueError, OverflowError):
        pass
    return len(_ENCODE(call).encode())


def _prepare(
    settings: Settings,
    normalizers: Mapping[str, Callable[..., Any]],
    calls: list[dict[str, Any]],
    *,
    gpc: bool,
    forced_type: str | None,
) -> tuple[list[IncomingRecord], list[dict[str, Any]], list[dict[str, str]]]:
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
            size = _call_size(call)
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
        records, rejects, rejected = _prepare(
            state.settings, state.normalizers, calls, gpc=gpc, forced_type=forced_type
        )
        writer = _writer(state)
        return await self._store(writer, (writer.maker.make(records), rejects, rejected))

    async def _store(self, writer: GroupWriter, parsed: Parsed) -> dict[str, Any]:
        records, rejects, rejected = parsed
        outcome = await writer.write(records, rejects)
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
        state = request.app.state
        raw = await _read_body(request, MAX_BATCH_BYTES, "batch")
        gpc = request.headers.get("sec-gpc") == "1"
        key = _header_key(request)
        if key is not None and len(raw) >= PARSER_MIN_BYTES:
            parser = _parser(state)
            if parser is not None:
                _authorise(state.settings, key)
                try:
                    parsed = await parser.parse(raw, gpc)
                except BrokenProcessPool:  # the parser died (killed?): a new one for the next request
                    if state.get("batch_parser") is parser:
                        state["batch_parser"] = None
                    parser.close()
                else:
                    return await self._store(_writer(state), parsed)
        body = _decode(raw)
        _authorise(state.settings, _write_key(request, body))
        return await self._ingest(state, _batch_calls(body), gpc=gpc, forced_type=None)
