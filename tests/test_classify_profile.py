"""Computed attributes, demographics, interests, the classifier chain and the tags file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from cdp._exceptions import ConfigurationError, DefinitionError
from cdp.hookspecs import PluginContext
from cdp.plugins import build_plugin_manager
from cdp.segments.attributes import compute_attributes
from cdp.segments.classify.base import Classification, TagSpec, collect_classifiers, run_classifiers
from cdp.segments.classify.builtin import builtin_classifiers, cdp_classifiers
from cdp.segments.classify.demographics import DemographicsClassifier, company_size_band, demographics
from cdp.segments.classify.interests import InterestClassifier
from cdp.segments.config import TagsConfig, load_tags_config, parse_tags_config
from cdp.settings import Settings

NOW = datetime(2026, 11, 1, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent


def event(pid: str, name: str, days_ago: float, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "profile_id": pid,
        "event_type": "track",
        "event_name": name,
        "occurred_at": NOW - timedelta(days=days_ago),
        "revenue": None,
        "currency": None,
        "channel": "web",
        "store_id": None,
        "category": None,
        "properties": None,
    }
    row.update(extra)
    return row


def frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    schema: dict[str, pl.DataType | type[pl.DataType]] = {
        "profile_id": pl.String,
        "event_type": pl.String,
        "event_name": pl.String,
        "occurred_at": pl.Datetime("us", "UTC"),
        "revenue": pl.Float64,
        "currency": pl.String,
        "channel": pl.String,
        "store_id": pl.String,
        "category": pl.String,
        "properties": pl.String,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def test_computed_attributes_by_hand() -> None:
    order = "Order Completed"
    events = frame(
        [
            event("a", order, 5, revenue=100.0, currency="USD", channel="store", store_id="S1", category="tech"),
            event("a", order, 45, revenue=100.0, currency="EUR", channel="store", store_id="S1", category="tech"),
            event("a", order, 125, revenue=50.0, currency="USD", channel="web", category="home"),
            event("a", "Product Viewed", 3, category="tech"),
            event("a", "Product Viewed", 2, category="tech"),
            event(
                "a",
                "Survey Submitted",
                10,
                event_type="survey",
                channel="survey",
                properties=json.dumps({"nps": 9, "csat": 5, "interests": ["travel"], "sentiment": "positive"}),
            ),
            event("b", "Product Viewed", 400, category="food"),
            event("b", order, 1, revenue=999.0, currency="USD"),  # future of as_of? no: 1 day ago
            event("c", order, -1, revenue=5.0, currency="USD"),  # after as_of: ignored
        ]
    )
    attributes = {r["profile_id"]: r for r in compute_attributes(events, as_of=NOW).iter_rows(named=True)}
    a = attributes["a"]
    assert a["order_count"] == 3
    assert (a["orders_30d"], a["orders_90d"], a["orders_365d"], a["orders_prev_90d"]) == (1, 2, 3, 1)
    assert a["revenue_30d"] == pytest.approx(100.0)
    assert a["revenue_90d"] == pytest.approx(100.0 + 108.0)  # EUR at 1.08
    assert a["revenue_lifetime"] == pytest.approx(258.0)
    assert a["average_order_value"] == pytest.approx(86.0)
    assert a["purchase_interval_days"] == pytest.approx(60.0)  # 120 days between 3 orders
    assert a["days_since_last_order"] == 5 and a["days_since_first_seen"] == 125
    assert a["preferred_channel"] == "store" and a["favourite_store"] == "S1"
    assert a["favourite_category"] == "tech"
    assert a["browsed_categories"] == ["tech"]  # 4 tech interactions >= 3; home only once
    assert a["channel_count"] == 3  # store, web, survey
    assert (a["nps_latest"], a["csat_latest"], a["sentiment_latest"], a["survey_interests"]) == (
        9,
        5,
        "positive",
        ["travel"],
    )
    b = attributes["b"]
    assert b["order_count"] == 1 and b["browsed_categories"] == [] and b["nps_latest"] is None
    assert "c" not in attributes


def test_attributes_of_no_events_have_every_column_null() -> None:
    """No events at all (none yet, or none the context may see): the same columns as with events,
    null for every given profile, so rules and segments over them still compile."""
    events = frame([event("a", "Order Completed", 1, revenue=10.0, currency="USD")])
    profiles = pl.Series(["a", "b"])
    some = compute_attributes(events, as_of=NOW, profiles=profiles)
    none = compute_attributes(events.clear(), as_of=NOW, profiles=profiles)
    assert none.columns == some.columns and none.schema == some.schema
    assert none["profile_id"].to_list() == ["a", "b"]
    assert none.drop("profile_id").null_count().row(0) == (2,) * (none.width - 1)
    assert compute_attributes(events.clear(), as_of=NOW).columns == compute_attributes(events, as_of=NOW).columns


def test_attributes_without_survey_properties() -> None:
    events = frame([event("a", "Order Completed", 1, revenue=10.0, currency="USD")]).drop("properties")
    out = compute_attributes(events, as_of=NOW)
    assert "nps_latest" not in out.columns and out["order_count"].to_list() == [1]


def test_demographics_normalise_declared_values() -> None:
    people = pl.DataFrame(
        {
            "profile_id": ["p1", "p2", "p3", "p4"],
            "gender": ["F", "man", "nonbinary", "prefer not to say"],
            "age_band": ["25-34", "65+", None, "unknown"],
            "industry": ["Retail & E-commerce", None, "Software", None],
            "company_size": ["1200 employees", "8", None, "medium"],
        }
    )
    result = DemographicsClassifier().classify(people, TagsConfig())
    tags = sorted(result.tags.iter_rows())
    assert tags == [
        ("p1", "age:25-34"),
        ("p1", "company_size:large"),
        ("p1", "gender:female"),
        ("p1", "industry:retail_e_commerce"),
        ("p2", "age:65+"),
        ("p2", "company_size:micro"),
        ("p2", "gender:male"),
        ("p3", "gender:non_binary"),
        ("p3", "industry:software"),
        ("p4", "company_size:medium"),
    ]
    assert {"industry:software", "age:18-24"} <= {s.name for s in result.catalogue}


@pytest.mark.parametrize(
    ("raw", "band"), [(3, "micro"), ("49", "small"), ("50-249", "medium"), ("1,000+", "large"), ("?", None)]
)
def test_company_size_bands(raw: object, band: str | None) -> None:
    assert company_size_band(raw) == band


def test_interests_from_survey_and_browsing_and_nps_groups() -> None:
    people = pl.DataFrame(
        {
            "profile_id": ["p1", "p2", "p3"],
            "survey_interests": [["travel", "not-a-category"], None, []],
            "browsed_categories": [["tech"], ["travel"], []],
            "nps_latest": [10, 7, 3],
            "sentiment_latest": ["positive", None, "negative"],
        }
    )
    result = InterestClassifier().classify(people, TagsConfig())
    assert sorted(result.tags.iter_rows()) == [
        ("p1", "interest:tech"),
        ("p1", "interest:travel"),
        ("p1", "nps:promoter"),
        ("p1", "sentiment:positive"),
        ("p2", "interest:travel"),
        ("p2", "nps:passive"),
        ("p3", "nps:detractor"),
        ("p3", "sentiment:negative"),
    ]
    assert all(s.taxonomy == "interest" for s in result.catalogue)


def test_builtin_classifiers_come_through_the_hook() -> None:
    import cdp.segments.classify.builtin as module

    pm = build_plugin_manager(load_entry_points=False)
    if not pm.is_registered(module):  # listed in DEFAULT_PLUGINS once integrated
        pm.register(module, name="cdp.segments.classify.builtin")
    found = collect_classifiers(pm.hook.cdp_classifiers(context=PluginContext(settings=Settings())))
    names = [c.name for c in found]
    assert set(names) >= {"lifecycle", "rfm", "value", "geography", "demographics", "interests"}
    assert names.index("lifecycle") < names.index("rfm")  # sorted by order
    assert len(cdp_classifiers(PluginContext(settings=Settings()))) == len(builtin_classifiers())
    with pytest.raises(ConfigurationError, match="not a classifier"):
        collect_classifiers([[object()]])


class _Clash:
    name = "clash"
    order = 99

    def classify(self, attributes: pl.DataFrame, config: TagsConfig) -> Classification:
        return Classification(attributes=attributes.select("profile_id", pl.lit(1).alias("order_count")))


class _Sloppy:
    name = "sloppy"
    order = 99

    def classify(self, attributes: pl.DataFrame, config: TagsConfig) -> Classification:
        tags = attributes.select("profile_id", pl.lit("undeclared").alias("tag"))
        return Classification(tags=tags, catalogue=(TagSpec("declared", "basic"),))


def test_the_chain_refuses_overwrites_and_undeclared_tags() -> None:
    attributes = pl.DataFrame({"profile_id": ["p1"], "order_count": [2]})
    with pytest.raises(ConfigurationError, match="overwrites"):
        run_classifiers(attributes, [_Clash()], TagsConfig())
    with pytest.raises(ConfigurationError, match="catalogue"):
        run_classifiers(attributes, [_Sloppy()], TagsConfig())


def test_the_repository_tags_file_loads() -> None:
    config = load_tags_config(REPO / "policies" / "tags.yaml")
    assert config.rules and all(r.taxonomy in ("basic", "behavioural", "interest", "value") for r in config.rules)
    assert load_tags_config(REPO / "no-such-file.yaml") == TagsConfig()


@pytest.mark.parametrize(
    ("document", "path", "reason"),
    [
        ({"lifecycle": {"new_dayz": 3}}, "lifecycle.new_dayz", "unknown field"),
        ({"lifecycle": {"new_days": "30"}}, "lifecycle.new_days", "wrong type"),
        ({"rfm": {"window_days": 0}}, "rfm.window_days", "invalid window"),
        ({"interests": {"window_days": 99999}}, "interests.window_days", "invalid window"),
        ({"rfm": {"grid": {5: ["champions"] * 4}}}, "rfm.grid.5", "5 cell names"),
        ({"rules": [{"name": "x", "taxonomy": "vibes", "where": {}}]}, "rules[0].taxonomy", "must be one of"),
        ({"rules": [{"name": "bad name!", "taxonomy": "value", "where": {}}]}, "rules[0].name", "tag name"),
        ({"colour": "blue"}, "colour", "unknown field"),
    ],
)
def test_tags_file_errors_name_file_path_and_reason(document: dict[str, object], path: str, reason: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_tags_config(document, source="tags.yaml")
    assert caught.value.file == "tags.yaml" and caught.value.path == path and reason in caught.value.reason


def test_declared_gender_spellings_are_normalised_whatever_the_case_and_spaces() -> None:
    frame = pl.DataFrame(
        {
            "profile_id": ["p1", "p2", "p3", "p4", "p5", "p6"],
            "gender": [" Woman ", "M", None, "??", "Non-Binary", "woman"],
            "age_band": ["25-34", "unknown", None, "65+", "18-24", "25-34"],
        }
    )
    found = demographics(frame)
    assert found["gender_norm"].to_list() == ["female", "male", None, None, "non_binary", "female"]
    assert found["age_group"].to_list() == ["25-34", None, None, "65+", "18-24", "25-34"]
    assert isinstance(found.schema["gender_norm"], pl.Enum) and isinstance(found.schema["age_group"], pl.Enum)
