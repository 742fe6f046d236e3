"""Key-encryption keys (KEKs) and system secrets, kept outside the database.

Why this module exists: the database only ever holds *wrapped* data keys
(see :mod:`cdp.crypto.envelope`). Whatever can unwrap them is the root of
trust, and it must live somewhere else. :class:`Keyring` is that
"somewhere else" as a protocol, so an external KMS (Vault transit, a cloud
KMS) can plug in through the ``cdp_keyring`` hook; :class:`FileKeyring` is the
embedded default, keeping KEKs as files in a keys directory::

    keys/                      mode 0700
      CURRENT                  id of the KEK new keys are wrapped under
      kek-<id>.key             32 random bytes, base64, mode 0600
      blind-index.key          system secrets (load_or_create_secret), 0600
      audit-signing.key

Everything fails closed: a KEK that cannot be found raises
:class:`~cdp._exceptions.KeyUnavailable` (never "create a new one and carry
on"), a blob that does not authenticate raises
:class:`~cdp._exceptions.DecryptionFailed`, and key files readable by group
or others make the keyring refuse to start with
:class:`~cdp._exceptions.ConfigurationError`. Key material is never logged.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cdp._exceptions import ConfigurationError, Conflict, DecryptionFailed, KeyUnavailable, NotFound
from cdp._logging import get_logger
from cdp.crypto.envelope import encode_aad

__all__ = ["FileKeyring", "Keyring", "WrappedKey", "ensure_keyring", "load_or_create_secret"]

_log = get_logger(__name__)

KEK_SIZE = 32
_WRAP_VERSION = b"\x01"
_NONCE_SIZE = 12
_TAG_SIZE = 16
_WRAP_CONTEXT = b"cdp-kek-wrap-v1"
_WRAP_VERSION_BYTE = _WRAP_VERSION[0]
_WRAP_HEADER = 1 + _NONCE_SIZE
_WRAPPED_MIN = _WRAP_HEADER + _TAG_SIZE
_KEK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_SECRET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_CURRENT = "CURRENT"
_Stamp = tuple[int, int, int]


@dataclass(frozen=True)
class WrappedKey:
    """A data key encrypted under one KEK.

    ``blob`` is ``version (1 byte) || nonce (12) || AES-256-GCM ciphertext+tag``
    for :class:`FileKeyring`; other keyrings may use their own format. Store
    ``kek_id`` and ``blob`` as they are (two columns, or :meth:`to_bytes`).
    """

    kek_id: str
    blob: bytes

    def __repr__(self) -> str:
        return f"WrappedKey(kek_id={self.kek_id!r}, blob=<{len(self.blob)} bytes>)"

    def to_bytes(self) -> bytes:
        """One self-describing byte string (for a single ``BLOB`` column)."""
        return encode_aad(self.kek_id, self.blob)

    @classmethod
    def from_bytes(cls, raw: bytes) -> WrappedKey:
        """Inverse of :meth:`to_bytes`; raises DecryptionFailed on malformed input."""
        id_len = int.from_bytes(raw[:4], "big")
        blob_start = 8 + id_len
        if len(raw) < blob_start or int.from_bytes(raw[4 + id_len : blob_start], "big") != len(raw) - blob_start:
            raise DecryptionFailed("malformed wrapped key: truncated or padded")
        try:
            kek_id = raw[4 : 4 + id_len].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecryptionFailed("malformed wrapped key: the key id is not text") from exc
        blob = raw[blob_start:]
        return cls(kek_id=kek_id, blob=blob)


@runtime_checkable
class Keyring(Protocol):
    """Holds KEKs and wraps/unwraps data keys with them. Implementations must be thread-safe."""

    def current_kek_id(self) -> str:
        """Id of the KEK that :meth:`wrap` uses (creating the first one if the keyring allows)."""
        ...

    def wrap(self, data_key: bytes, *, aad: bytes) -> WrappedKey:
        """Encrypt ``data_key`` under the current KEK, binding ``aad``."""
        ...

    def unwrap(self, wrapped: WrappedKey, *, aad: bytes) -> bytes:
        """Decrypt a wrapped key. KeyUnavailable if its KEK is gone, DecryptionFailed if tampered."""
        ...

    def rotate(self) -> str:
        """Make a new current KEK, keeping old ones for unwrap; return the new id."""
        ...

    def kek_ids(self) -> list[str]:
        """Ids of every KEK this keyring can still unwrap with, oldest first where known."""
        ...

    def retire(self, kek_id: str) -> None:
        """Destroy an old KEK once nothing is wrapped under it. Refuses the current KEK."""
        ...


def ensure_keyring(candidate: Any, *, source: str = "cdp_keyring hook") -> Keyring:
    """Check that a plugin's return value is a :class:`Keyring`; ConfigurationError otherwise."""
    if candidate is None or not isinstance(candidate, Keyring):
        raise ConfigurationError(f"{source} returned {type(candidate).__name__}, which is not a Keyring")
    return candidate


