"""Opening the system of record and migrating it.

SQLite in the data directory by default, PostgreSQL when
``CDP_DATABASE_URL`` says so; the same code runs on both. The schema is
created only by alembic (``upgrade()``), never by ``metadata.create_all``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import msgspec
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError

from cdp._exceptions import StorageError
from cdp.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_CACHE_KIB = 65_536  # page cache per connection (PRAGMA cache_size takes KiB when negative)
SQLITE_MMAP_BYTES = 256 * 1024 * 1024
SQLITE_CHECKPOINT_PAGES = 4_000  # WAL auto-checkpoint threshold (default 1,000 pages of 4 KiB)
SQLITE_BULK_READ_CACHE_KIB = 2_048  # page cache while large blobs are read (``small_page_cache``)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, begin transactions (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Bulk-load friendly and still durable against a killed process (WAL + NORMAL loses nothing a
    # commit returned for unless the machine itself loses power): a 64 MiB page cache keeps the
    # random-keyed unique indexes (idempotency keys, blind-index digests) in memory, temporary
    # b-trees stay in memory, reads go through a memory map, and the WAL is checkpointed every
    # 16 MiB instead of every 4 MiB (a page rewritten by several batches is copied back once).
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}")
    cursor.close()


@contextmanager
def small_page_cache(connection: Connection) -> Iterator[None]:
    """On SQLite, a small page cache for this connection while large blobs are read through it.

    A blob's overflow pages are read once: kept in the 64 MiB cache (``SQLITE_CACHE_KIB``) they
    only make it allocate up to 64 MiB of fresh memory, which a segment refresh's 160 MB of event
    blocks fill (19k page faults, 0.11-0.15 s, against 2.3k and 0.06-0.08 s with 2 MiB: docs/
    benchmarks.md, Segments, sixteenth session). The connection's own size is put back after."""
    if connection.dialect.name != "sqlite":
        yield
        return
    before = int(connection.exec_driver_sql("PRAGMA cache_size").scalar_one())
    connection.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_BULK_READ_CACHE_KIB}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA cache_size={before}")


def _bind_as_is() -> None:
    """Tell :mod:`sqlite3` that ``bytes`` and ``None`` parameters bind as they are.

    Python's driver binds int, float and str directly but sends every other parameter through its
    adapter protocol first: a registry look-up that misses, then ``__adapt__`` and ``__conform__``
    looked up on the protocol and on the value, before the value is bound unchanged. Ingest rows are
    mostly ciphertext (bytes) and empty columns (None): that was about a tenth of the storing
    process's CPU. Registered adapters for exactly these two types (``bytes`` returns an exact bytes
    object itself, ``{}.get`` returns None) are found at the first look-up and bind the same values.
    The registry is the process's; the adapters change no value, so nothing else using sqlite3 sees
    a difference (subclasses of bytes still take the protocol's path).
    """
    sqlite3.register_adapter(bytes, bytes)
    bind_none: Callable[[None], None] = cast("dict[None, None]", {}).get  # a C function returning None
    sqlite3.register_adapter(type(None), bind_none)


def _sqlite_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front, so two writers can never read
    # the same audit-chain head and fork the chain.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def describe_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


_JSON_ENCODE = msgspec.json.Encoder().encode
_JSON_DECODE = msgspec.json.Decoder().decode
_JSON_FAILS = (msgspec.MsgspecError, TypeError, ValueError, OverflowError, RecursionError)


def json_column_text(value: Any) -> str:
    """The text a JSON column stores for ``value`` (SQLAlchemy's ``json_serializer``).

    The same JSON value as ``json.dumps(value)``, SQLAlchemy's default, written by msgspec (several
    times faster: event properties are about a tenth of a file ingest's parsing time with
    :mod:`json`) when its text decodes back to a value equal to ``value``, which is exactly when
    :mod:`json` would have written that value (JSON types only, finite floats, text keys); anything
    else (a NaN, a non-text key, a tuple, a value :mod:`json` refuses) goes to ``json.dumps`` as before.
    The text is compact and keeps non-ASCII characters as they are instead of ``\\u`` escapes.
    """
    try:
        raw = _JSON_ENCODE(value)
        if _JSON_DECODE(raw) == value:
            return raw.decode("utf-8")
    except _JSON_FAILS:
        pass
    return json.dumps(value)


def create_db_engine(settings: Settings) -> Engine:
    url = settings.database_url
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StorageError(f"CDP_DATABASE_URL is not a database URL: {describe_url(url)}") from exc
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(parsed, pool_pre_ping=True, json_serializer=json_column_text)
    except (NoSuchModuleError, ArgumentError, ImportError) as exc:
        raise StorageError(f"unsupported database URL {describe_url(url)}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        _bind_as_is()
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def check_connection(engine: Engine) -> None:
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "connection failed"
        raise StorageError(f"cannot open the database {describe_url(str(engine.url))}: {reason}") from exc


def _alembic_config(engine: Engine | None) -> Any:
    """Alembic's configuration: the migration scripts, and the database when there is one."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Run the migrations up to ``revision``; return the revision now in force."""
    return _migrate(engine, revision, down=False)


def downgrade(engine: Engine, revision: str) -> str:
    """Undo the migrations after ``revision``; return the revision now in force."""
    return _migrate(engine, revision, down=True)


def _migrate(engine: Engine, revision: str, *, down: bool) -> str:
    from alembic import command

    check_connection(engine)
    config = _alembic_config(engine)
    try:
        with engine.connect() as connection:
            sqlite = engine.dialect.name == "sqlite"
            if sqlite:  # before the transaction begins: the pragma is a no-op inside one
                _foreign_keys(connection, on=False)
            try:
                with connection.begin():
                    config.attributes["connection"] = connection
                    (command.downgrade if down else command.upgrade)(config, revision)
                    if sqlite:
                        _check_foreign_keys(connection)
            finally:
                if sqlite:
                    _foreign_keys(connection, on=True)
    except SQLAlchemyError as exc:
        raise StorageError(f"migration failed: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from exc
    return current_revision(engine) or "base"


# SQLite's documented way to change a table's definition is to rebuild it (make the new table, copy,
# drop the old, rename the new) with foreign keys off: with them on, dropping the old table first
# deletes its rows, and ON DELETE CASCADE would take every referencing row with them. Migrations
# therefore run with foreign keys off on SQLite, and the whole database is checked before the commit.


def _foreign_keys(connection: Connection, *, on: bool) -> None:
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def _check_foreign_keys(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        table, rowid, parent, _ = broken[0]
        raise StorageError(
            f"migration failed: {len(broken)} rows break a foreign key (first: {table} row {rowid} -> {parent})"
        )


HEAD_REVISION = "0009"
"""The newest migration: a store opened without migrating must be at it (a test checks it is alembic's head)."""


def head_revision() -> str:
    """Alembic's head, read from the migration scripts (for the test that pins :data:`HEAD_REVISION`)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config(None)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def is_migrated(engine: Engine) -> bool:
    try:
        return "audit_log" in inspect(engine).get_table_names()
    except OperationalError:
        return False


def holds_data(engine: Engine) -> bool:
    """True once any data key or audit record exists (keys must then never be regenerated)."""
    from sqlalchemy import text

    with engine.connect() as connection:
        for table in ("subject_keys", "audit_log"):
            if connection.execute(text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None:
                return True
    return False
