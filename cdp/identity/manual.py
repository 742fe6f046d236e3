"""People's corrections to identity resolution, and the explanation of a profile.

A data engineer who sees two profiles of one customer merges them; one who
sees a stranger's record in a profile splits it off; one who knows two
records are different people says so. Each decision is stored as a rule
(audited, with actor and reason) that every later automatic run obeys (see
:mod:`cdp.identity._clustering`), and takes effect at once by relinking only
the records concerned. Nothing here reads an identifier: profile and record
ids are pseudonymous.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cdp._exceptions import InputError, NotFound
from cdp.access import AccessContext, CustomerStore
from cdp.access.store import ResolutionStats

__all__ = ["Explanation", "explain_profile", "merge_profiles", "never_link", "split_record"]


def _apply(store: CustomerStore, ctx: AccessContext, links: Mapping[str, str], method: str) -> ResolutionStats:
    return store.apply_clusters(ctx, dict(links), method=method, reasons={r: method for r in links})


def _representative(records: list[dict[str, Any]]) -> str:
    """The record a merge rule names for a profile: its first identity record (events follow devices)."""
    identity = [str(r["record_id"]) for r in records if r.get("kind") == "identity"]
    return min(identity or [str(r["record_id"]) for r in records])


def merge_profiles(
    store: CustomerStore, ctx: AccessContext, profile_a: str, profile_b: str, *, reason: str = ""
) -> tuple[str, ResolutionStats]:
    """Merge two profiles; returns the surviving profile id (the larger one keeps its id)."""
    live_a, records_a = store.profile_records(ctx, profile_a)
    live_b, records_b = store.profile_records(ctx, profile_b)
    if live_a == live_b:
        raise InputError(f"{profile_a} and {profile_b} are already one profile ({live_a})")
    if not records_a or not records_b:
        raise NotFound("a profile to merge has no records")
    ids_a = [str(r["record_id"]) for r in records_a]
    ids_b = [str(r["record_id"]) for r in records_b]
    # A person's merge overrides earlier decisions that kept these records apart.
    store.revoke_identity_rules(ctx, records=ids_a + ids_b, kinds=("split",))
    for rule in store.identity_rules(ctx):
        if (
            rule["kind"] == "never"
            and {rule["record_a"], rule["record_b"]} & set(ids_a)
            and {
                rule["record_a"],
                rule["record_b"],
            }
            & set(ids_b)
        ):
            store.revoke_identity_rules(ctx, records=[rule["record_a"]], kinds=("never",))
    store.add_identity_rule(ctx, "merge", _representative(records_a), _representative(records_b), reason=reason)
    links = store.current_links(ctx)
    for record_id in ids_b:
        links[record_id] = live_a
    stats = _apply(store, ctx, links, "manual merge")
    survivor = store.current_links(ctx)[_representative(records_a)]
    return survivor, stats


def split_record(store: CustomerStore, ctx: AccessContext, record_id: str, *, reason: str = "") -> ResolutionStats:
    """Take a record out of its profile into a profile of its own, for good."""
    links = store.current_links(ctx)
    if record_id not in links:
        raise NotFound(f"record {record_id} is not linked to a profile")
    store.revoke_identity_rules(ctx, records=[record_id], kinds=("merge",))
    store.add_identity_rule(ctx, "split", record_id, reason=reason)
    links[record_id] = f"split:{record_id}"
    return _apply(store, ctx, links, "manual split")


def never_link(
    store: CustomerStore, ctx: AccessContext, record_a: str, record_b: str, *, reason: str = ""
) -> ResolutionStats | None:
    """Record that two records are different people; if they share a profile now, ``record_b`` leaves it."""
    if record_a == record_b:
        raise InputError("a record cannot be kept apart from itself")
    store.add_identity_rule(ctx, "never", record_a, record_b, reason=reason)
    links = store.current_links(ctx)
    if links.get(record_a) is None or links.get(record_a) != links.get(record_b):
        return None
    links[record_b] = f"never:{record_b}"
    return _apply(store, ctx, links, "manual never")


@dataclass(frozen=True)
class Explanation:
    profile_id: str
    records: list[dict[str, Any]]
    """record_id, source, kind, reason (why it is in the profile), linked_at."""
    evidence: list[dict[str, Any]]
    """Scored pairs touching the profile: record_a, record_b, probability, match_weight, decision, fields."""


def explain_profile(store: CustomerStore, ctx: AccessContext, profile_id: str) -> Explanation:
    """Why a profile holds its records: link reasons and the match evidence of each scored pair."""
    live, records = store.profile_records(ctx, profile_id)
    ids = [str(r["record_id"]) for r in records]
    evidence = []
    for row in store.match_evidence(ctx, ids):
        details = row.get("details") or {}
        evidence.append(
            {
                "record_a": row["record_a"],
                "record_b": row["record_b"],
                "probability": float(row["probability"]),
                "match_weight": float(row["match_weight"]),
                "decision": details.get("decision", ""),
                "fields": details.get("fields", {}),
                "run_id": row["run_id"],
            }
        )
    return Explanation(live, records, evidence)