# --------------------------------------------------------------------------- files


def _check_private_file(path: Path) -> None:
    """Refuse a key file that group or others can read or write (fail closed)."""
    if os.name == "nt":  # POSIX modes do not apply; rely on the ACLs of the keys directory
        return
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigurationError(
            f"key file {path} has mode {mode:03o}: group or others can access it; "
            f"cdp refuses to use it. Run: chmod 600 {path}"
        )


def _check_dir(keys_dir: Path) -> None:
    if not keys_dir.is_dir():
        raise ConfigurationError(f"keys directory {keys_dir} exists but is not a directory")
    if os.name == "nt":
        return
    mode = keys_dir.stat().st_mode & 0o777
    if mode & 0o022:
        raise ConfigurationError(
            f"keys directory {keys_dir} has mode {mode:03o}: group or others can replace keys in it. "
            f"Run: chmod 700 {keys_dir}"
        )


def _ensure_dir(keys_dir: Path) -> None:
    if not keys_dir.exists():
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(keys_dir, 0o700)
        _log.info("keys directory created", keys_dir=str(keys_dir))
    _check_dir(keys_dir)


def _fsync_dir(directory: Path) -> None:
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if hasattr(os, "fchmod"):  # the umask may only have removed bits, but be explicit
            os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_exclusive(path: Path, data: bytes) -> bool:
    """Atomically create ``path`` (mode 0600) holding ``data``; False if it already exists.

    The content is written to a temporary file first and hard-linked into
    place, so a concurrent reader never sees a half-written key.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    _write_private(tmp, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError:  # filesystem without hard links: fall back to O_EXCL
        try:
            _write_private(path, data)
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return True


def _replace_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    _write_private(tmp, data)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _encode_key(raw: bytes) -> bytes:
    return base64.b64encode(raw) + b"\n"


def _read_key_file(path: Path, size: int) -> bytes:
    """Read a key file holding ``size`` bytes, raw or base64 (surrounding whitespace ignored)."""
    _check_private_file(path)
    data = path.read_bytes()
    if len(data) == size:
        return data
    try:
        raw = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise ConfigurationError(f"key file {path} does not hold {size} bytes (raw or base64); it is corrupt")
    return raw


def load_or_create_secret(keys_dir: Path, name: str, size: int = 32, *, create: bool = True) -> bytes:
    """Return the system secret ``keys_dir/<name>.key``, creating it (mode 0600) on first use.

    For secrets that are not per person: the blind-index key, the audit
    signing key. With ``create=False`` a missing secret raises
    :class:`~cdp._exceptions.KeyUnavailable` instead: use it once data exists,
    because a silently regenerated blind-index key would stop every lookup
    from matching. A file of the wrong size raises ConfigurationError.
    """
    if not _SECRET_NAME.fullmatch(name) or name.startswith("kek-"):
        raise ConfigurationError(f"invalid secret name {name!r}: use [a-z0-9_-], not starting with 'kek-'")
    if not 16 <= size <= 1024:
        raise ConfigurationError(f"secret size must be between 16 and 1024 bytes, got {size}")
    keys_dir = Path(keys_dir)
    path = keys_dir / f"{name}.key"
    if keys_dir.exists():
        _check_dir(keys_dir)
    if path.exists():
        return _read_key_file(path, size)
    if not create:
        raise KeyUnavailable(f"secret {name!r} is missing from {keys_dir}; restore it from the key backup")
    _ensure_dir(keys_dir)
    secret = os.urandom(size)
    if not _create_exclusive(path, _encode_key(secret)):  # another process won the race
        return _read_key_file(path, size)
    _log.info("secret created", secret_name=name, keys_dir=str(keys_dir))
    return secret


# --------------------------------------------------------------------------- FileKeyring


def _new_kek_id() -> str:
    """Sortable, human-readable and unique: creation time (UTC) plus 32 random bits."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)


