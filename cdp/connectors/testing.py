"""A conformance test kit every connector's tests can reuse in one class statement.

The connector contract (:mod:`cdp.connectors.base`) says more than its types
can: errors name the config key, secrets never leak, every field carries a
class from ``policies/fields.yaml``, reading is incremental, a re-run stores
nothing twice and a bad record is quarantined instead of stopping the run.
This module turns those promises into tests, so a built-in connector and a
third-party plugin are held to the same bar::

    from cdp.connectors.testing import ConnectorConformance

    class TestShopify(ConnectorConformance):
        connector_class = ShopifyOrdersConnector

        def sample_config(self, tmp_path): ...       # write a small sample, return a valid config
        def bad_record_config(self, tmp_path): ...   # a file with at least one bad record
        def append_record(self, config): ...         # add one new record to the sample

or, with the sample files kept next to the test (``sample.csv``,
``bad.csv`` and ``append.csv``, the last holding only the rows to add)::

    class TestShopify(ConnectorConformance, connector_class=ShopifyOrdersConnector, samples_dir=SAMPLES): ...

The class is not collected itself (``__test__ = False``); every subclass is.
It brings its own ``conformance_settings`` / ``conformance_store`` fixtures:
inside cdp's own test suite they reuse the ``settings`` and ``store`` fixtures
of ``tests/conftest.py`` (so the kit also runs on PostgreSQL), elsewhere they
open a fresh SQLite store in the test's temporary directory. Each check is
also a plain ``check_*`` method that raises :class:`AssertionError`, so the
kit itself can be tested against deliberately broken connectors.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import pytest
import yaml

from cdp._exceptions import ConfigurationError, RecordRejected
from cdp.access import AccessContext, CustomerStore, open_store
from cdp.access.context import connector_context
from cdp.connectors.base import CONFIG_TYPES, ConfigField, Connector, ReadResult, SourceItem
from cdp.connectors.runner import STATE_STREAM, IngestRunner
from cdp.model import IncomingRecord
from cdp.settings import Settings

__all__ = ["FIELD_TYPES", "ConnectorConformance", "expect", "policy_classes"]

FIELD_TYPES = frozenset({"string", "integer", "number", "boolean", "datetime", "date", "object", "array"})
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
UNKNOWN_KEY = "kit_no_such_config_key"
PLANTED_TEXT = "kit-planted-7f3a9c"
PLANTED_NUMBER = 7_391_846_205
WRONG_MARKER = "kit-wrong-type-b42e"
WRONG_NUMBER = 5_182_736_409
OPERATIONS = AccessContext("conformance-kit", "data_engineer", "operations")


def expect(condition: object, message: str) -> None:
    """Fail the check with ``message`` unless ``condition`` holds (kept under ``python -O``)."""
    if not condition:
        raise AssertionError(message)


def policy_classes(settings: Settings | None = None) -> frozenset[str]:
    """The personal-data classes declared in ``policies/fields.yaml``."""
    path = (settings or Settings()).policies_dir / "fields.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    classes = document.get("classes") if isinstance(document, dict) else None
    expect(isinstance(classes, list) and classes, f"{path} declares no `classes`")
    assert isinstance(classes, list)
    return frozenset(str(c) for c in classes)


def wrong_value(spec: ConfigField) -> Any:
    """A value of the wrong type for ``spec``, recognisable so that an error echoing it is caught."""
    if spec.type in ("string", "path"):
        return WRONG_NUMBER
    if spec.type == "array":
        return WRONG_MARKER
    return [WRONG_MARKER]  # integer, number, boolean, object


def secret_value(spec: ConfigField) -> Any:
    """A well-typed, recognisable value for a secret config field."""
    if spec.type in ("integer", "number"):
        return PLANTED_NUMBER
    if spec.type == "boolean":
        return True
    if spec.type == "array":
        return [PLANTED_TEXT]
    if spec.type == "object":
        return {"token": PLANTED_TEXT}
    return PLANTED_TEXT


def leaked(secret: Any, text: str) -> bool:
    """Whether a secret (or, for containers, any string in it) shows up in ``text``."""
    if isinstance(secret, bool):
        return False
    if isinstance(secret, list):
        return any(leaked(v, text) for v in secret)
    if isinstance(secret, dict):
        return any(leaked(v, text) for v in secret.values())
    return str(secret) in text


class ConnectorConformance:
    """Reusable conformance tests; subclass it once per connector."""

    __test__: ClassVar[bool] = False
    connector_class: ClassVar[type[Connector]]
    samples_dir: ClassVar[Path | None] = None
    extra_config: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    path_key: ClassVar[str] = "path"

    def __init_subclass__(
        cls,
        *,
        connector_class: type[Connector] | None = None,
        samples_dir: Path | str | None = None,
        extra_config: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        if connector_class is not None:
            cls.connector_class = connector_class
        if samples_dir is not None:
            cls.samples_dir = Path(samples_dir)
        if extra_config is not None:
            cls.extra_config = MappingProxyType(dict(extra_config))
        if "__test__" not in cls.__dict__:
            cls.__test__ = True

    # -- what a subclass provides ---------------------------------------------------------------

    def sample_config(self, tmp_path: Path) -> dict[str, Any]:
        """Write a small, clean sample into ``tmp_path`` and return a valid config reading it."""
        return self._config_from_samples("sample", tmp_path)

    def bad_record_config(self, tmp_path: Path) -> dict[str, Any]:
        """Write a sample holding at least one bad record into ``tmp_path``; return its config."""
        return self._config_from_samples("bad", tmp_path)

    def append_record(self, config: Mapping[str, Any]) -> None:
        """Add exactly one new record (with a new id) to the sample ``config`` reads."""
        source = self._sample_file("append")
        target = Path(str(config[self.path_key]))
        existing = target.read_bytes()
        with target.open("ab") as handle:
            if existing and not existing.endswith(b"\n"):
                handle.write(b"\n")
            handle.write(source.read_bytes())

    def _sample_file(self, stem: str) -> Path:
        if self.samples_dir is None:
            raise NotImplementedError(
                f"{type(self).__name__}: set samples_dir (holding {stem}.*) or override "
                f"{'append_record' if stem == 'append' else stem + '_config'}()"
            )
        found = sorted(p for p in Path(self.samples_dir).glob(f"{stem}.*") if p.is_file())
        expect(len(found) == 1, f"{self.samples_dir} must hold exactly one {stem}.* file, found {len(found)}")
        return found[0]

    def _config_from_samples(self, stem: str, tmp_path: Path) -> dict[str, Any]:
        source = self._sample_file(stem)
        target = tmp_path / source.name
        shutil.copyfile(source, target)
        return {**self.extra_config, self.path_key: str(target)}

    # -- helpers --------------------------------------------------------------------------------

    @property
    def connector(self) -> type[Connector]:
        cls: object = getattr(type(self), "connector_class", None)
        if not (isinstance(cls, type) and issubclass(cls, Connector)):
            raise AssertionError(
                f"{type(self).__name__}: set connector_class to a subclass of cdp.connectors.base.Connector"
            )
        return cls

    @staticmethod
    def read_all(connector: Connector, state: Mapping[str, Any]) -> tuple[list[SourceItem], dict[str, Any]]:
        """Exhaust one read from ``state``; return the items and the state left behind."""
        result = ReadResult(state=dict(state))
        items = list(connector.read(state, result))
        return items, result.state

    def build(self, config: Mapping[str, Any], items: list[SourceItem]) -> list[IncomingRecord]:
        """Turn clean sample items into records, failing with the reason if one is rejected."""
        connector = self.connector(config)
        records: list[IncomingRecord] = []
        for item in items:
            expect(item.error is None, f"sample item at {item.position} could not be parsed: {item.error}")
            try:
                records.extend(connector.to_record(item))
            except RecordRejected as exc:
                raise AssertionError(f"sample item at {item.position} was rejected: {exc}") from exc
        return records

    def _sample_dir(self, tmp_path: Path, name: str) -> Path:
        directory = tmp_path / name
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    # -- fixtures -------------------------------------------------------------------------------

    @pytest.fixture
    def conformance_settings(self, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
        """The host suite's ``settings`` fixture if it has one, else a fresh data dir in ``tmp_path``."""
        try:
            provided = request.getfixturevalue("settings")
        except pytest.FixtureLookupError:
            provided = None
        if isinstance(provided, Settings):
            return provided
        return Settings(data_dir=tmp_path / "cdp-data", keys_dir=tmp_path / "cdp-keys")

    @pytest.fixture
    def conformance_store(
        self, request: pytest.FixtureRequest, conformance_settings: Settings
    ) -> Iterator[CustomerStore]:
        """The host suite's ``store`` fixture if it has one for these settings, else a migrated store."""
        provided: object = None
        try:
            if request.getfixturevalue("settings") is conformance_settings:
                provided = request.getfixturevalue("store")
        except pytest.FixtureLookupError:
            provided = None
        if isinstance(provided, CustomerStore):
            yield provided
            return
        opened = open_store(conformance_settings, migrate=True)
        try:
            yield opened
        finally:
            opened.close()

    # -- declarations ---------------------------------------------------------------------------

    def check_declarations(self) -> None:
        cls = self.connector
        name = getattr(cls, "name", None)
        expect(
            isinstance(name, str) and NAME_PATTERN.fullmatch(name), f"{cls.__name__}.name must match [a-z][a-z0-9_]*"
        )
        expect(isinstance(cls.description, str) and cls.description.strip(), f"connector {name}: declare a description")
        expect(cls.streams, f"connector {name}: declare at least one stream")
        stream_names = [s.name for s in cls.streams]
        expect(len(set(stream_names)) == len(stream_names), f"connector {name}: stream names repeat: {stream_names}")
        config_names = [f.name for f in cls.config_schema]
        expect(len(set(config_names)) == len(config_names), f"connector {name}: config keys repeat: {config_names}")
        for spec in cls.config_schema:
            expect(
                spec.type in CONFIG_TYPES, f"connector {name}: config key {spec.name!r} has unknown type {spec.type!r}"
            )

    def check_streams(self) -> None:
        cls = self.connector
        for stream in cls.streams:
            where = f"connector {cls.name}, stream {stream.name}"
            expect(stream.fields, f"{where}: declares no fields")
            names = [f.name for f in stream.fields]
            expect(len(set(names)) == len(names), f"{where}: field names repeat")
            expect(stream.primary_key, f"{where}: declares no primary key")
            for key in stream.primary_key:
                expect(key in names, f"{where}: primary key {key!r} is not a declared field")
            expect(stream.cursor_field, f"{where}: declares no cursor field")
            expect(
                stream.cursor_field in names, f"{where}: cursor field {stream.cursor_field!r} is not a declared field"
            )
            for spec in stream.fields:
                expect(spec.type in FIELD_TYPES, f"{where}: field {spec.name!r} has unknown type {spec.type!r}")

    def check_classifications(self, classes: frozenset[str]) -> None:
        cls = self.connector
        problems = [
            f"{stream.name}.{spec.name}: {spec.classification!r}"
            for stream in cls.streams
            for spec in stream.fields
            if spec.classification not in classes
        ]
        expect(not problems, f"connector {cls.name}: fields with a class not in policies/fields.yaml: {problems}")

    # -- configuration --------------------------------------------------------------------------

    def check_unknown_key(self, config: Mapping[str, Any]) -> None:
        cls = self.connector
        try:
            cls({**config, UNKNOWN_KEY: "x"})
        except ConfigurationError as exc:
            expect(UNKNOWN_KEY in str(exc), f"connector {cls.name}: the unknown-key error does not name the key: {exc}")
        else:
            raise AssertionError(f"connector {cls.name}: an unknown config key was accepted")

    def check_wrong_types(self, config: Mapping[str, Any]) -> None:
        cls = self.connector
        for spec in cls.config_schema:
            bad = wrong_value(spec)
            try:
                cls({**config, spec.name: bad})
            except ConfigurationError as exc:
                message = str(exc)
                expect(spec.name in message, f"connector {cls.name}: the wrong-type error does not name {spec.name!r}")
                if spec.secret:
                    expect(not leaked(bad, message), f"connector {cls.name}: an error shows secret {spec.name!r}")
            else:
                raise AssertionError(f"connector {cls.name}: config key {spec.name!r} accepted {type(bad).__name__}")

    def check_secrets(self, config: Mapping[str, Any]) -> None:
        cls = self.connector
        secrets = [spec for spec in cls.config_schema if spec.secret]
        if not secrets:
            redacted = cls(config).redacted_config()
            expect(redacted == cls(config).config, f"connector {cls.name}: redacted_config() hides non-secret values")
            return
        for spec in secrets:
            value = secret_value(spec)
            with_secret = {**config, spec.name: value}
            try:
                connector = cls(with_secret)
            except ConfigurationError as exc:
                expect(not leaked(value, str(exc)), f"connector {cls.name}: an error shows secret {spec.name!r}")
                continue
            shown = json.dumps(connector.redacted_config(), default=str)
            expect(not leaked(value, shown), f"connector {cls.name}: redacted_config() shows secret {spec.name!r}")
            expect(
                spec.name in connector.redacted_config(), f"connector {cls.name}: redacted_config() drops {spec.name!r}"
            )
            broken: list[dict[str, Any]] = [{**with_secret, UNKNOWN_KEY: 1}]
            broken += [
                {**with_secret, other.name: wrong_value(other)} for other in cls.config_schema if other is not spec
            ]
            for attempt in broken:
                try:
                    cls(attempt)
                except ConfigurationError as exc:
                    expect(not leaked(value, str(exc)), f"connector {cls.name}: an error shows secret {spec.name!r}")

    # -- reading --------------------------------------------------------------------------------

    def check_state_round_trip(self, config: Mapping[str, Any]) -> None:
        cls = self.connector
        first, state = self.read_all(cls(config), {})
        expect(first, f"connector {cls.name}: the sample yielded no items")
        records = self.build(config, first)
        expect(records, f"connector {cls.name}: the sample yielded no records")
        streams = {s.name for s in cls.streams}
        source = cls(config).source_name
        for item in first:
            expect(
                item.stream in streams,
                f"connector {cls.name}: item at {item.position} is in undeclared stream {item.stream!r}",
            )
            expect(item.position, f"connector {cls.name}: an item has no position")
        for record in records:
            expect(
                record.source == source,
                f"connector {cls.name}: a record is stored under {record.source!r}, not {source!r}",
            )
            expect(
                record.stream in streams, f"connector {cls.name}: a record is in undeclared stream {record.stream!r}"
            )
            expect(record.source_record_id, f"connector {cls.name}: a record has no id")
        keys = [r.idempotency_key for r in records]
        expect(len(set(keys)) == len(keys), f"connector {cls.name}: two sample records share an id")
        try:
            saved = json.loads(json.dumps(state))
        except (TypeError, ValueError) as exc:
            raise AssertionError(f"connector {cls.name}: the state is not JSON-serialisable: {exc}") from exc
        again, saved_again = self.read_all(cls(config), saved)
        expect(not again, f"connector {cls.name}: a read from the saved state yielded {len(again)} old item(s)")
        self.append_record(config)
        fresh, _ = self.read_all(cls(config), json.loads(json.dumps(saved_again)))
        expect(len(fresh) == 1, f"connector {cls.name}: after appending one record a read yielded {len(fresh)} item(s)")
        old_positions = {item.position for item in first}
        expect(
            fresh[0].position not in old_positions,
            f"connector {cls.name}: the appended record came back at an old position",
        )
        new_keys = {r.idempotency_key for r in self.build(config, fresh)}
        expect(
            new_keys and new_keys.isdisjoint(keys), f"connector {cls.name}: the appended record did not get a new id"
        )

    def check_idempotent_rerun(self, config: Mapping[str, Any], store: CustomerStore, settings: Settings) -> None:
        cls = self.connector
        runner = IngestRunner(store, settings)
        first = runner.run(cls(config))
        expect(first.accepted > 0, f"connector {cls.name}: the first run accepted nothing")
        expect(
            first.rejected == 0,
            f"connector {cls.name}: the first run rejected {first.rejected} clean record(s): {first.reasons}",
        )
        second = runner.run(cls(config))
        expect(second.accepted == 0, f"connector {cls.name}: a second run accepted {second.accepted} record(s) again")
        # Forget the saved state and grow the source: everything is read again, only the new record is stored.
        self.append_record(config)
        source = cls(config).source_name
        store.set_cursor(connector_context(source), source, STATE_STREAM, {})
        third = runner.run(cls(config))
        expect(
            third.accepted > 0 and third.duplicates == first.accepted,
            f"connector {cls.name}: a full re-read stored {third.accepted} record(s) and recognised "
            f"{third.duplicates} of {first.accepted} as already stored",
        )
        fourth = runner.run(cls(config))
        expect(
            fourth.accepted == 0, f"connector {cls.name}: a run with nothing new accepted {fourth.accepted} record(s)"
        )

    def check_quarantine(self, config: Mapping[str, Any], store: CustomerStore, settings: Settings) -> None:
        cls = self.connector
        connector = cls(config)
        try:
            stats = IngestRunner(store, settings).run(connector)
        except Exception as exc:  # anything escaping the runner is the failure being checked for
            raise AssertionError(
                f"connector {cls.name}: a bad record stopped the run: {type(exc).__name__}: {exc}"
            ) from exc
        expect(stats.rejected >= 1, f"connector {cls.name}: the bad-record sample was accepted whole")
        entries = store.quarantine_entries(OPERATIONS, source=connector.source_name)
        expect(
            len(entries) == stats.rejected,
            f"connector {cls.name}: {stats.rejected} rejected, {len(entries)} quarantined",
        )
        for entry in entries:
            expect(entry["reason"], f"connector {cls.name}: quarantine entry at {entry['position']} has no reason")
            expect(entry["position"], f"connector {cls.name}: a quarantine entry has no position")

    # -- the tests ------------------------------------------------------------------------------

    def test_declares_name_description_streams(self) -> None:
        self.check_declarations()

    def test_streams_have_primary_key_cursor_and_fields(self) -> None:
        self.check_streams()

    def test_field_classes_exist_in_policy(self) -> None:
        self.check_classifications(policy_classes())

    def test_config_rejects_unknown_key(self, tmp_path: Path) -> None:
        self.check_unknown_key(self.sample_config(self._sample_dir(tmp_path, "sample")))

    def test_config_rejects_wrong_types(self, tmp_path: Path) -> None:
        self.check_wrong_types(self.sample_config(self._sample_dir(tmp_path, "sample")))

    def test_secret_config_values_never_shown(self, tmp_path: Path) -> None:
        self.check_secrets(self.sample_config(self._sample_dir(tmp_path, "sample")))

    def test_state_round_trip(self, tmp_path: Path) -> None:
        self.check_state_round_trip(self.sample_config(self._sample_dir(tmp_path, "sample")))

    def test_rerun_is_idempotent(
        self, tmp_path: Path, conformance_store: CustomerStore, conformance_settings: Settings
    ) -> None:
        config = self.sample_config(self._sample_dir(tmp_path, "sample"))
        self.check_idempotent_rerun(config, conformance_store, conformance_settings)

    def test_bad_record_is_quarantined(
        self, tmp_path: Path, conformance_store: CustomerStore, conformance_settings: Settings
    ) -> None:
        config = self.bad_record_config(self._sample_dir(tmp_path, "bad"))
        self.check_quarantine(config, conformance_store, conformance_settings)
