"""RFM scores and cells, value tiers, lifecycle and the churn-risk early warning, on hand-checked frames."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from cdp.segments.classify.lifecycle import LifecycleClassifier, churn_risk, lifecycle_stage
from cdp.segments.classify.rfm import RfmClassifier, _quintiles_by_order, min_rank, quintile, rfm_scores
from cdp.segments.classify.value import value_tier
from cdp.segments.config import DEFAULT_RFM_GRID, RFM_CELLS, ChurnConfig, LifecycleConfig, TagsConfig, ValueConfig


def _buyers() -> pl.DataFrame:
    # Five buyers, one per quintile on every measure, plus a non-buyer.
    return pl.DataFrame(
        {
            "profile_id": ["a", "b", "c", "d", "e", "z"],
            "days_since_last_order": [1, 10, 50, 200, 400, None],
            "order_count": [9, 5, 3, 2, 1, 0],
            "revenue_lifetime": [900.0, 400.0, 200.0, 50.0, 10.0, 0.0],
        }
    )


def _by_id(frame: pl.DataFrame, column: str) -> dict[str, object]:
    return dict(zip(frame["profile_id"].to_list(), frame[column].to_list(), strict=True))


def test_quintiles_of_five_distinct_values_are_one_to_five() -> None:
    frame = pl.DataFrame({"v": [10, 40, 20, 50, 30]})
    assert frame.select(quintile(pl.col("v"), pl.len()).alias("s"))["s"].to_list() == [1, 4, 2, 5, 3]


def test_ties_share_the_lowest_score_of_their_group() -> None:
    frame = pl.DataFrame({"v": [1, 1, 1, 1, 1, 1, 2, 3, 4, 5]})
    # six people bought once: all score 1; the others rank 7..10 of 10.
    assert frame.select(quintile(pl.col("v"), pl.len()).alias("s"))["s"].to_list() == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]


def test_rfm_scores_and_named_cells() -> None:
    scores = rfm_scores(_buyers(), TagsConfig())
    assert "z" not in scores["profile_id"].to_list()  # no orders, no RFM
    assert _by_id(scores, "rfm_score") == {"a": "555", "b": "444", "c": "333", "d": "222", "e": "111"}
    assert _by_id(scores, "rfm_cell") == {
        "a": "champions",
        "b": "loyal",
        "c": "need_attention",
        "d": "about_to_sleep",
        "e": "lost",
    }


def test_fm_score_is_the_rounded_half_up_mean() -> None:
    frame = pl.DataFrame(
        {
            "profile_id": [f"p{i}" for i in range(5)],
            "days_since_last_order": [1, 2, 3, 4, 5],
            "order_count": [1, 2, 3, 4, 5],  # F: p0=1 .. p4=5
            "revenue_lifetime": [50.0, 40.0, 30.0, 20.0, 10.0],  # M: p0=5 .. p4=1
        }
    )
    scores = rfm_scores(frame, TagsConfig())
    assert scores["rfm_fm"].to_list() == [3, 3, 3, 3, 3]  # (1+5+1)//2 = 3 ... (5+1+1)//2 = 3


def test_the_default_grid_names_every_standard_cell() -> None:
    assert {cell for row in DEFAULT_RFM_GRID.values() for cell in row} == set(RFM_CELLS)
    assert len(RFM_CELLS) == 11


def test_rfm_classifier_tags_and_catalogue() -> None:
    result = RfmClassifier().classify(_buyers(), TagsConfig())
    tags = dict(result.tags.iter_rows())
    assert tags["a"] == "rfm:champions" and tags["e"] == "rfm:lost"
    assert {s.name for s in result.catalogue} == {f"rfm:{c}" for c in RFM_CELLS}
    assert all(s.taxonomy == "value" for s in result.catalogue)


def test_rfm_can_be_switched_off() -> None:
    config = replace(TagsConfig(), rfm=replace(TagsConfig().rfm, enabled=False))
    assert RfmClassifier().classify(_buyers(), config).tags.height == 0


def _value_frame() -> pl.DataFrame:
    # 10 buyers with revenue 100..1000, one non-buyer; "j" buys more often lately.
    ids = list("abcdefghij")
    return pl.DataFrame(
        {
            "profile_id": [*ids, "z"],
            "revenue_365d": [1000.0, 900.0, 800.0, 700.0, 600.0, 500.0, 400.0, 300.0, 200.0, 100.0, 0.0],
            "orders_90d": [1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 0],
            "orders_prev_90d": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0],
        }
    )


def test_value_tiers_split_buyers_by_share() -> None:
    tiers = _by_id(value_tier(_value_frame(), TagsConfig()), "value_tier")
    assert "z" not in tiers
    assert [k for k, v in tiers.items() if v == "high"] == ["a", "b"]  # top 20%
    assert [k for k, v in tiers.items() if v == "mid"] == ["c", "d", "e", "f"]  # next 40%
    assert [k for k, v in tiers.items() if v == "low"] == ["g", "h", "i"]
    assert tiers["j"] == "potential"  # low value, 3 orders in 90 days vs 1 before


def test_potential_needs_the_configured_rise() -> None:
    strict = replace(TagsConfig(), value=ValueConfig(rising_ratio=3.0))
    assert _by_id(value_tier(_value_frame(), strict), "value_tier")["j"] == "low"


def test_tied_revenue_shares_a_tier() -> None:
    frame = pl.DataFrame(
        {
            "profile_id": list("abcde"),
            "revenue_365d": [500.0, 500.0, 100.0, 100.0, 100.0],
            "orders_90d": [0] * 5,
            "orders_prev_90d": [0] * 5,
        }
    )
    tiers = _by_id(value_tier(frame, TagsConfig()), "value_tier")
    assert tiers["a"] == tiers["b"] == "high"
    assert tiers["c"] == tiers["d"] == tiers["e"]


def _activity() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "profile_id": ["new", "loyal", "active", "risk", "gone", "never"],
            "days_since_first_seen": [10, 400, 400, 400, 400, None],
            "days_since_last_seen": [2, 20, 89, 150, 181, None],
            "orders_365d": [1, 4, 3, 1, 0, 0],
        }
    )


def test_lifecycle_stages_at_their_boundaries() -> None:
    stages = _by_id(lifecycle_stage(_activity(), TagsConfig()), "lifecycle")
    assert stages == {"new": "new", "loyal": "loyal", "active": "active", "risk": "at_risk", "gone": "churned"}


def test_lifecycle_thresholds_are_configurable() -> None:
    config = replace(TagsConfig(), lifecycle=LifecycleConfig(active_days=30, at_risk_days=100, loyal_orders_365d=3))
    stages = _by_id(lifecycle_stage(_activity(), config), "lifecycle")
    assert stages["active"] == "at_risk" and stages["risk"] == "churned" and stages["loyal"] == "loyal"


def test_churn_risk_compares_silence_with_the_persons_own_interval() -> None:
    frame = pl.DataFrame(
        {
            "profile_id": ["weekly", "weekly_ok", "yearly", "two_orders", "long_gone"],
            "order_count": [10, 10, 5, 2, 10],
            "purchase_interval_days": [7.0, 7.0, 365.0, 10.0, 7.0],
            "days_since_last_order": [30, 8, 30, 100, 400],
        }
    )
    risk = churn_risk(frame, TagsConfig())
    levels = _by_id(risk, "churn_risk")
    assert levels == {"weekly": "high", "weekly_ok": None, "yearly": None}
    assert _by_id(risk, "churn_drift")["weekly"] == pytest.approx(30 / 7)
    warning_only = replace(TagsConfig(), churn_risk=ChurnConfig(warning_ratio=1.1, high_ratio=5.0))
    assert _by_id(churn_risk(frame, warning_only), "churn_risk")["weekly"] == "warning"


def test_lifecycle_classifier_emits_stage_and_risk_tags() -> None:
    frame = _activity().with_columns(
        pl.Series("order_count", [1, 8, 3, 1, 0, 0]),
        pl.Series("purchase_interval_days", [None, 5.0, 45.0, None, None, None]),
        pl.Series("days_since_last_order", [2, 20, 89, 150, 181, None]),
    )
    result = LifecycleClassifier().classify(frame, TagsConfig())
    pairs = set(result.tags.iter_rows())
    assert ("loyal", "lifecycle:loyal") in pairs and ("loyal", "churn_risk:high") in pairs
    assert ("active", "churn_risk:warning") in pairs  # 89 days silent, buys every 45: ratio 1.98
    assert not any(p == "never" for p, _ in pairs)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ranks_by_counting_are_the_sorted_ranks(seed: int) -> None:
    """``min_rank`` counts small-range integers instead of sorting: the same ranks, nulls kept,
    negative values (recency is minus the days) and wide ranges (sorted after all) included."""
    rng = np.random.default_rng(seed)
    for values in (
        rng.integers(-730, 0, 5000),
        rng.integers(0, 6, 5000),
        rng.integers(0, 10**9, 5000),  # wider than the column is long: sorted
        rng.gamma(2.0, 40.0, 5000),  # floats: sorted
    ):
        series = pl.Series("v", values).scatter(rng.integers(0, 5000, 400), None)
        assert min_rank(series).equals(series.rank(method="min"), check_dtypes=False)
    assert min_rank(pl.Series("v", [None, None], dtype=pl.Int64)).null_count() == 2


@pytest.mark.parametrize("size", [1, 2, 4, 5, 6, 7, 11, 999, 20_000])
def test_quintiles_of_amounts_by_order_statistics_are_the_ranks(size: int) -> None:
    """Amounts (not countable integers) are scored from four order statistics, not a rank: the
    same scores as ``quintile`` (ties take the group's lowest rank), with ties and nulls."""
    rng = np.random.default_rng(size)
    for amounts in (rng.random(size) * 1000, np.round(rng.random(size) * 10) * 100):
        for values in (pl.Series("x", amounts), pl.Series("x", amounts).scatter(np.arange(0, size, 3), None)):
            count = values.len() - values.null_count()
            expected = pl.select(quintile(pl.lit(values), pl.lit(count))).to_series()
            assert _quintiles_by_order(values, count).to_list() == expected.to_list()


@pytest.mark.parametrize("size", [1, 3, 10, 11, 997, 20_000])
def test_value_tiers_from_order_statistics_are_the_ranks_shares(size: int) -> None:
    """High and mid are found from the amount each share lets in, not a rank: the same tiers as
    the share of buyers strictly above, ``(rank - 1) / n`` (ties share the better tier), for
    every row or buyers only, with ties and with shares at the ranks' own floating-point edges."""
    rng = np.random.default_rng(size)
    for amounts in (rng.random(size) * 1000, np.round(rng.random(size) * 10) * 100 + 1):
        frame = pl.DataFrame(
            {
                "profile_id": [f"p{i}" for i in range(size + 1)],
                "revenue_365d": [*amounts.tolist(), 0.0],  # the last: no buyer
                "orders_90d": [0] * (size + 1),
                "orders_prev_90d": [0] * (size + 1),
            }
        )
        for high, mid in ((0.2, 0.4), (0.1, 0.2), (0.3, 0.3), (0.0, 0.5)):
            config = replace(TagsConfig(), value=ValueConfig(high_share=high, mid_share=mid))
            buyers = frame.filter(pl.col("revenue_365d") > 0)
            above = (pl.col("revenue_365d").rank(method="min", descending=True) - 1) / pl.len()
            expected = buyers.select(
                "profile_id",
                pl.when(above < high)
                .then(pl.lit("high"))
                .when(above < high + mid)
                .then(pl.lit("mid"))
                .otherwise(pl.lit("low"))
                .alias("tier"),
            )
            want = dict(zip(expected["profile_id"], expected["tier"], strict=True))
            for every_row in (False, True):
                got = value_tier(frame, config, every_row=every_row)
                tiers = {p: t for p, t in zip(got["profile_id"], got["value_tier"].cast(pl.String), strict=True) if t}
                assert tiers == want, (high, mid, every_row)
