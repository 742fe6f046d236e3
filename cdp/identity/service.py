"""Running identity resolution end to end through the access layer.

Reads the records' identifiers (decrypted in memory, purpose
``identity_resolution``), then clusters them in one guarded union-find
(:mod:`cdp.identity._clustering`): people's manual rules first, verified
identifiers next, probabilistic matches (splink, in-memory DuckDB) last.
The clusters go back to the access layer, which keeps profile ids stable,
with the evidence of every probabilistic decision (levels and weights, never
values) for ``cdp identity explain``. Clusters made only of anonymous web
activity stay anonymous (no profile) until an identifying record joins them.

The trained model is saved at ``settings.model_path`` and reused by later
runs and by the incremental matcher; ``retrain=True`` (or a missing model)
trains a new one on the current records.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cdp.access import CustomerStore
from cdp.access.context import identity_context
from cdp.access.store import ResolutionStats
from cdp.identity._clustering import Clustering, ClusterResult, ManualRules
from cdp.identity._features import (
    DomainCorrector,
    assign_name_frequencies,
    email_domains,
    feature_row,
    feature_rows,
)
from cdp.identity.incremental import blocking_keys
from cdp.identity.probabilistic import PairScore, load_model, predict_pairs, save_model, train_model
from cdp.settings import Settings

__all__ = ["ResolveReport", "manual_rules", "resolve_identities", "resolve_records"]

METHOD = "deterministic+probabilistic"


@dataclass(frozen=True)
class ResolveReport:
    stats: ResolutionStats
    joins: dict[str, int]
    refused: int
    anonymous_records: int
    scored_pairs: int = 0
    probabilistic_joins: int = 0
    model_trained: bool = False
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Resolution:
    """The outcome of clustering, before it is written."""

    result: ClusterResult
    model: dict[str, Any]
    model_trained: bool
    scored_pairs: int
    timings: dict[str, float]
    rows: list[dict[str, Any]] = field(default_factory=list)
    """The feature rows that were matched (reused for the match keys)."""


def manual_rules(rules: Sequence[Mapping[str, Any]]) -> ManualRules:
    """Active rules from the store as the clusterer's constraints."""
    merges = tuple((str(r["record_a"]), str(r["record_b"])) for r in rules if r["kind"] == "merge" and r["record_b"])
    nevers = tuple((str(r["record_a"]), str(r["record_b"])) for r in rules if r["kind"] == "never" and r["record_b"])
    splits = frozenset(str(r["record_a"]) for r in rules if r["kind"] == "split")
    return ManualRules(merges, splits, nevers)


def resolve_records(
    records: Sequence[Mapping[str, Any]],
    *,
    threshold: float,
    model: dict[str, Any] | None = None,
    rules: ManualRules | None = None,
) -> Resolution:
    """Cluster ``records`` (as returned by ``store.identity_features``) without touching the store."""
    rules = rules or ManualRules()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    identity = [r for r in records if r.get("kind") == "identity"]
    domains = DomainCorrector(model["cdp"].get("domains", {})) if model else email_domains(identity)
    rows = feature_rows(identity, domains)
    features = {row["unique_id"]: row for row in rows}
    # Who is who as far as verified identifiers say: the population a name's frequency is counted in.
    clustering = Clustering(records, features, rules, threshold=threshold)
    assign_name_frequencies(rows, clustering.labels())
    timings["features"] = time.perf_counter() - started
    trained = model is None
    if model is None:
        started = time.perf_counter()
        model = train_model(rows)
        model["cdp"]["domains"] = dict(sorted(domains.popular.items()))
        timings["train"] = time.perf_counter() - started
    started = time.perf_counter()
    pairs = predict_pairs(rows, model, threshold=threshold)
    timings["predict"] = time.perf_counter() - started
    started = time.perf_counter()
    result = clustering.finish(pairs)
    timings["cluster"] = time.perf_counter() - started
    return Resolution(result, model, trained, len(pairs), timings, rows)


def _evidence(pairs: Sequence[PairScore], decision: str) -> list[dict[str, Any]]:
    return [
        {
            "record_a": p.left,
            "record_b": p.right,
            "probability": p.probability,
            "match_weight": p.match_weight,
            "details": {
                "decision": decision,
                "fields": {
                    name: {"level": level, "weight": round(weight, 4)} for name, (level, weight) in p.fields.items()
                },
            },
        }
        for p in pairs
    ]


def _match_keys(
    records: Sequence[Mapping[str, Any]], resolution: Resolution, only: set[str] | None
) -> dict[str, list[str]]:
    """Blocking keys of every identity record (or those in ``only``), from the rows just matched where possible."""
    rows = {str(row["unique_id"]): row for row in resolution.rows}
    domains = DomainCorrector(resolution.model["cdp"].get("domains", {}))
    keys: dict[str, list[str]] = {}
    for record in records:
        record_id = str(record["record_id"])
        if record["kind"] == "identity" and (only is None or record_id in only):
            keys[record_id] = blocking_keys(rows.get(record_id) or feature_row(record, domains))
    return keys


def resolve_identities(store: CustomerStore, settings: Settings, *, retrain: bool = False) -> ResolveReport:
    """Resolve every active record into profiles (see the module docstring)."""
    ctx = identity_context()
    started = time.perf_counter()
    records = store.identity_features(ctx)
    rules = manual_rules(store.identity_rules(ctx))
    read_seconds = time.perf_counter() - started
    model = None if retrain else load_model(settings.model_path)
    resolution = resolve_records(records, threshold=settings.match_threshold, model=model, rules=rules)
    if resolution.model_trained:
        save_model(resolution.model, settings.model_path)
    result = resolution.result
    identified = {result.clusters[str(r["record_id"])] for r in records if r["kind"] == "identity"}
    clusters = {rid: label for rid, label in result.clusters.items() if label in identified}
    started = time.perf_counter()
    stats = store.apply_clusters(ctx, clusters, method=METHOD, reasons=result.reasons)
    written = time.perf_counter()
    store.record_match_evidence(
        ctx, stats.run_id, _evidence(result.accepted, "joined") + _evidence(result.refused_pairs, "refused")
    )
    evidence_written = time.perf_counter()
    # Match keys let records arriving later find these profiles (cdp.identity.realtime): every
    # record's when the model (and so its e-mail domain corrections) is new, else the missing ones.
    missing = None if resolution.model_trained else set(store.records_without_match_keys(ctx))
    store.write_match_keys(ctx, _match_keys(records, resolution, missing), replace_all=missing is None)
    timings = {
        "read": read_seconds,
        **resolution.timings,
        "write profiles": written - started,
        "write evidence": evidence_written - written,
        "write match keys": time.perf_counter() - evidence_written,
    }
    return ResolveReport(
        stats,
        result.joins,
        result.refused,
        len(result.clusters) - len(clusters),
        scored_pairs=resolution.scored_pairs,
        probabilistic_joins=len(result.accepted),
        model_trained=resolution.model_trained,
        timings=timings,
    )
