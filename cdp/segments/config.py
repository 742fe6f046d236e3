"""The tags file: thresholds of the built-in classifications and declarative rule tags.

Marketing and analytics teams tune classification without touching code, so
every threshold lives in one YAML file (``policies/tags.yaml`` by default).
Missing sections keep the defaults below; unknown keys, wrong types and
impossible values fail at load with the file, the path inside the document
and the reason (a typo must never silently fall back to a default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from cdp._exceptions import DefinitionError

TAXONOMIES = ("basic", "behavioural", "interest", "value")
RFM_CELLS = (
    "champions",
    "loyal",
    "potential_loyalists",
    "new",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cant_lose",
    "hibernating",
    "lost",
)
# Rows: recency score 5 (most recent) .. 1; columns: the F/M score 1 .. 5.
DEFAULT_RFM_GRID: dict[int, tuple[str, ...]] = {
    5: ("new", "potential_loyalists", "potential_loyalists", "champions", "champions"),
    4: ("promising", "potential_loyalists", "potential_loyalists", "loyal", "champions"),
    3: ("about_to_sleep", "need_attention", "need_attention", "loyal", "loyal"),
    2: ("hibernating", "about_to_sleep", "at_risk", "at_risk", "cant_lose"),
    1: ("lost", "hibernating", "at_risk", "cant_lose", "cant_lose"),
}
DEFAULT_INTERESTS = ("outdoor", "tech", "fashion", "home", "beauty", "sports", "travel", "food")
# Approximate fixed rates to one reporting currency, so monetary values of
# people buying in different currencies compare (tune in the tags file).
DEFAULT_RATES = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "CNY": 0.14}


@dataclass(frozen=True)
class CurrencyConfig:
    base: str = "USD"
    rates: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_RATES))


@dataclass(frozen=True)
class RfmConfig:
    enabled: bool = True
    window_days: int | None = None  # None: lifetime frequency and monetary
    grid: Mapping[int, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_RFM_GRID))


@dataclass(frozen=True)
class ValueConfig:
    enabled: bool = True
    high_share: float = 0.2  # top 20% of buyers by 365-day revenue
    mid_share: float = 0.4  # the next 40%
    potential_min_orders_90d: int = 2
    rising_ratio: float = 1.5  # orders in the last 90 days vs the 90 days before


@dataclass(frozen=True)
class LifecycleConfig:
    enabled: bool = True
    new_days: int = 30
    active_days: int = 90
    at_risk_days: int = 180
    loyal_orders_365d: int = 4


@dataclass(frozen=True)
class ChurnConfig:
    enabled: bool = True
    min_orders: int = 3  # a personal interval needs at least this many orders
    warning_ratio: float = 1.5  # days since last order / own mean interval
    high_ratio: float = 2.5
    ignore_after_days: int = 365  # past this, the person is churned, not at risk


@dataclass(frozen=True)
class InterestConfig:
    enabled: bool = True
    categories: tuple[str, ...] = DEFAULT_INTERESTS
    min_browsing_events: int = 3
    window_days: int = 365


@dataclass(frozen=True)
class SwitchConfig:
    enabled: bool = True


@dataclass(frozen=True)
class RuleTag:
    name: str
    taxonomy: str
    description: str
    where: Mapping[str, Any]


@dataclass(frozen=True)
class TagsConfig:
    source: str = ""
    currency: CurrencyConfig = field(default_factory=CurrencyConfig)
    rfm: RfmConfig = field(default_factory=RfmConfig)
    value: ValueConfig = field(default_factory=ValueConfig)
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    churn_risk: ChurnConfig = field(default_factory=ChurnConfig)
    geography: SwitchConfig = field(default_factory=SwitchConfig)
    demographics: SwitchConfig = field(default_factory=SwitchConfig)
    interests: InterestConfig = field(default_factory=InterestConfig)
    rules: tuple[RuleTag, ...] = ()
    plugins: Mapping[str, Any] = field(default_factory=dict)  # free-form sections for third-party classifiers

    def plugin(self, name: str) -> Mapping[str, Any]:
        section = self.plugins.get(name, {})
        return section if isinstance(section, Mapping) else {}


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, reason: str) -> DefinitionError:
        return DefinitionError(reason, file=self.source, path=path)

    def mapping(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"wrong type: expected a mapping, got {type(value).__name__}")
        return value

    def section(self, raw: Any, path: str, default: Any) -> Any:
        """Overlay the keys of ``raw`` onto the dataclass ``default``, type-checked."""
        body = self.mapping(raw, path)
        known = {f.name: getattr(default, f.name) for f in fields(default)}
        changes: dict[str, Any] = {}
        for key, value in body.items():
            if key not in known:
                raise self.fail(f"{path}.{key}", f"unknown field {key!r} (expected one of {sorted(known)})")
            changes[key] = self.value(value, known[key], f"{path}.{key}")
        return replace(default, **changes)

    def value(self, value: Any, current: Any, path: str) -> Any:
        if isinstance(current, bool):
            if not isinstance(value, bool):
                raise self.fail(path, f"wrong type: expected true or false, got {type(value).__name__}")
            return value
        if isinstance(current, int) or current is None:
            if value is None and current is None:
                return None
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise self.fail(path, "wrong type: expected a whole number >= 0")
            return value
        if isinstance(current, float):
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise self.fail(path, "wrong type: expected a number >= 0")
            return float(value)
        if isinstance(current, str):
            if not isinstance(value, str) or not value:
                raise self.fail(path, "wrong type: expected a non-empty string")
            return value
        if isinstance(current, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise self.fail(path, "wrong type: expected a list of strings")
            return tuple(value)
        if isinstance(current, Mapping):
            return self.mapping(value, path)
        raise self.fail(path, "unsupported setting")  # pragma: no cover - every default type is handled above


def _grid(reader: _Reader, raw: Any, path: str) -> dict[int, tuple[str, ...]]:
    body: dict[Any, Any] = reader.mapping(raw, path)
    grid: dict[int, tuple[str, ...]] = {}
    for key, row in body.items():
        if key not in (1, 2, 3, 4, 5):
            raise reader.fail(f"{path}.{key}", "rows are recency scores 1 to 5")
        if not isinstance(row, list) or len(row) != 5:
            raise reader.fail(f"{path}.{key}", "wrong type: expected a list of 5 cell names (F/M score 1 to 5)")
        for i, cell in enumerate(row):
            if cell not in RFM_CELLS:
                raise reader.fail(f"{path}.{key}[{i}]", f"unknown cell {cell!r} (expected one of {list(RFM_CELLS)})")
        grid[key] = tuple(row)
    if sorted(grid) != [1, 2, 3, 4, 5]:
        raise reader.fail(path, "the grid needs the five rows 5, 4, 3, 2, 1")
    return grid


def _rules(reader: _Reader, raw: Any) -> tuple[RuleTag, ...]:
    from cdp.segments.definition import TAG_NAME

    if not isinstance(raw, list):
        raise reader.fail("rules", f"wrong type: expected a list, got {type(raw).__name__}")
    out: list[RuleTag] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        path = f"rules[{i}]"
        body = reader.mapping(item, path)
        for key in body:
            if key not in ("name", "taxonomy", "description", "where"):
                raise reader.fail(f"{path}.{key}", f"unknown field {key!r}")
        name = body.get("name")
        if not isinstance(name, str) or not TAG_NAME.match(name):
            raise reader.fail(f"{path}.name", "a tag name: letters, digits, '_', '-', ':', '.' (max 100)")
        if name in seen:
            raise reader.fail(f"{path}.name", f"duplicate rule tag {name!r}")
        seen.add(name)
        taxonomy = body.get("taxonomy")
        if taxonomy not in TAXONOMIES:
            raise reader.fail(f"{path}.taxonomy", f"must be one of {list(TAXONOMIES)}")
        where = body.get("where")
        if not isinstance(where, dict):
            raise reader.fail(f"{path}.where", "must be a condition mapping")
        out.append(RuleTag(name, str(taxonomy), str(body.get("description", "")), where))
    return tuple(out)


def parse_tags_config(document: Any, *, source: str = "") -> TagsConfig:
    reader = _Reader(source)
    body = {} if document is None else reader.mapping(document, "(document)")
    config = TagsConfig(source=source)
    sections = {
        "currency": config.currency,
        "rfm": config.rfm,
        "value": config.value,
        "lifecycle": config.lifecycle,
        "churn_risk": config.churn_risk,
        "geography": config.geography,
        "demographics": config.demographics,
        "interests": config.interests,
    }
    changes: dict[str, Any] = {}
    for key, raw in body.items():
        if key == "version":
            if raw != 1:
                raise reader.fail("version", "only version 1 is supported")
        elif key == "rules":
            changes["rules"] = _rules(reader, raw)
        elif key == "plugins":
            changes["plugins"] = reader.mapping(raw, "plugins")
        elif key == "rfm":
            raw_map = dict(reader.mapping(raw, "rfm"))
            grid = _grid(reader, raw_map.pop("grid"), "rfm.grid") if "grid" in raw_map else None
            section = reader.section(raw_map, "rfm", config.rfm)
            changes["rfm"] = replace(section, grid=grid) if grid is not None else section
        elif key in sections:
            changes[key] = reader.section(raw, key, sections[key])
        else:
            raise reader.fail(key, f"unknown field {key!r} (expected one of {sorted([*sections, 'rules', 'plugins'])})")
    config = replace(config, **changes)
    _check_consistency(reader, config)
    return config


def _check_consistency(reader: _Reader, config: TagsConfig) -> None:
    life = config.lifecycle
    if not 0 < life.new_days <= life.active_days:
        raise reader.fail("lifecycle.new_days", "must be between 1 and active_days")
    if not life.active_days < life.at_risk_days:
        raise reader.fail("lifecycle.at_risk_days", "must be greater than active_days")
    if not 0 < config.value.high_share + config.value.mid_share <= 1:
        raise reader.fail("value.mid_share", "high_share + mid_share must be between 0 and 1")
    if config.churn_risk.high_ratio < config.churn_risk.warning_ratio:
        raise reader.fail("churn_risk.high_ratio", "must be at least warning_ratio")
    if config.churn_risk.min_orders < 2:
        raise reader.fail("churn_risk.min_orders", "an interval needs at least 2 orders")
    window = config.rfm.window_days
    if window is not None and not 1 <= window <= 3650:
        raise reader.fail("rfm.window_days", "invalid window: whole days from 1 to 3650, or null for lifetime")
    if not 1 <= config.interests.window_days <= 3650:
        raise reader.fail("interests.window_days", "invalid window: whole days from 1 to 3650")
    for code, rate in config.currency.rates.items():
        if not isinstance(rate, int | float) or isinstance(rate, bool) or rate <= 0:
            raise reader.fail(f"currency.rates.{code}", "wrong type: expected a positive number")


def load_tags_config(path: Path | None) -> TagsConfig:
    """The tags file at ``path``; the defaults when ``path`` is None or does not exist."""
    if path is None or not path.exists():
        return TagsConfig()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DefinitionError(f"cannot read: {exc.strerror}", file=str(path)) from exc
    except yaml.YAMLError as exc:
        raise DefinitionError(f"not valid YAML: {exc}", file=str(path)) from exc
    return parse_tags_config(document, source=str(path))


def default_tags_path(policies_dir: Path) -> Path:
    return policies_dir / "tags.yaml"
