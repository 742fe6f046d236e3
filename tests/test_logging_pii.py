"""No personal data value may reach a log line (structlog processor)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fixtures import EMAILS, NAMES, PHONES, write_fixture_files

from cdp._logging import REDACTED, configure_logging, get_logger, redact_personal_data, scrub_text
from cdp.settings import Settings


def _capture(environment: str = "production") -> io.StringIO:
    stream = io.StringIO()
    configure_logging(environment=environment, level="DEBUG", stream=stream)
    return stream


@pytest.mark.parametrize("environment", ["production", "development"])
def test_personal_values_are_redacted_in_keys_and_free_text(environment: str) -> None:
    stream = _capture(environment)
    log = get_logger("test")
    log.info(
        "customer alice.smith@example.com called from +1 (415) 555-0101",
        email="bob.jones@example.org",
        given_name="Alice",
        note="contact wei.wang@example.cn or 0044 20 7946 0958",
        nested={"phone": "+14155550102", "ok": 3},
        card="4111111111111111",
        count=12,
    )
    output = stream.getvalue()
    for secret in (
        "alice.smith@example.com",
        "bob.jones@example.org",
        "Alice",
        "wei.wang@example.cn",
        "555-0101",
        "7946 0958",
        "+14155550102",
        "4111111111111111",
    ):
        assert secret not in output
    assert REDACTED in output
    assert "12" in output


def test_processor_keeps_operational_values() -> None:
    event = redact_personal_data(
        None, "info", {"event": "ingested batch", "accepted": 2000, "source": "pos", "seconds": 1.5}
    )
    assert event == {"event": "ingested batch", "accepted": 2000, "source": "pos", "seconds": 1.5}


def test_scrub_text_keeps_dates_and_ids() -> None:
    assert (
        scrub_text("run run_123 at 2026-11-23T10:00:00Z took 1.25 s")
        == "run run_123 at 2026-11-23T10:00:00Z took 1.25 s"
    )


def test_a_pipeline_run_logs_no_personal_data(tmp_path: Path, settings: Settings) -> None:
    from cdp.access import open_store
    from cdp.pipeline import SourceSpec, ingest, resolve

    stream = _capture("production")
    files = write_fixture_files(tmp_path / "src")
    store = open_store(settings, migrate=True)
    try:
        for name, path in files.items():
            ingest(store, settings, SourceSpec(name, {"path": str(path)}))
        resolve(store, settings)
        get_logger("test").warning("record rejected", email=EMAILS[0], reason=f"bad value {PHONES[0]}")
    finally:
        store.close()
    output = stream.getvalue()
    assert output, "the run should have logged something"
    for line in output.splitlines():
        json.loads(line)
    for value in (*EMAILS, *PHONES, *NAMES):
        assert value not in output
