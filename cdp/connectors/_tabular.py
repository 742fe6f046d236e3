"""Shared machinery for file connectors whose columns are mapped by config.

A store's own export rarely uses cdp's column names; ``columns`` in the
connector config maps cdp's canonical names to the file's, so a new export
layout needs a config change, not code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cdp._exceptions import ConfigurationError, RecordRejected
from cdp.connectors import _files
from cdp.connectors.base import Connector, ReadResult, SourceItem


class MappedFileConnector(Connector):
    """A connector over one CSV or JSON-lines file with a column mapping."""

    canonical_columns: tuple[str, ...] = ()
    stream_name: str = "rows"

    def column_map(self) -> dict[str, str]:
        mapping = dict(self.config.get("columns") or {})
        for canonical in mapping:
            if canonical not in self.canonical_columns:
                raise ConfigurationError(
                    f"connector {self.name}: config key 'columns.{canonical}' is not a known field "
                    f"(expected one of {', '.join(self.canonical_columns)})"
                )
        return {c: str(mapping.get(c, c)) for c in self.canonical_columns}

    def file_format(self, path: Path) -> str:
        configured = self.config.get("format")
        if configured:
            if configured not in ("csv", "jsonl"):
                raise ConfigurationError(f"connector {self.name}: config key 'format' must be csv or jsonl")
            return str(configured)
        return "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv"

    def read(self, state: Mapping[str, Any], result: ReadResult) -> Iterator[SourceItem]:
        path = _files.check_file(str(self.config.get("path") or ""))
        if self.file_format(path) == "jsonl":
            yield from _files.read_jsonl(path, self.stream_name, state, result)
        else:
            yield from _files.read_csv(
                path, self.stream_name, state, result, delimiter=str(self.config.get("delimiter") or ",")
            )

    def _mapping(self) -> tuple[dict[str, str], frozenset[str]]:
        """(file column -> canonical name, ignored columns) of the config, made once per config value
        (``canonical`` runs per row; the config is compared by its text, so a changed config is seen)."""
        key = repr((self.config.get("columns"), self.config.get("ignore_columns")))
        cached: tuple[str, dict[str, str], frozenset[str]] | None = self.__dict__.get("_mapping_cache")
        if cached is None or cached[0] != key:
            reverse = {source: canonical for canonical, source in self.column_map().items()}
            cached = (key, reverse, frozenset(self.config.get("ignore_columns") or []))
            self.__dict__["_mapping_cache"] = cached
        return cached[1], cached[2]

    def canonical(self, item: SourceItem, *, record_field: str) -> tuple[dict[str, Any], str]:
        """Rename the item's columns to canonical names; reject unknown columns."""
        reverse, ignored = self._mapping()
        row: dict[str, Any] = {}
        unknown: list[str] = []
        for key, value in item.data.items():
            if key in reverse:
                row[reverse[key]] = value
            elif key not in ignored:
                unknown.append(key)
        record = str(row.get(record_field) or item.position)
        if unknown:
            raise RecordRejected(
                "unknown column (map it under `columns` or list it in `ignore_columns`)",
                record=record,
                field=sorted(unknown)[0],
            )
        return row, record
