"""The built-in connectors pass the plugin authors' conformance kit, and the kit catches broken ones.

Each built-in connector gets one subclass of :class:`ConnectorConformance`
with small sample files written here. The second half runs the kit's checks
against deliberately broken connectors: a kit that passes everything would
prove nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from cdp._exceptions import ConfigurationError
from cdp.access import CustomerStore
from cdp.connectors.base import ConfigField, Connector, FieldSpec, ReadResult, SourceItem, StreamSpec
from cdp.connectors.generic import GenericFileConnector
from cdp.connectors.pos import PosConnector
from cdp.connectors.survey import SurveyConnector
from cdp.connectors.testing import ConnectorConformance, policy_classes
from cdp.connectors.website import WebsiteConnector
from cdp.model import IncomingRecord
from cdp.settings import Settings


def write(directory: Path, name: str, text: str) -> str:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def append(config: Mapping[str, Any], text: str) -> None:
    with Path(str(config["path"])).open("a", encoding="utf-8") as handle:
        handle.write(text)


WEB_SAMPLE = """\
{"type": "identify", "messageId": "m-1", "timestamp": "2026-01-05T10:00:00Z", "userId": "u-1", "traits": {"email": "ada@example.com", "firstName": "Ada"}}
{"type": "track", "messageId": "m-2", "timestamp": "2026-01-05T10:05:00Z", "userId": "u-1", "event": "Order Completed", "properties": {"revenue": 42.5, "currency": "usd"}}
{"type": "page", "messageId": "m-3", "timestamp": "2026-01-05T10:06:00Z", "anonymousId": "a-9", "name": "Home"}
"""
WEB_BAD = """\
{"type": "page", "messageId": "b-1", "timestamp": "2026-01-05T10:06:00Z", "anonymousId": "a-9", "name": "Home"}
{"type": "shout", "messageId": "b-2", "timestamp": "2026-01-05T10:07:00Z", "anonymousId": "a-9"}
{"type": "page", "messageId": "b-3", "timestamp":
"""


class TestWebsiteConformance(ConnectorConformance):
    connector_class = WebsiteConnector

    def sample_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": write(tmp_path, "calls.jsonl", WEB_SAMPLE)}

    def bad_record_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": write(tmp_path, "calls.jsonl", WEB_BAD)}

    def append_record(self, config: Mapping[str, Any]) -> None:
        append(
            config, '{"type": "page", "messageId": "m-4", "timestamp": "2026-01-06T09:00:00Z", "anonymousId": "a-9"}\n'
        )


POS_SAMPLE = """\
transaction_id,store_id,occurred_at,customer_name,customer_email,amount,currency,country
t-1,s-01,2026-01-05T10:00:00Z,Ada Lovelace,ada@example.com,19.99,USD,US
t-2,s-01,2026-01-05T11:00:00Z,,,5.00,USD,
t-3,s-02,2026-01-06T09:30:00Z,Grace Hopper,grace@example.org,120.00,EUR,DE
"""
POS_BAD = """\
transaction_id,store_id,occurred_at,customer_name,customer_email,amount,currency,country
t-1,s-01,2026-01-05T10:00:00Z,Ada Lovelace,ada@example.com,19.99,USD,US
t-2,s-01,2026-01-05T11:00:00Z,,,lots,USD,
t-3,s-02,2026-01-06T09:30:00Z,Grace Hopper
"""


class TestPosConformance(ConnectorConformance):
    connector_class = PosConnector

    def sample_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": write(tmp_path, "till.csv", POS_SAMPLE)}

    def bad_record_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": write(tmp_path, "till.csv", POS_BAD)}

    def append_record(self, config: Mapping[str, Any]) -> None:
        append(config, "t-4,s-03,2026-01-07T12:00:00Z,,,7.50,USD,\n")


SURVEY_SAMPLE = """\
response_id,submitted_at,name,email,nps,csat,interests,feedback,marketing_opt_in
r-1,2026-02-01T08:00:00Z,Ada Lovelace,ada@example.com,10,5,tea;books,Great service,yes
r-2,2026-02-02T08:00:00Z,,,6,2,,Slow delivery,no
"""
SURVEY_BAD = """\
response_id,submitted_at,name,email,nps,csat,interests,feedback,marketing_opt_in
r-1,2026-02-01T08:00:00Z,Ada Lovelace,ada@example.com,11,5,tea,,yes
r-2,2026-02-02T08:00:00Z,,,6,2,,,maybe
r-3,2026-02-03T08:00:00Z,,,9,4,,,
"""


class TestSurveyConformance(ConnectorConformance):
    connector_class = SurveyConnector

    def sample_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": write(tmp_path, "responses.csv", SURVEY_SAMPLE)}

    def bad_record_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": write(tmp_path, "responses.csv", SURVEY_BAD)}

    def append_record(self, config: Mapping[str, Any]) -> None:
        append(config, "r-3,2026-02-03T08:00:00Z,,,9,4,garden,,\n")


GENERIC_MAPPING = {
    "record_id": "ref",
    "occurred_at": "renewed",
    "identity": {"email": "mail", "full_name": "member"},
    "event": {"name": "Membership Renewed", "revenue": "fee"},
}
GENERIC_SAMPLE = """\
ref,renewed,mail,member,fee
g-1,2026-03-01T00:00:00Z,ada@example.com,Ada Lovelace,30
g-2,2026-03-02T00:00:00Z,grace@example.org,Grace Hopper,30
"""
GENERIC_BAD = """\
ref,renewed,mail,member,fee
g-1,2026-03-01T00:00:00Z,ada@example.com,Ada Lovelace,30
g-2,last tuesday,grace@example.org,Grace Hopper,30
"""


class TestGenericConformance(ConnectorConformance):
    connector_class = GenericFileConnector

    def sample_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": write(tmp_path, "members.csv", GENERIC_SAMPLE), "mapping": GENERIC_MAPPING}

    def bad_record_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": write(tmp_path, "members.csv", GENERIC_BAD), "mapping": GENERIC_MAPPING}

    def append_record(self, config: Mapping[str, Any]) -> None:
        append(config, "g-3,2026-03-03T00:00:00Z,,,30\n")


class _OneLine(
    ConnectorConformance, connector_class=PosConnector, samples_dir="samples", extra_config={"delimiter": ","}
):
    __test__ = False


def test_subclasses_are_collected_and_the_kit_is_not() -> None:
    assert ConnectorConformance.__test__ is False
    assert TestPosConformance.__test__ is True
    assert _OneLine.__test__ is False and _OneLine.connector_class is PosConnector
    assert _OneLine.samples_dir == Path("samples") and dict(_OneLine.extra_config) == {"delimiter": ","}


def test_the_one_line_form_reads_samples_dir(tmp_path: Path) -> None:
    samples = tmp_path / "samples"
    samples.mkdir()
    write(samples, "sample.csv", POS_SAMPLE)
    write(samples, "append.csv", "t-4,s-03,2026-01-07T12:00:00Z,,,7.50,USD,")
    made = type(
        "Kit", (ConnectorConformance,), {"__test__": False, "connector_class": PosConnector, "samples_dir": samples}
    )()
    work = tmp_path / "work"
    work.mkdir()
    config = made.sample_config(work)
    assert config == {"path": str(work / "sample.csv")}
    made.check_state_round_trip(config)
    with pytest.raises(AssertionError, match=r"exactly one bad\.\* file"):
        made.bad_record_config(work)


# -- the kit fails on broken connectors ----------------------------------------------------------


def kit(connector: type[Connector], base: type[ConnectorConformance] = TestPosConformance) -> ConnectorConformance:
    """An uncollected copy of a built-in's conformance class, pointed at another connector."""
    made = type(f"Kit{connector.__name__}", (base,), {"__test__": False, "connector_class": connector})
    return made()  # type: ignore[no-any-return]


def pos_config(tmp_path: Path, text: str = POS_SAMPLE) -> dict[str, Any]:
    return {"path": write(tmp_path, "till.csv", text)}


class UnclassifiedPos(PosConnector):
    streams = (
        StreamSpec(
            "transactions",
            ("transaction_id",),
            "occurred_at",
            (
                *PosConnector.streams[0].fields,
                FieldSpec("shoe_size", "string", "fashion"),
            ),
        ),
    )


class CursorlessPos(PosConnector):
    streams = (StreamSpec("transactions", ("transaction_id",), None, PosConnector.streams[0].fields),)


class KeylessPos(PosConnector):
    streams = (StreamSpec("transactions", ("txn",), "occurred_at", PosConnector.streams[0].fields),)


class ForgetfulPos(PosConnector):
    """Ignores the saved state: every run reads the whole file again."""

    def read(self, state: Mapping[str, Any], result: ReadResult) -> Iterator[SourceItem]:
        return super().read({}, result)


class RandomIdPos(PosConnector):
    """Gives each record a fresh id on every read, so a re-read stores duplicates."""

    def to_record(self, item: SourceItem) -> list[IncomingRecord]:
        records = super().to_record(item)
        for record in records:
            record.source_record_id = uuid.uuid4().hex
        return records


class CrashingPos(PosConnector):
    """Raises a plain error on a bad amount instead of rejecting the record."""

    def to_record(self, item: SourceItem) -> list[IncomingRecord]:
        float(item.data["amount"])
        return super().to_record(item)


class LaxPos(PosConnector):
    """Silently drops unknown config keys (a typo'd key would go unnoticed)."""

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        known = {f.name for f in cls.config_schema}
        return super().validate_config({k: v for k, v in config.items() if k in known})


class ChattyPos(PosConnector):
    """Has a secret, and echoes config values in its errors and its redacted config."""

    config_schema = (*PosConnector.config_schema, ConfigField("api_token", "string", secret=True))

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        token = config.get("api_token")
        if token is not None and not isinstance(token, str):
            raise ConfigurationError(f"api_token must be text, got {token!r}")
        return super().validate_config(config)

    def redacted_config(self) -> dict[str, Any]:
        return dict(self.config)


def test_kit_rejects_a_class_missing_from_the_policy() -> None:
    with pytest.raises(AssertionError, match="shoe_size"):
        kit(UnclassifiedPos).check_classifications(policy_classes())
    kit(PosConnector).check_classifications(policy_classes())


def test_kit_rejects_streams_without_cursor_or_declared_key() -> None:
    with pytest.raises(AssertionError, match="cursor"):
        kit(CursorlessPos).check_streams()
    with pytest.raises(AssertionError, match="primary key 'txn'"):
        kit(KeylessPos).check_streams()


def test_kit_rejects_a_connector_accepting_unknown_keys(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="unknown config key was accepted"):
        kit(LaxPos).check_unknown_key(pos_config(tmp_path))


def test_kit_rejects_leaked_secrets(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="api_token"):
        kit(ChattyPos).check_secrets(pos_config(tmp_path))


def test_kit_rejects_a_read_that_ignores_state(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="saved state yielded 3 old item"):
        kit(ForgetfulPos).check_state_round_trip(pos_config(tmp_path))


def test_kit_rejects_unstable_record_ids(tmp_path: Path, store: CustomerStore, settings: Settings) -> None:
    with pytest.raises(AssertionError, match="recognised 0 of 3"):
        kit(RandomIdPos).check_idempotent_rerun(pos_config(tmp_path), store, settings)


def test_kit_rejects_a_run_stopped_by_a_bad_record(tmp_path: Path, store: CustomerStore, settings: Settings) -> None:
    with pytest.raises(AssertionError, match="stopped the run"):
        kit(CrashingPos).check_quarantine(pos_config(tmp_path, POS_BAD), store, settings)


def test_kit_rejects_a_sample_without_bad_records(tmp_path: Path, store: CustomerStore, settings: Settings) -> None:
    with pytest.raises(AssertionError, match="accepted whole"):
        kit(PosConnector).check_quarantine(pos_config(tmp_path), store, settings)
