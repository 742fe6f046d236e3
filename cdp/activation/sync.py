"""Incremental audience syncs and erasure notices, from a segment's members to a destination.

Why this module exists: it is the one place that decides *who* a destination is told
about. A sync reads the segment's current members through the access layer as the
destination's service account with the segment's purpose, so people whose consent does
not allow that purpose, and fields the policy denies, never reach the destination. It
compares them with what the destination already holds (kept by the access layer) and
delivers only the difference: members who entered, with their fields, and member keys of
those who left (left the segment, withdrew consent, or were erased). A withdrawal between
the read and the delivery is fenced out just before delivering. Only a sync every batch
of which was delivered changes what the destination is recorded to hold; after a failure
the next sync sends the same difference again (receivers dedup by member key).

Erasure requests queue a deletion for every destination that received the person;
:func:`deliver_deletions` sends them to destinations that take deletions.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cdp._exceptions import ConfigurationError, InputError, NotFound
from cdp._logging import get_logger
from cdp.access import CustomerStore
from cdp.access.context import destination_context
from cdp.activation.base import AudienceBatch, DeletionBatch, Destination, DestinationFailed, member_key
from cdp.crypto.keyring import load_or_create_secret
from cdp.plugins import get_plugin_manager
from cdp.policy.loader import load_yaml, require_mapping
from cdp.settings import Settings

__all__ = [
    "DeletionReport",
    "SyncReport",
    "deliver_deletions",
    "destination_types",
    "find_destination",
    "load_destinations",
    "sync_segment",
]

_log = get_logger(__name__)
MEMBER_KEY_SECRET = "destination-member-key"  # noqa: S105 - the name of a secret file, not a secret
READ_CHUNK = 1000
_DESTINATION_NAME = re.compile(r"[A-Za-z0-9_-]{1,60}")


@dataclass(frozen=True)
class SyncReport:
    sync_id: str
    destination: str
    segment: str
    members: int  # in the segment now
    delivered_to: int  # held by the destination after the sync
    added: int
    removed: int
    excluded: int  # members the consent filter (or the fence) kept out
    batches: int
    export_id: str


@dataclass(frozen=True)
class DeletionReport:
    destination: str
    sent: int
    pending: int  # queued but not sent (the destination takes no deletions, or failed)
    error: str | None = None


def destination_types(settings: Settings) -> dict[str, type[Destination]]:
    """Every destination type from the ``cdp_destinations`` hook, by name (later plugins win)."""
    from cdp.hookspecs import PluginContext

    found: dict[str, type[Destination]] = {}
    for group in get_plugin_manager().hook.cdp_destinations(context=PluginContext(settings=settings)):
        for cls in group or ():
            if not (isinstance(cls, type) and issubclass(cls, Destination)) or not getattr(cls, "name", ""):
                raise ConfigurationError(f"cdp_destinations returned {cls!r}, which is not a named Destination class")
            found[cls.name] = cls
    return found


def load_destinations(settings: Settings, path: Path) -> dict[str, Destination]:
    """The destinations configured in ``path`` (YAML: ``destinations: {NAME: {type: …, …}}``),
    each checked against its type's configuration fields; errors name the file, line and key."""
    if not path.is_file():
        raise InputError(f"{path}: no such destinations file")
    doc = load_yaml(path)
    entries = require_mapping(doc, require_mapping(doc, doc.data, ()).get("destinations"), ("destinations",))
    types = destination_types(settings)
    out: dict[str, Destination] = {}
    for name, config in entries.items():
        where = ("destinations", name)
        if not _DESTINATION_NAME.fullmatch(name):
            raise doc.error(where, "a name is 1-60 letters, digits, '-' and '_'")
        kind = require_mapping(doc, config, where).get("type")
        if kind not in types:
            raise doc.error((*where, "type"), f"{kind!r} is not one of {sorted(types)}")
        out[name] = types[kind](name, config, keys_dir=settings.keys_dir, source=f"{path}:{doc.line(*where)}")
    return out


def _member_keys(settings: Settings, destination: str) -> Callable[[str], str]:
    secret = load_or_create_secret(settings.keys_dir, MEMBER_KEY_SECRET)
    return lambda profile_id: member_key(secret, destination, profile_id)


