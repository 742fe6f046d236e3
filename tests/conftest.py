"""Shared fixtures: every test gets its own data directory and its own database.

SQLite by default. With ``CDP_TEST_DATABASE_URL`` set to a PostgreSQL URL the
same tests run against PostgreSQL, each in a fresh schema created for it and
dropped afterwards, so leftovers of earlier runs can never turn a run red or
green.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import structlog
from sqlalchemy import create_engine, text

from cdp.access import CustomerStore, open_store
from cdp.settings import Settings

POSTGRES_URL = os.environ.get("CDP_TEST_DATABASE_URL", "")


@pytest.fixture(autouse=True)
def _logging_configuration_restored() -> Iterator[None]:
    """A CLI command run in a test configures logging to the stderr of that moment, a capture
    that is closed once the test ends; a later test that logs would write to a closed file."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[object | None]:
    if not POSTGRES_URL:
        yield None
        return
    engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture
def database_url(tmp_path: Path, postgres_admin: object | None) -> Iterator[str]:
    if postgres_admin is None:
        yield f"sqlite:///{(tmp_path / 'data' / 'cdp.sqlite').as_posix()}"
        return
    schema = f"cdp_test_{uuid.uuid4().hex[:16]}"
    with postgres_admin.connect() as connection:  # type: ignore[attr-defined]
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    with postgres_admin.connect() as connection:  # type: ignore[attr-defined]
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", database_url=database_url, keys_dir=tmp_path / "keys", audit_checkpoint_every=50
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[CustomerStore]:
    opened = open_store(settings, migrate=True)
    yield opened
    opened.close()


@pytest.fixture
def loaded(store: CustomerStore, tmp_path: Path) -> CustomerStore:
    """A store holding the fixture files of every built-in source, resolved into profiles."""
    from fixtures import write_fixture_files

    from cdp.pipeline import SourceSpec, ingest, resolve

    for name, path in write_fixture_files(tmp_path / "src").items():
        ingest(store, store.settings, SourceSpec(name, {"path": str(path)}))
    resolve(store, store.settings)
    return store


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    env = {
        "CDP_DATA_DIR": str(settings.data_dir),
        "CDP_DATABASE_URL": settings.database_url,
        "CDP_KEYS_DIR": str(settings.keys_dir),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    return env
