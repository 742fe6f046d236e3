"""The attributes' counts computed in a forked child equal the single-process ones, also when the child dies."""

from __future__ import annotations

import multiprocessing
import os
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cdp.access import _parallel
from cdp.segments import _forked_counts, attributes
from cdp.segments.attributes import compute_attributes
from cdp.segments.definition import event_specs

NOW = datetime(2026, 11, 1, tzinfo=UTC)
NAMES = ["Order Completed", "Product Viewed", "Product Added", "Home", "Survey Submitted"]


def _events(count: int, profiles: int) -> pl.DataFrame:
    rng = np.random.default_rng(5)
    kinds = rng.integers(0, len(NAMES), count)
    order = kinds == 0
    return pl.DataFrame(
        {
            "profile_id": [f"p{i:04d}" for i in rng.integers(0, profiles, count)],
            "event_type": ["identify" if k == 3 and i % 7 == 0 else "track" for i, k in enumerate(kinds.tolist())],
            "event_name": [NAMES[k] for k in kinds.tolist()],
            "occurred_at": [NOW - timedelta(seconds=int(s)) for s in rng.integers(0, 500 * 86_400, count)],
            "revenue": [float(r) if o else None for r, o in zip(rng.gamma(2.0, 40.0, count), order, strict=True)],
            "currency": [["USD", "EUR", None][i % 3] if o else None for i, o in enumerate(order.tolist())],
            "channel": [["web", "store", "app", None][i] for i in rng.integers(0, 4, count)],
            "store_id": [f"S{i}" if i < 5 else None for i in rng.integers(0, 10, count)],
            "category": [["tech", "outdoor", "fashion", None][i] for i in rng.integers(0, 4, count)],
            "properties": [
                '{"nps": 9, "csat": 4, "interests": ["tech"], "sentiment": "positive"}' if k == 4 else None
                for k in kinds.tolist()
            ],
        }
    ).with_columns(pl.col(c).cast(pl.Categorical) for c in ("event_type", "event_name", "channel", "category"))


def _compute(events: pl.DataFrame, ids: pl.Series) -> pl.DataFrame:
    order = "Order Completed"
    specs = event_specs(
        [
            {"event": order, "within_days": 90, "min_count": 2, "revenue_over": 50},
            {"event": "Product Viewed", "within_days": 30, "channel": "web"},
            {"event": order, "between_days": [90, 180]},
        ]
    )
    return compute_attributes(events, as_of=NOW, event_specs=specs, profiles=ids)


@pytest.fixture(autouse=True)
def _forking_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Earlier tests of the suite leave logging listener threads running, which would turn the fork
    off; the child here runs numpy only (no lock another thread may hold), so it is safe to fork."""
    monkeypatch.setattr(_parallel, "can_fork", lambda: True)


@pytest.fixture
def data() -> tuple[pl.DataFrame, pl.Series]:
    ids = pl.Series("profile_id", [f"p{i:04d}" for i in range(400)])  # a few without events
    return _events(6_000, 420).filter(pl.col("profile_id").is_in(ids.to_list()) | (pl.col("profile_id") > "p04")), ids


def test_the_forked_child_gives_the_single_process_attributes(
    data: tuple[pl.DataFrame, pl.Series], monkeypatch: pytest.MonkeyPatch
) -> None:
    events, ids = data
    monkeypatch.setattr(_forked_counts, "FORK_MIN_EVENTS", 10**12)
    single = _compute(events, ids)
    assert _parallel.outcome["last"] == "single"
    monkeypatch.setattr(_forked_counts, "FORK_MIN_EVENTS", 0)
    forked = _compute(events, ids)
    assert _parallel.outcome["last"] == "child"
    assert_frame_equal(forked, single)
    assert not [t for t in threading.enumerate() if t.name.startswith("cdp-attributes")]  # the Polars thread joined
    monkeypatch.setenv("CDP_NO_PARALLEL_READS", "1")
    assert_frame_equal(_compute(events, ids), single)
    assert _parallel.outcome["last"] == "single"


def test_a_child_that_dies_is_redone_here(
    data: tuple[pl.DataFrame, pl.Series], monkeypatch: pytest.MonkeyPatch
) -> None:
    events, ids = data
    single = _compute(events, ids)
    parent = os.getpid()
    distinct = attributes._Grouped.distinct

    def dies_in_the_child(self: attributes._Grouped, *args: object, **kwargs: object) -> np.ndarray:
        if os.getpid() != parent:
            os._exit(3)  # killed mid-work: nothing comes back through the pipe
        return distinct(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(attributes._Grouped, "distinct", dies_in_the_child)
    monkeypatch.setattr(_forked_counts, "FORK_MIN_EVENTS", 0)
    assert_frame_equal(_compute(events, ids), single)
    assert _parallel.outcome["last"] == "redone"


def test_an_error_in_this_process_stops_the_child(
    data: tuple[pl.DataFrame, pl.Series], monkeypatch: pytest.MonkeyPatch
) -> None:
    events, ids = data
    monkeypatch.setattr(_forked_counts, "FORK_MIN_EVENTS", 0)

    def fails(*args: object, **kwargs: object) -> pl.Series:
        raise RuntimeError("argmax failed")

    monkeypatch.setattr(attributes, "_argmax", fails)
    with pytest.raises(RuntimeError, match="argmax failed"):
        _compute(events, ids)
    assert not [p for p in multiprocessing.active_children() if p.name == "cdp-read-share"]


def test_an_error_before_the_results_kills_the_child(
    data: tuple[pl.DataFrame, pl.Series], monkeypatch: pytest.MonkeyPatch
) -> None:
    events, ids = data
    monkeypatch.setattr(_forked_counts, "FORK_MIN_EVENTS", 0)

    def fails(*args: object, **kwargs: object) -> pl.Series:
        raise RuntimeError("nullable failed")

    monkeypatch.setattr(attributes, "_nullable", fails)  # first called before the child's results are taken
    with pytest.raises(RuntimeError, match="nullable failed"):
        _compute(events, ids)
    assert not [p for p in multiprocessing.active_children() if p.name == "cdp-read-share"]
