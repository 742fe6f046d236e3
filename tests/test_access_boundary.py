"""Only cdp.access may touch customer tables or open database sessions.

The rule is checked on the source tree (every module under cdp/ and plugins/):
importing ``cdp.access._tables`` or opening an engine, connection or ORM
session outside ``cdp/access/`` is a violation. A planted violation proves
the check can fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWED_PACKAGE = ROOT / "cdp" / "access"
FORBIDDEN_IMPORTS = ("cdp.access._tables", "cdp.access._core", "cdp.access.audit", "cdp.access.database")
FORBIDDEN_CALLS = {"create_engine", "sessionmaker", "Session", "create_async_engine", "connect", "begin", "execute"}
FORBIDDEN_FROM_SQLALCHEMY = {"create_engine", "Table", "MetaData", "select", "insert", "update", "delete", "text"}
# Modules that may use cdp.access.database (migrations command only, not customer data).
DATABASE_ADMIN = {ROOT / "cdp" / "cli" / "admin_commands.py"}
# The data-key store keeps wrapped keys in its own SQLite file in the keys directory: not a
# customer table, and deliberately not in the customer database (crypto-shredding of backups).
KEY_STORE = ROOT / "cdp" / "crypto" / "keystore.py"


def violations_in(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    rel = path.relative_to(root) if path.is_relative_to(root) else path
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            full = node.module
            names = {alias.name for alias in node.names}
            if full in FORBIDDEN_IMPORTS and not (full == "cdp.access.database" and path in DATABASE_ADMIN):
                found.append(f"{rel}:{node.lineno} imports {full}")
            if full == "cdp.access" and names & {"_tables", "_core", "audit"}:
                found.append(
                    f"{rel}:{node.lineno} imports {sorted(names & {'_tables', '_core', 'audit'})} from cdp.access"
                )
            if full.startswith("sqlalchemy") and names & FORBIDDEN_FROM_SQLALCHEMY:
                found.append(f"{rel}:{node.lineno} uses sqlalchemy {sorted(names & FORBIDDEN_FROM_SQLALCHEMY)}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if (
                    alias.name in FORBIDDEN_IMPORTS
                    or alias.name.startswith("sqlalchemy")
                    or alias.name in ("sqlite3", "psycopg")
                ):
                    found.append(f"{rel}:{node.lineno} imports {alias.name}")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            owner = func.value if isinstance(func, ast.Attribute) else None
            owner_name = (
                owner.attr if isinstance(owner, ast.Attribute) else owner.id if isinstance(owner, ast.Name) else ""
            )
            if name in FORBIDDEN_CALLS and owner_name in (
                "engine",
                "sqlite3",
                "psycopg",
                "sqlalchemy",
                "store.engine",
                "connection",
            ):
                found.append(f"{rel}:{node.lineno} calls {owner_name}.{name}")
            if (
                isinstance(owner, ast.Attribute)
                and owner.attr == "engine"
                and name in ("connect", "begin", "execute", "raw_connection")
            ):
                found.append(f"{rel}:{node.lineno} uses an engine directly")
    return found


def python_files_outside_access(root: Path) -> list[Path]:
    files = [*sorted((root / "cdp").rglob("*.py")), *sorted((root / "plugins").rglob("*.py"))]
    return [f for f in files if not f.is_relative_to(root / "cdp" / "access") and f != KEY_STORE]


def test_no_module_outside_the_access_layer_touches_customer_tables() -> None:
    problems = [v for path in python_files_outside_access(ROOT) for v in violations_in(path)]
    assert problems == []


def test_the_boundary_check_catches_a_planted_violation(tmp_path: Path) -> None:
    planted = tmp_path / "sneaky.py"
    planted.write_text(
        "from cdp.access._tables import records\n"
        "from sqlalchemy import select\n"
        "def leak(store):\n"
        "    with store.engine.connect() as c:\n"
        "        return c.execute(select(records)).all()\n",
        encoding="utf-8",
    )
    problems = violations_in(planted, tmp_path)
    assert any("cdp.access._tables" in p for p in problems)
    assert any("sqlalchemy" in p for p in problems)
    assert any("engine" in p for p in problems)


def test_the_check_scans_the_whole_package() -> None:
    scanned = python_files_outside_access(ROOT)
    assert ROOT / "cdp" / "segments" / "export.py" in scanned
    assert ROOT / "cdp" / "access" / "_tables.py" not in scanned
