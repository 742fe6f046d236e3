"""Matching records as they arrive, against the profiles already in the store.

Why this module exists: a record that comes in through any connector (a POS
sale, a survey answer, an ``identify`` call) should join its person's profile
now, not at the next batch resolution, and without keeping a plaintext index
of every customer in memory. So, per run over the records that have no
profile yet:

1. their match keys (the batch blocking keys, :func:`~cdp.identity.incremental.blocking_keys`)
   are looked up as blind indexes in the store, which returns the candidate
   records of live profiles; only those, and the other records of their
   profiles, are decrypted (one audited read);
2. each new record is scored against the candidates with the saved model's
   Fellegi–Sunter weights and accepted under the batch threshold and guards
   (:class:`~cdp.identity.incremental.ProfileIndex`, used as a per-run scratch
   index and dropped at the end of the run); a record that matches nobody
   starts a new profile, which later records of the same run can join;
3. anonymous activity follows verified identifiers: an event record with no
   identity joins the profile of a record sharing its account id or
   anonymous id, and an identified record pulls in the unlinked anonymous
   history of its device;
4. the records are attached (no other record's link changes), their match
   keys stored, and every probabilistic join kept as evidence for
   ``cdp identity explain``.

The batch (:func:`~cdp.identity.service.resolve_identities`) remains the
reference: it re-clusters everyone, can split and re-merge, and writes the
match keys of every record; the incremental path only ever adds records.
Without a trained model (before the first batch run) it does nothing.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cdp.access import CustomerStore
from cdp.access.context import identity_context
from cdp.access.store import NEW_PROFILE
from cdp.identity._features import feature_row
from cdp.identity.deterministic import MAX_KEY_FANOUT, RULE_ORDER
from cdp.identity.incremental import MatchResult, ProfileIndex, blocking_keys
from cdp.identity.probabilistic import load_model
from cdp.settings import Settings

__all__ = ["RealtimeReport", "match_new_records"]

METHOD = "incremental"
VERIFIED_KINDS = ("user_id", "anonymous_id")
"""Identifiers that tie anonymous activity to a person, strongest first (as in the batch rule order)."""


@dataclass
class RealtimeReport:
    examined: int = 0
    joined_existing: int = 0
    new_profiles: int = 0
    followed_identifiers: int = 0
    """Anonymous records attached through a shared account or anonymous id."""
    left_anonymous: int = 0
    refused: int = 0
    """Records that scored above the threshold against a profile the guards kept them out of."""
    candidates_read: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    """Per identified record: scoring and the decision (the store reads are shared by the run)."""
    seconds: float = 0.0
    skipped: str | None = None


def match_new_records(
    store: CustomerStore, settings: Settings, *, record_ids: Collection[str] | None = None
) -> RealtimeReport:
    """Give every record without a profile (or only ``record_ids``) one; see the module docstring."""
    started = time.perf_counter()
    report = RealtimeReport()
    model = load_model(settings.model_path)
    if model is None:
        report.skipped = "no trained model yet: run `cdp resolve` once"
        return report
    ctx = identity_context()
    # Without a list of new records, every identified record that has no profile; anonymous
    # activity is then only pulled in through an identifier (it would otherwise be re-read every run).
    arriving = store.arrivals(ctx, record_ids=record_ids, kinds=None if record_ids else ("identity",))
    report.examined = len(arriving)
    if not arriving:
        report.seconds = time.perf_counter() - started
        return report
    index = ProfileIndex(model, threshold=settings.match_threshold)
    identified = [r for r in arriving if r["kind"] == "identity"]
    rows = {str(r["record_id"]): feature_row(r, index.domains) for r in identified}
    keys = {record_id: blocking_keys(row) for record_id, row in rows.items()}
    digests = {d for r in arriving for kind, d in (r.get("digests") or {}).items() if kind in RULE_ORDER and d}
    around = store.match_neighbourhood(ctx, keys, RULE_ORDER, digests, max_holders=MAX_KEY_FANOUT)
    holders = _Holders(around.sharing)
    index.add_records(around.features)
    report.candidates_read = len(around.features)

    assignments: dict[str, str] = {}
    reasons: dict[str, str] = {}
    evidence: list[dict[str, Any]] = []
    for record in sorted(identified, key=lambda r: str(r["record_id"])):
        record_id = str(record["record_id"])
        clock = time.perf_counter()
        row = index.row_for(record, rows[record_id])
        verified = _same_identifier(index, row, record, holders, assignments)
        if verified is not None:
            label, kind = verified
            reasons[record_id] = f"same {kind}"
            report.joined_existing += not label.startswith(NEW_PROFILE)
        else:
            label = _decide(index.match_row(row), record_id, report, reasons, evidence)
        index.add_row(row, label)
        assignments[record_id] = label
        report.latencies_ms.append((time.perf_counter() - clock) * 1000)
    _follow_identifiers(arriving, holders, assignments, reasons, report)
    report.left_anonymous = sum(1 for r in arriving if str(r["record_id"]) not in assignments)

    if assignments or keys:
        stats = store.attach_records(
            ctx, assignments, reasons=reasons, method=METHOD, match_keys=keys, evidence=evidence
        )
        report.new_profiles = stats.profiles_created
    report.seconds = time.perf_counter() - started
    return report


def _decide(
    result: MatchResult, record_id: str, report: RealtimeReport, reasons: dict[str, str], evidence: list[dict[str, Any]]
) -> str:
    """The profile (or new-profile label) of one scored record, with its reason and evidence."""
    if result.refused:
        report.refused += 1
    best = result.best
    if result.profile_id is not None and best is not None:
        if not result.profile_id.startswith(NEW_PROFILE):
            report.joined_existing += 1
        reasons[record_id] = f"incremental match p={best.probability:.4f}"
        evidence.append(
            {
                "record_a": best.record_id,
                "record_b": record_id,
                "probability": best.probability,
                "match_weight": best.match_weight,
                "details": {
                    "decision": "joined",
                    "fields": {f.field: {"level": f.level, "weight": round(f.match_weight, 4)} for f in best.fields},
                },
            }
        )
        return result.profile_id
    reasons[record_id] = "incremental: no matching profile"
    return NEW_PROFILE + record_id


class _Holders:
    """Who holds each verified identifier (``kind, digest``): records, with their profile if linked."""

    def __init__(self, sharing: Sequence[tuple[str, str, str, str | None]]) -> None:
        self.by_identifier: dict[tuple[str, str], list[tuple[str, str | None]]] = {}
        self.of_record: dict[str, list[tuple[str, str]]] = {}
        for record_id, kind, digest, profile_id in sharing:
            self.by_identifier.setdefault((kind, digest), []).append((record_id, profile_id))
            self.of_record.setdefault(record_id, []).append((kind, digest))

    def profiles(self) -> set[str]:
        return {
            p
            for group in self.by_identifier.values()
            if len(group) <= MAX_KEY_FANOUT
            for _, p in group
            if p is not None
        }

    def owner(self, kind: str, digest: str, assignments: Mapping[str, str], asking: str) -> str | None:
        """The one profile (existing, or assigned in this run) holding this identifier, if exactly one."""
        group = self.by_identifier.get((kind, digest), [])
        if len(group) > MAX_KEY_FANOUT:
            return None  # a shared device, a household landline or a placeholder: not one person
        owners = {p or assignments.get(r) for r, p in group if r != asking} - {None}
        return owners.pop() if len(owners) == 1 else None


def _same_identifier(
    index: ProfileIndex,
    row: Mapping[str, Any],
    record: Mapping[str, Any],
    holders: _Holders,
    assignments: Mapping[str, str],
) -> tuple[str, str] | None:
    """The batch's identifier rule for one record: (profile, identifier kind), strongest identifier first."""
    record_id = str(record["record_id"])
    own = dict(holders.of_record.get(record_id, []))
    for kind in RULE_ORDER:
        digest = own.get(kind)
        target = holders.owner(kind, digest, assignments, record_id) if digest else None
        if target is not None and index.joins_without_contradiction(row, target):
            return target, kind
    return None


def _follow_identifiers(
    arriving: Sequence[Mapping[str, Any]],
    holders: _Holders,
    assignments: dict[str, str],
    reasons: dict[str, str],
    report: RealtimeReport,
) -> None:
    """Anonymous records (arriving now, or left from earlier runs) join through a shared account or device id."""
    arriving_kind = {str(r["record_id"]): r["kind"] for r in arriving}
    pending = sorted(
        {
            r
            for group in holders.by_identifier.values()
            for r, p in group
            if p is None and r not in assignments and arriving_kind.get(r, "event") != "identity"
        }
    )
    for record_id in pending:
        own = dict(holders.of_record.get(record_id, []))
        for kind in VERIFIED_KINDS:
            target = holders.owner(kind, own[kind], assignments, record_id) if kind in own else None
            if target:
                assignments[record_id] = target
                reasons[record_id] = f"same {kind}"
                report.followed_identifiers += 1
                break
