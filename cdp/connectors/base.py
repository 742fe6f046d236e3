"""The connector contract: what a connector declares and how it reads.

Modelled on singer-sdk. A connector declares its name, a config schema
(secret fields marked), and its streams, each with a primary key, a cursor
field and a field schema where every field carries a personal-data class that
must exist in ``policies/fields.yaml``. Reading is explicitly incremental: the
runner passes the last saved state in and stores the new state the connector
reports, so a re-run only fetches what is new.

A connector turns raw input into :class:`SourceItem` values (one per record,
with its position) and each item into an :class:`~cdp.model.IncomingRecord`
with *raw* identity values; the runner normalises, validates and stores them.
Anything wrong with one record is a :class:`~cdp._exceptions.RecordRejected`
naming the field: the runner quarantines it and carries on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cdp._exceptions import ConfigurationError
from cdp.model import IncomingRecord

CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "path": (str,),
}


@dataclass(frozen=True)
class ConfigField:
    name: str
    type: str = "string"
    required: bool = False
    secret: bool = False
    default: Any = None
    description: str = ""


def check_config(
    schema: Sequence[ConfigField],
    config: Mapping[str, Any],
    *,
    where: Callable[[str], str],
    ignore: Collection[str] = (),
) -> dict[str, Any]:
    """``config`` checked against ``schema`` (unknown keys but ``ignore``, missing required keys,
    wrong types) with defaults filled in; an error starts with ``where(key)`` and never shows a
    secret's value. Shared by connectors and destinations (``cdp.activation``)."""
    known = {f.name: f for f in schema}
    for key in config:
        if key not in known and key not in ignore:
            raise ConfigurationError(f"{where(key)}unknown config key {key!r} (expected one of {sorted(known)})")
    out: dict[str, Any] = {}
    for spec in schema:
        if spec.name not in config or config[spec.name] is None:
            if spec.required:
                raise ConfigurationError(f"{where(spec.name)}missing required config key {spec.name!r}")
            out[spec.name] = spec.default
            continue
        value = config[spec.name]
        types = CONFIG_TYPES.get(spec.type, (object,))
        if not isinstance(value, types) or (spec.type in ("integer", "number") and isinstance(value, bool)):
            shown = "***" if spec.secret else repr(value)
            raise ConfigurationError(f"{where(spec.name)}config key {spec.name!r} must be {spec.type}, got {shown}")
        out[spec.name] = value
    return out


@dataclass(frozen=True)
class FieldSpec:
    """One field a stream produces, with its personal-data class."""

    name: str
    type: str
    classification: str  # a class from policies/fields.yaml
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class StreamSpec:
    name: str
    primary_key: tuple[str, ...]
    cursor_field: str | None
    fields: tuple[FieldSpec, ...]

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class SourceItem:
    """One raw record as read, before validation."""

    stream: str
    position: str  # "file.csv:12" or a message id: where to find it again
    raw: str  # the record as read (kept, encrypted, if the record is quarantined)
    data: Any = None  # parsed form, if parsing succeeded
    error: str | None = None  # why it could not even be parsed
    error_field: str | None = None


@dataclass
class ReadResult:
    """What ``read`` leaves behind once its iterator is exhausted."""

    state: dict[str, Any] = field(default_factory=dict)
    skipped_unchanged: int = 0


class Connector(ABC):
    """Base class of every connector, built-in or third-party."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    config_schema: ClassVar[tuple[ConfigField, ...]] = ()
    streams: ClassVar[tuple[StreamSpec, ...]] = ()

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = self.validate_config(config)

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """Check config against the schema; errors name the connector and the key."""
        return check_config(cls.config_schema, config, where=lambda _key: f"connector {cls.name}: ")

    @property
    def source_name(self) -> str:
        """The source this connector's records are stored under (config ``source``, else its name)."""
        return str(self.config.get("source") or self.name)

    def redacted_config(self) -> dict[str, Any]:
        secret = {f.name for f in self.config_schema if f.secret}
        return {k: ("***" if k in secret and v is not None else v) for k, v in self.config.items()}

    def stream(self, name: str) -> StreamSpec:
        for spec in self.streams:
            if spec.name == name:
                return spec
        raise ConfigurationError(f"connector {self.name}: unknown stream {name!r}")

    @abstractmethod
    def read(self, state: Mapping[str, Any], result: ReadResult) -> Iterator[SourceItem]:
        """Yield items newer than ``state``; fill ``result.state`` as items are consumed."""

    @abstractmethod
    def to_record(self, item: SourceItem) -> list[IncomingRecord]:
        """Validate one item and build the record(s) it carries; raise RecordRejected on bad input."""
