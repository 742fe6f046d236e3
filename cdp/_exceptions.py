"""The one error tree of cdp.

Every error cdp raises on purpose is a ``CDPError``. The subclasses are grouped
by what the *caller* should do about them (fix the input, ask for access, retry
later, call an operator), in the spirit of httpx's ``_exceptions.py``:

    CDPError
    ├── ConfigurationError      an operator must fix settings or a policy file
    ├── InputError              the caller must fix what it sent
    │   ├── RecordRejected      one record failed validation (record + field named)
    │   ├── UnknownSourceError  a source, connector or file that does not exist
    │   └── DefinitionError     a segment, tag or mapping definition is invalid
    ├── AccessDenied            the policy said no (always audited)
    │   └── PurposeRequired     no purpose (or no role/actor) was declared
    ├── NotFound                the thing asked for does not exist
    ├── Conflict                the request is ambiguous or clashes with state
    ├── CryptoError
    │   ├── KeyUnavailable      a key (or the key service) cannot be reached: fail closed
    │   └── DecryptionFailed    a ciphertext does not belong where it was found, or was shredded
    ├── StorageError            the system of record cannot be reached or migrated
    ├── ResourceExhausted       analytics need more memory than they may use (never spilled to disk)
    └── IntegrityViolation      tamper evidence: the audit chain does not verify

Exceptions are mapped to exit codes (CLI) and HTTP statuses (API) in one
place each: ``cdp.cli._errors`` and ``cdp.api.errors``, both driven by
``exit_code`` and ``http_status`` below.
"""

from __future__ import annotations


class CDPError(Exception):
    """Base class of every error cdp raises on purpose."""

    exit_code: int = 1
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigurationError(CDPError):
    """Settings, a policy file or a plugin are wrong; an operator must fix them."""

    exit_code = 78  # EX_CONFIG


class InputError(CDPError):
    """What the caller sent is wrong; sending it again unchanged will fail again."""

    exit_code = 65  # EX_DATAERR
    http_status = 400


class RecordRejected(InputError):
    """A single record failed validation. Names the record and the field."""

    def __init__(self, reason: str, *, record: str = "", field: str = "") -> None:
        where = ", ".join(p for p in (f"record {record}" if record else "", f"field {field!r}" if field else "") if p)
        super().__init__(f"{where}: {reason}" if where else reason)
        self.record = record
        self.field = field
        self.reason = reason


class UnknownSourceError(InputError):
    """A source, connector, file or destination that does not exist."""

    exit_code = 66  # EX_NOINPUT
    http_status = 404


class DefinitionError(InputError):
    """A declarative definition (segment, tag rule, mapping) is invalid."""

    def __init__(self, reason: str, *, file: str = "", path: str = "") -> None:
        where = ":".join(p for p in (file, path) if p)
        super().__init__(f"{where}: {reason}" if where else reason)
        self.file = file
        self.path = path
        self.reason = reason


class AccessDenied(CDPError):
    """The policy engine denied the access. The denial itself is audited."""

    exit_code = 77  # EX_NOPERM
    http_status = 403

    def __init__(self, message: str, *, rule: str = "") -> None:
        super().__init__(message)
        self.rule = rule


class PurposeRequired(AccessDenied):
    """An access without actor, role or purpose: cdp fails closed."""


class NotFound(CDPError):
    """The profile, request, segment or record does not exist."""

    exit_code = 66
    http_status = 404


class Conflict(CDPError):
    """The request is ambiguous (an identifier matching two profiles) or clashes with state."""

    exit_code = 65
    http_status = 409


class CryptoError(CDPError):
    """Base class of encryption and key errors."""


class KeyUnavailable(CryptoError):
    """A key or the key service cannot be reached. Reads and writes fail closed."""

    exit_code = 75  # EX_TEMPFAIL
    http_status = 503


class DecryptionFailed(CryptoError):
    """The ciphertext failed authentication: moved, tampered with, or its key shredded."""


class StorageError(CDPError):
    """The system of record cannot be reached, opened or migrated."""

    exit_code = 74  # EX_IOERR
    http_status = 503


class ResourceExhausted(CDPError):
    """Analytics (DuckDB) ran out of memory. cdp never lets them spill personal data to a temporary
    file, so an operator must give the process more memory or move the work to a bigger backend."""

    exit_code = 75  # EX_TEMPFAIL
    http_status = 503


class IntegrityViolation(CDPError):
    """Tamper evidence: the audit chain or a signed checkpoint does not verify."""

    exit_code = 1
    http_status = 500
