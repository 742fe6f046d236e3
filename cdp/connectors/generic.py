"""A generic CSV / JSON-lines connector driven by a mapping, for everything else.

The mapping (inline ``mapping`` or a YAML ``mapping_file``) says which column
holds the record id, the time, each identifier, and optionally what event the
row is::

    record_id: order_ref
    occurred_at: created
    identity: {email: mail, full_name: client, phone: tel, country: cc}
    event: {name: "Membership Renewed", revenue: fee, category: plan}
    ignore: [internal_note]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import yaml

from cdp._exceptions import ConfigurationError, RecordRejected
from cdp.connectors import _files
from cdp.connectors._parse import number, text, timestamp
from cdp.connectors.base import ConfigField, Connector, FieldSpec, ReadResult, SourceItem, StreamSpec
from cdp.model import CLEAR_FIELDS, IDENTITY_FIELDS, EventData, IncomingRecord

IDENTITY_TARGETS = frozenset({*IDENTITY_FIELDS, *CLEAR_FIELDS, "full_name"})


class GenericFileConnector(Connector):
    name: ClassVar[str] = "generic"
    description: ClassVar[str] = "Any CSV or JSON-lines file, mapped to cdp fields by a mapping file."
    config_schema: ClassVar[tuple[ConfigField, ...]] = (
        ConfigField("path", "path", required=True),
        ConfigField("source", "string", description="source name to store records under"),
        ConfigField("mapping", "object", description="the mapping, inline"),
        ConfigField("mapping_file", "path", description="a YAML file holding the mapping"),
        ConfigField("format", "string"),
        ConfigField("delimiter", "string", default=","),
    )
    streams: ClassVar[tuple[StreamSpec, ...]] = (
        StreamSpec(
            "rows",
            ("record_id",),
            "occurred_at",
            (
                FieldSpec("record_id", "string", "pseudonymous", required=True),
                FieldSpec("occurred_at", "datetime", "behavioural"),
                *(FieldSpec(f"identity.{n}", "string", "direct_identifier") for n in (*IDENTITY_FIELDS, "full_name")),
                *(FieldSpec(f"identity.{n}", "string", "quasi_identifier") for n in CLEAR_FIELDS),
                FieldSpec("event.revenue", "number", "behavioural"),
                FieldSpec("event.category", "string", "behavioural"),
            ),
        ),
    )

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.mapping = self._load_mapping()

    def _load_mapping(self) -> dict[str, Any]:
        raw: Any = self.config.get("mapping")
        if raw is None and self.config.get("mapping_file"):
            path = Path(str(self.config["mapping_file"]))
            try:
                raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigurationError(f"connector generic: cannot read mapping_file {path}: {exc}") from exc
        if not isinstance(raw, dict) or "record_id" not in raw:
            raise ConfigurationError("connector generic: the mapping needs at least `record_id` (config key 'mapping')")
        for key in raw:
            if key not in ("record_id", "occurred_at", "identity", "event", "ignore"):
                raise ConfigurationError(f"connector generic: unknown mapping key {key!r}")
        for target in raw.get("identity") or {}:
            if target not in IDENTITY_TARGETS:
                raise ConfigurationError(
                    f"connector generic: mapping key 'identity.{target}' is not a known identity field"
                )
        return raw

    def read(self, state: Mapping[str, Any], result: ReadResult) -> Iterator[SourceItem]:
        path = _files.check_file(str(self.config.get("path") or ""))
        fmt = self.config.get("format") or ("jsonl" if path.suffix.lower() in (".jsonl", ".ndjson") else "csv")
        if fmt == "jsonl":
            yield from _files.read_jsonl(path, "rows", state, result)
        else:
            yield from _files.read_csv(path, "rows", state, result, delimiter=str(self.config.get("delimiter") or ","))

    def to_record(self, item: SourceItem) -> list[IncomingRecord]:
        data: dict[str, Any] = item.data
        m = self.mapping
        used = {m["record_id"], m.get("occurred_at"), *(m.get("identity") or {}).values(), *(m.get("ignore") or [])}
        event_map: dict[str, Any] = m.get("event") or {}
        used |= {v for k, v in event_map.items() if k != "name"}
        record = str(data.get(m["record_id"]) or item.position)
        unknown = sorted(k for k in data if k not in used)
        if unknown:
            raise RecordRejected(
                "unknown column (add it to the mapping or to `ignore`)", record=record, field=unknown[0]
            )
        record_id = text(data.get(m["record_id"]), str(m["record_id"]), record=record, required=True, max_len=200)
        when = (
            timestamp(data.get(m["occurred_at"]), str(m["occurred_at"]), record=record)
            if m.get("occurred_at")
            else None
        )
        identity: dict[str, str] = {}
        for target, column in (m.get("identity") or {}).items():
            value = text(data.get(column), str(column), record=record, max_len=300)
            if value:
                identity[target] = value
        events: list[EventData] = []
        if event_map and when is not None:
            name = str(event_map.get("name") or "Record Imported")
            revenue = (
                number(data.get(event_map["revenue"]), str(event_map["revenue"]), record=record)
                if event_map.get("revenue")
                else None
            )
            category = (
                text(data.get(event_map["category"]), str(event_map["category"]), record=record)
                if event_map.get("category")
                else None
            )
            events.append(
                EventData(
                    "track",
                    when,
                    name,
                    revenue=revenue,
                    channel=str(event_map.get("channel") or "other"),
                    category=category,
                )
            )
        assert record_id is not None
        return [
            IncomingRecord(
                source=self.source_name,
                stream="rows",
                source_record_id=record_id,
                occurred_at=when,
                payload=dict(data),
                identity=identity,
                events=events,
                position=item.position,
            )
        ]
