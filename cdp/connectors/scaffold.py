"""``cdp connectors new NAME``: scaffold a connector plugin package that passes the kit out of the box.

Writing a connector should start from something that already works: a
package with the ``cdp`` entry point, a plugin module, a connector reading a
CSV file, sample files and a one-line conformance test. The author then edits
the declared fields and ``to_record`` while the conformance kit
(:mod:`cdp.connectors.testing`) keeps telling them whether the contract
still holds. The templates live here, as :class:`string.Template` texts.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from string import Template

from cdp._exceptions import Conflict, InputError

NAME_RULE = re.compile(r"[a-z][a-z0-9]*(?:[_-][a-z0-9]+)*")
MAX_NAME = 40
LINE_LENGTH = 120


@dataclass(frozen=True)
class PluginNames:
    """Every spelling of one connector name the package needs."""

    connector: str  # shopify_orders: the connector's ``name``
    distribution: str  # cdp-shopify-orders: the pip package and its directory
    package: str  # cdp_shopify_orders: the import package
    class_name: str  # ShopifyOrdersConnector
    title: str  # Shopify Orders

    @classmethod
    def from_name(cls, name: str) -> PluginNames:
        raw = name.strip()
        if not NAME_RULE.fullmatch(raw) or len(raw) > MAX_NAME:
            raise InputError(
                f"connector name {name!r} must be lowercase letters and digits, words joined by _ or -, "
                f"starting with a letter, at most {MAX_NAME} characters (for example loyalty_app)"
            )
        words = re.split(r"[_-]", raw)
        if keyword.iskeyword(raw):
            raise InputError(f"connector name {name!r} is a Python keyword")
        return cls(
            connector="_".join(words),
            distribution="cdp-" + "-".join(words),
            package="cdp_" + "_".join(words),
            class_name="".join(w.capitalize() for w in words) + "Connector",
            title=" ".join(w.capitalize() for w in words),
        )


def default_directory(names: PluginNames, plugins_dir: Path = Path("plugins")) -> Path:
    return plugins_dir / names.distribution


def render(names: PluginNames) -> dict[str, str]:
    """The package's files (path relative to the package root -> text)."""
    values = {
        "connector": names.connector,
        "distribution": names.distribution,
        "package": names.package,
        "class_name": names.class_name,
        "title": names.title,
        "test_class": _test_class(names),
    }
    return {Template(path).substitute(values): Template(text).substitute(values) for path, text in TEMPLATES.items()}


def scaffold(name: str, directory: Path | None = None, *, taken: Collection[str] = ()) -> Path:
    """Write a new plugin package for connector ``name``; return its directory.

    ``taken`` are names of connectors already installed: a plugin reusing one
    would shadow it, so that is refused. So is a directory that is not empty.
    """
    names = PluginNames.from_name(name)
    if names.connector in taken:
        raise Conflict(f"a connector named {names.connector!r} is already installed; choose another name")
    target = directory if directory is not None else default_directory(names)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise Conflict(f"{target} already exists and is not empty; choose another --dir")
    for relative, text in render(names).items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target


def _test_class(names: PluginNames) -> str:
    """The one-line conformance test, wrapped the way ``ruff format`` would if it is too long."""
    bases = f"ConnectorConformance, connector_class={names.class_name}, samples_dir=SAMPLES"
    line = f"class Test{names.class_name}({bases}): ..."
    if len(line) <= LINE_LENGTH:
        return line
    return f"class Test{names.class_name}(\n    {bases}\n): ..."


PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$distribution"
version = "0.1.0"
description = "A cdp connector: $title."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["cdp"]

[project.optional-dependencies]
test = ["pytest>=8"]

# cdp loads plugins from this entry-point group: name = "module holding the @hookimpl functions".
[project.entry-points.cdp]
$connector = "$package.plugin"

[tool.setuptools.packages.find]
where = ["src"]

[tool.setuptools.package-data]
$package = ["py.typed"]

