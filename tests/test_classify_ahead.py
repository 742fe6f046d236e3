"""Profile-only classifiers run early on a thread: the chain's results must equal the serial run's."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cdp.segments.attributes import compute_attributes
from cdp.segments.classify.ahead import EarlyClassifiers, classify_early
from cdp.segments.classify.base import (
    Classification,
    ClassifiedSnapshot,
    Classifier,
    TagSpec,
    _same_values,
    run_classifiers,
)
from cdp.segments.classify.builtin import builtin_classifiers
from cdp.segments.config import TagsConfig

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _profiles(count: int) -> pl.DataFrame:
    countries = ["US", "CN", "GB", "DE", None]
    states = ["CA", "TX", "广东", "上海", None, "NY"]
    return pl.DataFrame(
        {
            "profile_id": [f"p{i:05d}" for i in range(count)],
            "country": [countries[i % 5] for i in range(count)],
            "state": [states[i % 6] for i in range(count)],
            "city": [["深圳", "Austin", None][i % 3] for i in range(count)],
            "gender": [["f", "male", None, "x"][i % 4] for i in range(count)],
            "age_band": [["18-24", "25-34", None][i % 3] for i in range(count)],
        }
    )


def _events(count: int) -> pl.DataFrame:
    rows = [
        {
            "profile_id": f"p{(i * 7) % count:05d}",
            "event_type": "track",
            "event_name": ["Order Completed", "Product Viewed"][i % 2],
            "occurred_at": NOW - timedelta(days=i % 400),
            "revenue": float(i % 90) if i % 2 == 0 else None,
            "currency": "USD",
            "channel": ["web", "store"][i % 3 == 0],
            "store_id": None,
            "category": ["tech", "outdoor", "fashion"][i % 3],
        }
        for i in range(count * 3)
    ]
    return pl.DataFrame(rows)


def _attributes(profiles: pl.DataFrame) -> pl.DataFrame:
    computed = compute_attributes(_events(profiles.height), as_of=NOW, profiles=profiles["profile_id"])
    return pl.concat([profiles, computed.drop("profile_id")], how="horizontal")


def _same(left: ClassifiedSnapshot, right: ClassifiedSnapshot) -> None:
    assert_frame_equal(left.attributes, right.attributes)
    assert_frame_equal(left.tag_rows, right.tag_rows)
    assert left.tag_frame is not None and right.tag_frame is not None
    assert_frame_equal(left.tag_frame, right.tag_frame)
    assert left.catalogue == right.catalogue
    assert left.origin == right.origin


def test_early_results_give_the_serial_chains_snapshot() -> None:
    profiles = _profiles(600)
    attributes = _attributes(profiles)
    config = TagsConfig()
    chain = builtin_classifiers()
    serial = run_classifiers(attributes, chain, config)
    with EarlyClassifiers(chain, profiles, config) as early:
        assert early.results() == {}  # not started: the chain runs every classifier
        early.start()
        ready = early.results()
    assert set(ready) == {"geography", "demographics"}
    assert all(ready[c.name].valid_for(c, attributes) for c in chain if c.name in ready)
    assert not [t for t in threading.enumerate() if t.name.startswith("cdp-early")]  # joined: a later read may fork
    _same(run_classifiers(attributes, chain, config, ready), serial)
    with EarlyClassifiers(chain, profiles, config, threaded=False) as early:
        early.start()
        assert early.results() == {}


@dataclass(frozen=True)
class _AddsScore:
    name: str = "adds_score"
    order: int = 1

    def classify(self, attributes: pl.DataFrame, config: TagsConfig) -> Classification:
        return Classification(attributes=attributes.select("profile_id", pl.lit("hi").alias("score_band")))


@dataclass(frozen=True)
class _ReadsScore:
    """Declares a column the profile frame lacks and an earlier classifier adds: its early result is stale."""

    name: str = "reads_score"
    order: int = 2
    reads: ClassVar[tuple[str, ...]] = ("score_band",)

    def classify(self, attributes: pl.DataFrame, config: TagsConfig) -> Classification:
        band = pl.col("score_band") if "score_band" in attributes.columns else pl.lit(None, pl.String)
        return Classification(
            tag_frame=attributes.select("profile_id", band.alias("band")),
            catalogue=(TagSpec("band:hi", "basic"),),
        )


@dataclass
class _FailsOnce:
    """Raises on its first run (the early one on the thread), then works."""

    name: str = "fails_once"
    order: int = 3
    reads: ClassVar[tuple[str, ...]] = ("country",)
    runs: list[int] = field(default_factory=list)

    def classify(self, attributes: pl.DataFrame, config: TagsConfig) -> Classification:
        self.runs.append(1)
        if len(self.runs) == 1:
            raise RuntimeError("first run fails")
        return Classification(attributes=attributes.select("profile_id", pl.col("country").alias("home")))


def test_a_stale_or_failed_early_result_is_not_used() -> None:
    profiles = _profiles(50)
    attributes = _attributes(profiles)
    config = TagsConfig()
    failing = _FailsOnce()
    chain: list[Classifier] = [_AddsScore(), _ReadsScore(), failing]
    with EarlyClassifiers(chain, profiles, config) as early:
        early.start()
        ready = early.results()
    assert set(ready) == {"reads_score"}  # the failed one is left out, run again by the chain
    result = run_classifiers(attributes, chain, config, ready)
    assert result.tag_frame is not None
    assert result.tag_frame["band"].to_list() == ["hi"] * 50  # computed on the chain's frame, not the early one
    assert result.attributes["home"].equals(profiles["country"], check_names=False)
    assert len(failing.runs) == 2


@dataclass(frozen=True)
class _AlwaysFails:
    name: str = "always_fails"
    order: int = 1
    reads: ClassVar[tuple[str, ...]] = ("country",)

    def classify(self, attributes: pl.DataFrame, config: TagsConfig) -> Classification:
        raise ValueError("broken classifier")


def test_a_failing_classifier_still_raises_from_the_chain() -> None:
    profiles = _profiles(20)
    assert classify_early([_AlwaysFails()], profiles, TagsConfig()) == {}
    with EarlyClassifiers([_AlwaysFails()], profiles, TagsConfig()) as early:
        early.start()
        ready = early.results()
    with pytest.raises(ValueError, match="broken classifier"):
        run_classifiers(_attributes(profiles), [_AlwaysFails()], TagsConfig(), ready)


@dataclass
class _CountsRuns:
    name: str = "counts_runs"
    order: int = 5
    reads: ClassVar[tuple[str, ...]] = ("country", "not_a_column")
    runs: list[int] = field(default_factory=list)

    def classify(self, attributes: pl.DataFrame, config: TagsConfig) -> Classification:
        self.runs.append(1)
        return Classification(attributes=attributes.select("profile_id", pl.col("country").alias("home")))


def test_a_valid_early_result_is_not_computed_again() -> None:
    profiles = _profiles(30)
    counting = _CountsRuns()
    with EarlyClassifiers([counting], profiles, TagsConfig()) as early:
        early.start()
        ready = early.results()
    result = run_classifiers(_attributes(profiles), [counting], TagsConfig(), ready)
    assert len(counting.runs) == 1
    assert result.attributes["home"].equals(profiles["country"], check_names=False)


def test_the_same_ids_are_known_without_comparing_them_when_they_are_the_same_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The chain checks that a classifier's columns are on the snapshot's rows: when its ids are the
    snapshot's own memory nothing is compared; otherwise the values are (equal values in other
    memory are the same rows, other values or another cut of the same memory are not)."""
    ids = pl.Series("profile_id", [f"p{i:05d}" for i in range(2_000)])
    frame = pl.DataFrame({"profile_id": ids, "x": range(2_000)})
    beside = frame.select("profile_id", (pl.col("x") * 2).alias("y"))
    copied = pl.Series("profile_id", [f"p{i:05d}" for i in range(2_000)])
    assert _same_values(frame["profile_id"], copied)
    assert not _same_values(frame["profile_id"], copied.reverse())
    assert not _same_values(ids.slice(1, 10), ids.slice(0, 10))
    compared: list[int] = []
    original = pl.Series.equals

    def counted(self: pl.Series, other: pl.Series, **kwargs: bool) -> bool:
        compared.append(self.len())
        return original(self, other, **kwargs)

    monkeypatch.setattr(pl.Series, "equals", counted)
    assert _same_values(frame["profile_id"], beside["profile_id"])
    assert _same_values(ids.slice(5, 10), ids.slice(5, 10))
    assert compared == []
    assert _same_values(frame["profile_id"], copied) and compared == [2_000]