def sync_segment(
    store: CustomerStore,
    destination: Destination,
    segment: str,
    purpose: str,
    *,
    full: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SyncReport:
    """Send ``destination`` the change in ``segment``'s audience since its last delivered sync.

    A member the destination already holds is not sent again when their fields change;
    ``full`` sends every current member as an addition (a destination that lost its copy,
    or one that should get changed fields), and removals as usual.

    Raises :class:`DestinationFailed` (after recording the failed sync) when a batch is not
    taken, and InputError when the destination does not serve ``purpose``.
    """
    if destination.purposes is not None and purpose not in destination.purposes:
        raise InputError(
            f"destination {destination.instance!r} ({destination.name}) serves {list(destination.purposes)}, "
            f"not the segment's purpose {purpose!r}"
        )
    ctx = destination_context(destination.instance, purpose)
    started = datetime.now(UTC)
    members = store.segment_members(ctx, segment, action="export")
    held = store.destination_audience(ctx, destination.instance, segment)
    key_of = _member_keys(store.settings, destination.instance)
    readable: dict[str, dict[str, Any]] = {}
    fields = destination.fields or ("country",)
    for start in range(0, len(members), READ_CHUNK):
        chunk = members[start : start + READ_CHUNK]
        for row in store.read_profiles(ctx, fields, profile_ids=chunk, action="export"):
            readable[row["profile_id"]] = row
        if progress is not None:
            progress(min(start + READ_CHUNK, len(members)), len(members))
    entering = sorted(set(readable) if full else set(readable) - held)
    fenced = store.withdrawn_since(ctx, started, entering)  # a withdrawal while reading wins
    entering = [p for p in entering if p not in fenced]
    allowed = set(readable) - fenced
    leaving = sorted(held - allowed)
    sync_id = f"sync_{uuid.uuid4().hex[:24]}"
    added_rows = [
        {"member_key": key_of(p), **{k: v for k, v in readable[p].items() if k != "profile_id" and v is not None}}
        for p in entering
    ]
    removed_keys = [key_of(p) for p in leaving]
    size = max(1, destination.batch_size)
    parts: list[tuple[Sequence[Mapping[str, Any]], Sequence[str]]] = [
        (added_rows[i : i + size], ()) for i in range(0, len(added_rows), size)
    ]
    parts += [((), removed_keys[i : i + size]) for i in range(0, len(removed_keys), size)]
    # Nothing entered or left: nothing is sent (the sync is still recorded, with zero counts).
    try:
        for sequence, (added, removed) in enumerate(parts):
            destination.deliver(
                AudienceBatch(
                    sync_id=sync_id,
                    destination=destination.instance,
                    segment=segment,
                    purpose=purpose,
                    sequence=sequence,
                    last=sequence == len(parts) - 1,
                    added=tuple(added),
                    removed=tuple(removed),
                )
            )
    except DestinationFailed as exc:
        store.record_failed_sync(
            ctx, sync_id=sync_id, destination=destination.instance, segment=segment, error=str(exc), started_at=started
        )
        _log.warning("destination sync failed", destination=destination.instance, sync_id=sync_id)
        raise
    export_id = store.record_destination_sync(
        ctx,
        sync_id=sync_id,
        destination=destination.instance,
        segment=segment,
        added=entering,
        removed=leaving,
        excluded=len(members) - len(allowed),
        location=destination.location(),
        started_at=started,
    )
    return SyncReport(
        sync_id=sync_id,
        destination=destination.instance,
        segment=segment,
        members=len(members),
        delivered_to=len(held | set(entering)) - len(leaving),
        added=len(entering),
        removed=len(leaving),
        excluded=len(members) - len(allowed),
        batches=len(parts),
        export_id=export_id,
    )


def deliver_deletions(store: CustomerStore, destinations: Mapping[str, Destination]) -> list[DeletionReport]:
    """Tell each configured destination of the erasures queued for it (those that take deletions)."""
    reports: list[DeletionReport] = []
    for name, destination in sorted(destinations.items()):
        ctx = destination_context(name, "dsr")
        queued = store.queued_destination_deletions(ctx, name)
        if not queued:
            continue
        if not destination.supports_deletion:
            reports.append(DeletionReport(name, 0, len(queued), f"type {destination.name!r} takes no deletions"))
            continue
        key_of = _member_keys(store.settings, name)
        people = sorted({profile_id for _, profile_id, _ in queued})
        request_of = {profile_id: request_id for _, profile_id, request_id in queued}
        members = tuple({"member_key": key_of(p), "request_id": request_of[p] or ""} for p in people)
        try:
            destination.delete(DeletionBatch(destination=name, members=members))
        except DestinationFailed as exc:
            reports.append(DeletionReport(name, 0, len(queued), str(exc)))
            continue
        store.finish_destination_deletions(ctx, name, [q for q, _, _ in queued], people)
        reports.append(DeletionReport(name, len(queued), 0))
    return reports


def find_destination(destinations: Mapping[str, Destination], name: str, path: Path) -> Destination:
    if name not in destinations:
        raise NotFound(f"no destination {name!r} in {path} (configured: {sorted(destinations) or 'none'})")
    return destinations[name]