class FileKeyring:
    """The embedded default keyring: KEK files in a keys directory outside the database.

    Nothing is created until a key is needed (:meth:`current_kek_id`,
    :meth:`wrap`, :meth:`rotate`); unwrapping never creates anything. With
    ``create=False`` a missing first KEK raises KeyUnavailable instead of
    being generated: pass it when the database already holds wrapped keys.

    The constructor refuses (ConfigurationError) a keys directory writable by
    group/others and any ``*.key`` file accessible to group/others.

    KEKs wrap with AES-256-GCM and random 96-bit nonces; each KEK wraps one
    32-byte key per person, far below the 2^32 messages per key that NIST
    SP 800-38D allows for random nonces. A rotation made by another process
    is seen on the next :meth:`wrap` (``CURRENT`` is re-read when its inode or
    mtime changes). Loaded KEKs are cached in memory: a KEK retired by another
    process keeps working in this one until it restarts.
    """

    def __init__(self, keys_dir: Path, *, create: bool = True) -> None:
        self._dir = Path(keys_dir)
        self._create = create
        self._lock = threading.RLock()
        self._keks: dict[str, AESGCM] = {}
        self._aad_heads: dict[str, bytes] = {}  # kek id -> encode_aad(_WRAP_CONTEXT, kek id)
        self._current: tuple[str, _Stamp] | None = None  # (kek id, stamp of CURRENT when read)
        self._current_file = str(self._dir / _CURRENT)  # stat()ed on every wrap: no Path made each time
        if self._dir.exists():
            _check_dir(self._dir)
            for path in sorted(self._dir.glob("*.key")):
                try:
                    _check_private_file(path)
                except FileNotFoundError:  # removed meanwhile (a process that lost the first-run race)
                    continue

    def __repr__(self) -> str:
        return f"FileKeyring({str(self._dir)!r})"

    @property
    def keys_dir(self) -> Path:
        return self._dir

    def _kek_path(self, kek_id: str) -> Path:
        return self._dir / f"kek-{kek_id}.key"

    def _kek(self, kek_id: str) -> AESGCM:
        cipher = self._keks.get(kek_id)
        if cipher is not None:
            return cipher
        if not _KEK_ID.fullmatch(kek_id):
            raise KeyUnavailable(f"key-encryption key id {kek_id!r} is not valid; no such key")
        path = self._kek_path(kek_id)
        with self._lock:
            if not path.is_file():
                raise KeyUnavailable(
                    f"key-encryption key {kek_id!r} is not in {self._dir} (retired, or the keys directory "
                    "was lost); restore it from the key backup"
                )
            cipher = AESGCM(_read_key_file(path, KEK_SIZE))
            self._keks[kek_id] = cipher
            return cipher

    def _read_current(self) -> str | None:
        path = self._dir / _CURRENT
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyUnavailable(f"cannot read {path}: {type(exc).__name__}") from exc
        if not _KEK_ID.fullmatch(text):
            raise ConfigurationError(f"{path} does not name a key-encryption key; it is corrupt")
        return text

    def _new_kek(self) -> str:
        _ensure_dir(self._dir)
        while True:
            kek_id = _new_kek_id()
            if _create_exclusive(self._kek_path(kek_id), _encode_key(os.urandom(KEK_SIZE))):
                return kek_id

    def _current_stamp(self) -> _Stamp | None:
        try:
            st = os.stat(self._current_file)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def current_kek_id(self) -> str:
        cached = self._current
        stamp = self._current_stamp()
        if cached is not None and stamp == cached[1]:
            return cached[0]
        with self._lock:
            stamp = self._current_stamp()
            if stamp is None:
                # No CURRENT: first use (possibly racing another process, whose KEK file may already
                # exist), or an operator deleted it. Starting a new KEK is safe in both cases: existing
                # KEKs are left alone and still unwrap what was wrapped under them.
                if not self._create:
                    raise KeyUnavailable(f"no key-encryption key in {self._dir} and creating one is disabled")
                self._create_first()
                stamp = self._current_stamp()
            current = self._read_current()
            if current is None or stamp is None:
                raise KeyUnavailable(f"{self._dir / _CURRENT} vanished while it was being read")
            self._kek(current)  # fail closed now if CURRENT names a missing key
            self._current = (current, stamp)
            return current

    def _create_first(self) -> str:
        kek_id = self._new_kek()
        if _create_exclusive(self._dir / _CURRENT, kek_id.encode("ascii") + b"\n"):
            _log.info("key-encryption key created", kek_id=kek_id, keys_dir=str(self._dir))
            return kek_id
        # Another process initialised the directory first: use its KEK, drop ours (never used).
        self._kek_path(kek_id).unlink(missing_ok=True)
        winner = self._read_current()
        if winner is None:
            raise KeyUnavailable(f"{self._dir / _CURRENT} vanished while the keyring was being created")
        return winner

    def wrap(self, data_key: bytes, *, aad: bytes) -> WrappedKey:
        # Written out in full (not wrap_many of one key): the reference the batch path is tested against.
        kek_id = self.current_kek_id()
        nonce = os.urandom(_NONCE_SIZE)
        sealed = self._kek(kek_id).encrypt(nonce, bytes(data_key), encode_aad(_WRAP_CONTEXT, kek_id, aad))
        return WrappedKey(kek_id=kek_id, blob=_WRAP_VERSION + nonce + sealed)

    def _wrap_head(self, kek_id: str) -> bytes:
        """The associated data of a key wrapped under ``kek_id``, but for the key's own part:
        ``encode_aad(_WRAP_CONTEXT, kek_id, aad) == head + lp(aad)``. Made once per KEK."""
        head = self._aad_heads.get(kek_id)
        if head is None:
            head = self._aad_heads[kek_id] = encode_aad(_WRAP_CONTEXT, kek_id)
        return head

    def wrap_many(self, data_keys: Sequence[bytes], aads: Sequence[bytes]) -> list[WrappedKey]:
        """:meth:`wrap` of each ``data_keys[i]`` bound to ``aads[i]``, all under one KEK.

        For ingestion, which makes one key per new person, thousands per batch: ``CURRENT`` is
        checked once per call (not once per key), the associated-data head is made once, and
        the nonces (independent, 96 random bits each) come from one read of the OS CSPRNG. The
        blobs are exactly what :meth:`wrap` makes (``tests/test_keys_batch.py`` checks both).
        """
        if len(data_keys) != len(aads):
            raise ValueError("wrap_many needs one associated-data value per key")
        kek_id = self.current_kek_id()
        seal, head = self._kek(kek_id).encrypt, self._wrap_head(kek_id)
        nonces = os.urandom(_NONCE_SIZE * len(data_keys))
        out: list[WrappedKey] = []
        for i, (data_key, aad) in enumerate(zip(data_keys, aads, strict=True)):
            nonce = nonces[i * _NONCE_SIZE : (i + 1) * _NONCE_SIZE]
            sealed = seal(nonce, bytes(data_key), head + len(aad).to_bytes(4, "big") + aad)
            out.append(WrappedKey(kek_id=kek_id, blob=_WRAP_VERSION + nonce + sealed))
        return out

    def unwrap(self, wrapped: WrappedKey, *, aad: bytes) -> bytes:
        return self.unwrap_blob(wrapped.kek_id, wrapped.blob, aad)

    def unwrap_blob(self, kek_id: str, blob: bytes, aad: bytes) -> bytes:
        """:meth:`unwrap` of ``WrappedKey(kek_id, blob)``, for a bulk read that unwraps one key per
        person from the key store's rows (no object per key; the KEK and the associated-data head
        are looked up per KEK id)."""
        cipher = self._keks.get(kek_id) or self._kek(kek_id)
        head = self._aad_heads.get(kek_id) or self._wrap_head(kek_id)
        if len(blob) < _WRAPPED_MIN or blob[0] != _WRAP_VERSION_BYTE:
            raise DecryptionFailed(f"wrapped key under KEK {kek_id!r} is malformed or of an unknown version")
        try:
            return cipher.decrypt(blob[1:_WRAP_HEADER], blob[_WRAP_HEADER:], head + len(aad).to_bytes(4, "big") + aad)
        except InvalidTag:
            raise DecryptionFailed(
                f"wrapped key under KEK {kek_id!r} does not authenticate: tampered with, or bound to another record"
            ) from None

    def blob_unwrapper(self, kek_id: str) -> Callable[[bytes, bytes], bytes]:
        """``unwrap(blob, lp_aad)``: :meth:`unwrap_blob` for many keys under one KEK, with the
        key's associated data already length-prefixed (``len(aad).to_bytes(4, "big") + aad``,
        the same bytes a field token's associated data ends with). For the bulk profile read.

        Raises DecryptionFailed for a malformed blob or one that does not authenticate.
        """
        decrypt, head = (self._keks.get(kek_id) or self._kek(kek_id)).decrypt, self._wrap_head(kek_id)

        def unwrap(blob: bytes, lp_aad: bytes) -> bytes:
            if len(blob) < _WRAPPED_MIN or blob[0] != _WRAP_VERSION_BYTE:
                raise DecryptionFailed(f"wrapped key under KEK {kek_id!r} is malformed or of an unknown version")
            try:
                return decrypt(blob[1:_WRAP_HEADER], blob[_WRAP_HEADER:], head + lp_aad)
            except InvalidTag:
                raise DecryptionFailed(
                    f"wrapped key under KEK {kek_id!r} does not authenticate: tampered with, or bound to another record"
                ) from None

        return unwrap

    def rotate(self) -> str:
        with self._lock:
            kek_id = self._new_kek()
            self._kek(kek_id)
            _replace_atomically(self._dir / _CURRENT, kek_id.encode("ascii") + b"\n")
            stamp = self._current_stamp()
            self._current = (kek_id, stamp) if stamp is not None else None
        _log.info("key-encryption key rotated", kek_id=kek_id, keys_dir=str(self._dir))
        return kek_id

    def kek_ids(self) -> list[str]:
        if not self._dir.is_dir():
            return []
        ids = (p.name[len("kek-") : -len(".key")] for p in self._dir.glob("kek-*.key"))
        return sorted(i for i in ids if _KEK_ID.fullmatch(i))

    def retire(self, kek_id: str) -> None:
        """Destroy KEK ``kek_id``. The caller must first re-wrap everything wrapped under it.

        The file is overwritten with zeros, flushed and unlinked. On SSDs and
        copy-on-write filesystems the overwrite is best effort; backups of the
        keys directory must be rotated too for the key to be really gone.
        """
        if not _KEK_ID.fullmatch(kek_id):
            raise NotFound(f"no key-encryption key {kek_id!r}")
        with self._lock:
            cached = self._current[0] if self._current is not None else None
            if kek_id in (cached, self._read_current()):
                raise Conflict(f"key-encryption key {kek_id!r} is the current one; rotate() before retiring it")
            path = self._kek_path(kek_id)
            if not path.is_file():
                raise NotFound(f"no key-encryption key {kek_id!r} in {self._dir}")
            with open(path, "r+b") as fh:
                fh.write(b"\0" * max(path.stat().st_size, 64))
                fh.flush()
                os.fsync(fh.fileno())
            path.unlink()
            _fsync_dir(self._dir)
            self._keks.pop(kek_id, None)
        _log.info("key-encryption key retired", kek_id=kek_id, keys_dir=str(self._dir))
