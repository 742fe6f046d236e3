"""One typed settings object for the whole process.

Settings come, in rising priority, from defaults, an optional ``cdp.toml``
(in the working directory, or the file named by ``CDP_CONFIG``) and ``CDP_*``
environment variables. Nothing else in cdp reads the environment.

The embedded default keeps everything in a data directory (``./.cdp/``):
``cdp.sqlite`` (the system of record), exports, audit checkpoints and ``keys/``.
Analytics (DuckDB) run in memory only, so no plaintext lands in a DuckDB file.
``CDP_DATABASE_URL=postgresql+psycopg://…`` moves the system of record to
PostgreSQL with no code change.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cdp._exceptions import ConfigurationError

_REPO_POLICIES = Path(__file__).resolve().parent.parent / "policies"
_BUNDLED_POLICIES = Path(__file__).resolve().parent / "_default_policies"


def _default_policies_dir() -> Path:
    return _REPO_POLICIES if _REPO_POLICIES.is_dir() else _BUNDLED_POLICIES


@dataclass(frozen=True)
class Settings:
    """Every knob of cdp. Paths are resolved against the working directory."""

    data_dir: Path = Path(".cdp")
    database_url: str = ""
    keys_dir: Path = Path()
    policies_dir: Path = field(default_factory=_default_policies_dir)
    environment: str = "development"  # "production" switches logs to JSON
    log_level: str = "WARNING"
    default_region: str = "US"
    match_threshold: float = 0.9
    match_on_arrival: bool = True  # records collected over HTTP join their profiles as they arrive
    batch_size: int = 2000
    audit_checkpoint_every: int = 1000
    survivorship: dict[str, str] = field(
        default_factory=lambda: {
            "email": "most_recent",
            "phone": "most_recent",
            "given_name": "most_frequent",
            "family_name": "most_frequent",
            "date_of_birth": "most_frequent",
            "city": "most_recent",
            "postcode": "most_recent",
            "country": "most_frequent",
            "state": "most_recent",
            "gender": "most_recent",
        }
    )
    trusted_sources: tuple[str, ...] = ("pos", "survey", "website")
    write_keys: tuple[str, ...] = ()
    api_keys: tuple[str, ...] = ()  # "actor:role:key" entries for the HTTP API
    gdpr_deadline_days: int = 30
    ccpa_deadline_days: int = 45  # accepted Segment write keys for the collection endpoint

    def __post_init__(self) -> None:
        data_dir = Path(self.data_dir)
        object.__setattr__(self, "data_dir", data_dir)
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{(data_dir / 'cdp.sqlite').as_posix()}")
        if self.keys_dir == Path():
            object.__setattr__(self, "keys_dir", data_dir / "keys")
        if not 0.0 < self.match_threshold < 1.0:
            raise ConfigurationError(f"match_threshold must be between 0 and 1, got {self.match_threshold}")
        if self.batch_size < 1:
            raise ConfigurationError(f"batch_size must be positive, got {self.batch_size}")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def model_path(self) -> Path:
        return self.data_dir / "identity_model.json"

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


_FIELD_TYPES: dict[str, type] = {
    "data_dir": Path,
    "keys_dir": Path,
    "policies_dir": Path,
    "match_threshold": float,
    "match_on_arrival": bool,
    "batch_size": int,
    "audit_checkpoint_every": int,
    "gdpr_deadline_days": int,
    "ccpa_deadline_days": int,
}


def _coerce(name: str, raw: Any, origin: str) -> Any:
    kind = _FIELD_TYPES.get(name, str)
    if name in ("survivorship",):
        if not isinstance(raw, dict):
            raise ConfigurationError(f"{origin}: {name} must be a table")
        return {str(k): str(v) for k, v in raw.items()}
    if name in ("trusted_sources", "write_keys", "api_keys"):
        if isinstance(raw, str):
            return tuple(s.strip() for s in raw.split(",") if s.strip())
        return tuple(str(s) for s in raw)
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        word = str(raw).strip().lower()
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("0", "false", "no", "off"):
            return False
        raise ConfigurationError(f"{origin}: {name} must be true or false, got {raw!r}")
    try:
        return kind(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{origin}: {name} must be a {kind.__name__}, got {raw!r}") from exc


def load_settings(env: dict[str, str] | None = None, config_file: Path | None = None) -> Settings:
    """Build the settings from ``cdp.toml`` and ``CDP_*`` variables (the latter win)."""
    environ = dict(os.environ if env is None else env)
    known = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    path = config_file or Path(environ.get("CDP_CONFIG", "cdp.toml"))
    if path.is_file():
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"{path}: not valid TOML: {exc}") from exc
        section = document.get("cdp", document)
        for key, raw in section.items():
            if key not in known:
                raise ConfigurationError(f"{path}: unknown setting {key!r}")
            values[key] = _coerce(key, raw, str(path))
    for var, raw in environ.items():
        if not var.startswith("CDP_") or var == "CDP_CONFIG":
            continue
        key = var[4:].lower()
        if key in known:
            values[key] = _coerce(key, raw, var)
    return Settings(**values)
