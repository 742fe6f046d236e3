"""The schema comes only from migrations, and every column is classified."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from cdp.access import CustomerStore
from cdp.access._tables import metadata
from cdp.connectors.runner import available_connectors
from cdp.settings import Settings

FIELDS_FILE = Settings().policies_dir / "fields.yaml"


def _classification() -> dict[str, object]:
    loaded = yaml.safe_load(FIELDS_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_migrations_produce_exactly_the_declared_schema(store: CustomerStore) -> None:
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    assert diff == []


def unclassified_columns(columns: set[str], classified: dict[str, str]) -> list[str]:
    return sorted(c for c in columns if c not in classified)


def test_every_column_in_the_database_is_classified(store: CustomerStore) -> None:
    inspector = inspect(store.engine)
    columns = {f"{table}.{c['name']}" for table in inspector.get_table_names() for c in inspector.get_columns(table)}
    classified = _classification()["columns"]
    assert isinstance(classified, dict)
    assert len(columns) > 100
    assert unclassified_columns(columns, classified) == []
    assert unclassified_columns({"records.shoe_size"}, classified) == ["records.shoe_size"]


def test_every_connector_field_has_a_known_class(settings: Settings) -> None:
    declared = _classification()["classes"]
    assert isinstance(declared, list)
    classes = set(declared)
    problems = []
    for name, cls in available_connectors(settings).items():
        for stream in cls.streams:
            assert stream.fields, f"{name}.{stream.name} declares no fields"
            problems += [
                f"{name}.{stream.name}.{f.name}: {f.classification}"
                for f in stream.fields
                if f.classification not in classes
            ]
    assert problems == []


def test_every_event_property_kept_is_classified() -> None:
    from cdp.connectors.website import KEPT_PROPERTIES

    classified = _classification().get("event_properties", {})
    assert isinstance(classified, dict)
    kept = {*KEPT_PROPERTIES, "products_count", "items", "nps", "csat", "interests", "sentiment"}
    assert sorted(kept - set(classified)) == []


def test_migration_files_hold_no_key_material() -> None:
    versions = Path(__file__).resolve().parent.parent / "cdp" / "access" / "migrations" / "versions"
    for path in versions.glob("*.py"):
        text = path.read_text(encoding="utf-8").lower()
        assert "begin private key" not in text and "kek-" not in text


def test_the_pinned_head_revision_is_alembics_head() -> None:
    from cdp.access import database

    assert database.head_revision() == database.HEAD_REVISION


def test_a_store_behind_the_newest_migration_asks_for_an_upgrade(store: CustomerStore) -> None:
    from cdp._exceptions import StorageError
    from cdp.access import database, open_store

    assert database.downgrade(store.engine, "0008") == "0008"
    with pytest.raises(StorageError, match=r"revision 0008, and this cdp needs 0009: run `cdp db upgrade`"):
        open_store(store.settings, engine=store.engine)
    assert database.upgrade(store.engine) == "0009"
    open_store(store.settings, engine=store.engine).close()