[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = "-ra --strict-markers"
filterwarnings = ["error"]
"""

README = """\
# $distribution

A cdp connector plugin: **$title** (connector name `$connector`).
Scaffolded by `cdp connectors new $connector`.

```bash
pip install -e .                      # registers the `cdp` entry point
cdp connectors list                   # $connector is listed
cdp ingest $connector rows.csv
python -m pytest -W error             # the conformance kit, on tests/samples/
```

## Make it yours

1. In `src/$package/connector.py`, declare the columns your source has in
   `FIELDS`, each with its class from cdp's `policies/fields.yaml`
   (`direct_identifier`, `quasi_identifier`, `behavioural`, `sensitive`,
   `pseudonymous`, `operational`). Undeclared columns are rejected, so nothing
   unclassified is ever stored.
2. Map identifiers in `IDENTITY` and build the events in `to_record`. Raise
   `RecordRejected(reason, record=..., field=...)` for a bad record: the
   runner quarantines it and carries on.
3. Replace `tests/samples/sample.csv` (clean records), `bad.csv` (at least
   one bad record) and `append.csv` (one new record, no header) with examples
   of your source, and keep `python -m pytest` green.

See cdp's `docs/connectors.md` for the whole contract.
"""

INIT = '''\
"""$distribution: a cdp connector plugin ($title)."""

from __future__ import annotations

from $package.connector import $class_name

__all__ = ["$class_name"]
__version__ = "0.1.0"
'''

PLUGIN = '''\
"""The module cdp loads through the ``cdp`` entry point: it registers the connector."""

from __future__ import annotations

from typing import Any

from cdp.hookspecs import PluginContext, hookimpl
from $package.connector import $class_name


@hookimpl
def cdp_connectors(context: PluginContext) -> list[Any]:
    return [$class_name]
'''

CONNECTOR = '''\
"""$title: one record per row of a CSV file.

Scaffolded by ``cdp connectors new $connector``: edit ``FIELDS``, ``IDENTITY``
and ``to_record`` for your source. Reading is incremental (a re-run reads
only rows appended since the last run) and a bad row is rejected naming the
column, so the runner quarantines it and carries on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from cdp._exceptions import RecordRejected
from cdp.connectors import _files
from cdp.connectors._parse import text, timestamp
from cdp.connectors.base import ConfigField, Connector, FieldSpec, ReadResult, SourceItem, StreamSpec
from cdp.model import EventData, IncomingRecord

STREAM = "rows"
# Every column the source may have, with its class from policies/fields.yaml.
FIELDS = (
    FieldSpec("id", "string", "pseudonymous", required=True, description="stable row id"),
    FieldSpec("occurred_at", "datetime", "behavioural", required=True),
    FieldSpec("email", "string", "direct_identifier"),
    FieldSpec("full_name", "string", "direct_identifier"),
    FieldSpec("country", "string", "quasi_identifier"),
    FieldSpec("event", "string", "behavioural", description="what happened"),
)
COLUMNS = frozenset(f.name for f in FIELDS)
# column -> cdp identity field (email, phone, full_name, given_name, family_name, ...)
IDENTITY = (("email", "email"), ("full_name", "full_name"), ("country", "country"))


class $class_name(Connector):
    """$title rows from a CSV file."""

    name: ClassVar[str] = "$connector"
    description: ClassVar[str] = "$title: one record per row of a CSV file."
    config_schema: ClassVar[tuple[ConfigField, ...]] = (
        ConfigField("path", "path", required=True, description="the CSV file"),
        ConfigField("source", "string", description="source name (default: $connector)"),
        ConfigField("delimiter", "string", default=",", description="CSV delimiter"),
    )
    streams: ClassVar[tuple[StreamSpec, ...]] = (StreamSpec(STREAM, ("id",), "occurred_at", FIELDS),)

    def read(self, state: Mapping[str, Any], result: ReadResult) -> Iterator[SourceItem]:
        path = _files.check_file(str(self.config.get("path") or ""))
        delimiter = str(self.config.get("delimiter") or ",")
        yield from _files.read_csv(path, STREAM, state, result, delimiter=delimiter)

    def to_record(self, item: SourceItem) -> list[IncomingRecord]:
        row: dict[str, Any] = item.data
        record = str(row.get("id") or item.position)
        unknown = sorted(set(row) - COLUMNS)
        if unknown:
            raise RecordRejected("unknown column: declare and classify it in FIELDS", record=record, field=unknown[0])
        record_id = text(row.get("id"), "id", record=record, required=True)
        when = timestamp(row.get("occurred_at"), "occurred_at", record=record)
        assert record_id is not None and when is not None
        identity: dict[str, str] = {}
        for column, target in IDENTITY:
            value = text(row.get(column), column, record=record, max_len=300)
            if value:
                identity[target] = value
        name = text(row.get("event"), "event", record=record, max_len=200)
        event = EventData("track", when, name or "Record Imported", channel="other")
        return [
            IncomingRecord(
                source=self.source_name,
                stream=STREAM,
                source_record_id=record_id,
                occurred_at=when,
                payload=dict(row),
                identity=identity,
                events=[event],
                position=item.position,
            )
        ]
'''

TEST = '''\
"""$title passes cdp's connector conformance kit on the files in ``samples/``."""

from pathlib import Path

from $package.connector import $class_name

from cdp.connectors.testing import ConnectorConformance

SAMPLES = Path(__file__).parent / "samples"


$test_class
'''

SAMPLE = """\
id,occurred_at,email,full_name,country,event
r-1,2026-01-05T10:00:00Z,ada@example.com,Ada Lovelace,GB,Signed Up
r-2,2026-01-06T11:30:00Z,grace@example.org,Grace Hopper,US,Signed Up
r-3,2026-01-07T09:15:00Z,,,,Newsletter Opened
"""

BAD = """\
id,occurred_at,email,full_name,country,event
r-1,2026-01-05T10:00:00Z,ada@example.com,Ada Lovelace,GB,Signed Up
r-2,yesterday,grace@example.org,Grace Hopper,US,Signed Up
r-3,2026-01-07T09:15:00Z
"""

APPEND = """\
r-4,2026-01-08T08:00:00Z,alan@example.net,Alan Turing,GB,Signed Up
"""

TEMPLATES: dict[str, str] = {
    "pyproject.toml": PYPROJECT,
    "README.md": README,
    "src/$package/__init__.py": INIT,
    "src/$package/py.typed": "",
    "src/$package/plugin.py": PLUGIN,
    "src/$package/connector.py": CONNECTOR,
    "tests/test_conformance.py": TEST,
    "tests/samples/sample.csv": SAMPLE,
    "tests/samples/bad.csv": BAD,
    "tests/samples/append.csv": APPEND,
}
