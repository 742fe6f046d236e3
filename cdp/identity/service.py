"""Running identity resolution end to end through the access layer.

Reads the records' identifiers (decrypted in memory, purpose
``identity_resolution``), clusters them, and hands the clusters back to the
access layer, which keeps profile ids stable. Clusters made only of
anonymous web activity stay anonymous (no profile) until an identifying
record joins them.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdp.access import CustomerStore
from cdp.access.context import identity_context
from cdp.access.store import ResolutionStats
from cdp.identity import deterministic
from cdp.identity.normalize import normalize_name
from cdp.settings import Settings


@dataclass(frozen=True)
class ResolveReport:
    stats: ResolutionStats
    joins: dict[str, int]
    refused: int
    anonymous_records: int


def resolve_identities(store: CustomerStore, settings: Settings) -> ResolveReport:
    ctx = identity_context()
    records = store.identity_features(ctx)
    result = deterministic.resolve(records, normalize_name)
    identified_labels = {result.clusters[str(r["record_id"])] for r in records if r["kind"] == "identity"}
    clusters = {rid: label for rid, label in result.clusters.items() if label in identified_labels}
    stats = store.apply_clusters(ctx, clusters, method="deterministic", reasons=result.reasons)
    return ResolveReport(stats, result.joins, result.refused, len(result.clusters) - len(clusters))
