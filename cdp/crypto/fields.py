"""Field-level encryption of direct identifiers with a person's data key.

Why this module exists: an email address, phone number or name is stored
only as AES-256-GCM ciphertext, and each ciphertext must be usable in exactly
one place. :class:`FieldCipher` binds the record id, the field name and the
data key id as associated data, so a ciphertext copied to
another row, another field or another person fails to decrypt with
:class:`~cdp._exceptions.DecryptionFailed` instead of showing the wrong
person's data.

Token format (version 2, written since 2026-12)::

    0x02 || nonce (12 random bytes) || ciphertext || tag (16 bytes)

encrypted with AES-256-GCM directly under the person's data key, with AAD
``encode_aad(0x02, record_id, field, key_id)`` (length-prefixed, so it is
unambiguous). The AAD is what ties a token to its record, field and key:
a token moved anywhere else fails the tag check. Nonces are 96 random bits
from the OS CSPRNG under a key that only ever encrypts one person's values;
NIST SP 800-38D allows 2^32 messages per key with random nonces, and a person
has tens.

Version 1 tokens (``0x01 || nonce || ciphertext || tag``) encrypted each
field under its own HKDF-SHA256 subkey (``info = b"cdp-field:" + field``)
with AAD ``encode_aad(0x01, record_id, field, key_id)``. They still decrypt.
Version 2 dropped the subkeys because the AAD already separates fields and
the per-field key derivation was two thirds of the cost of reading a
profile (an HMAC and a fresh AES key schedule per person and field); the
nonce budget per key is nowhere near its limit either way.

Reads decrypt whole profile tables, so the hot path is lean: one ``AESGCM``
object per data key, the AAD tail per (data key, field) cached in the
instance, the length-prefixed field names cached for the process. A bulk
read of many people takes :class:`RowDecryptor` instead, which makes no
per-person object at all beyond the ``AESGCM`` one. HMAC uses
pre-keyed SHA-256 states (:class:`HmacSha256`, checked against :mod:`hmac`
and ``cryptography``'s HKDF in the tests), three times faster than re-keying
per call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from hashlib import sha256
from os import urandom as _urandom
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cdp._exceptions import CryptoError, DecryptionFailed
from cdp.crypto.envelope import DATA_KEY_SIZE, encode_aad

__all__ = [
    "NONCE_SIZE",
    "TAG_SIZE",
    "TOKEN_VERSION",
    "FieldCipher",
    "HmacSha256",
    "RecordEncryptor",
    "RowDecryptor",
    "hkdf_expand_32",
    "hkdf_extract",
    "hkdf_sha256",
    "row_values_reader",
    "token_nonce",
]

TOKEN_VERSION = 2
LEGACY_TOKEN_VERSION = 1
NONCE_SIZE = 12
TAG_SIZE = 16
_VERSION_BYTE = bytes([TOKEN_VERSION])
_HEADER = 1 + NONCE_SIZE
_FIELD_INFO = b"cdp-field:"
_AAD_HEAD = encode_aad(_VERSION_BYTE)
_AAD_HEAD_V1 = encode_aad(bytes([LEGACY_TOKEN_VERSION]))
_FIELD_AAD: dict[str, bytes] = {}
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))
_BLOCK = 64


class HmacSha256:
    """HMAC-SHA256 (RFC 2104) under one key, with the keyed inner and outer hash states computed once.

    ``hmac.digest`` re-keys OpenSSL on every call (about 1.5 µs); copying two
    pre-keyed SHA-256 states costs a third of that, which matters when every
    person has their own key. The output is plain HMAC-SHA256 (the tests
    compare it with :mod:`hmac` and with ``cryptography``'s HKDF).
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = sha256(key.translate(_IPAD))
        self._outer = sha256(key.translate(_OPAD))

    def __repr__(self) -> str:
        return "HmacSha256(<key hidden>)"

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


_EXTRACT = HmacSha256(bytes(32))  # HKDF-Extract with no salt uses HashLen zero bytes (RFC 5869 §2.2)


def hkdf_extract(key_material: bytes) -> bytes:
    """HKDF-Extract (RFC 5869) with SHA-256 and no salt."""
    return _EXTRACT.digest(key_material)


def hkdf_expand_32(prk: HmacSha256, info: bytes) -> bytes:
    """HKDF-Expand (RFC 5869) with SHA-256 for a 32-byte output: a single HMAC block, ``T(1)``."""
    return prk.digest(info + b"\x01")


def hkdf_sha256(key_material: bytes, info: bytes) -> bytes:
    """HKDF-SHA256(salt=None, info) to 32 bytes, identical to ``cryptography``'s ``HKDF``."""
    return hkdf_expand_32(HmacSha256(hkdf_extract(key_material)), info)


def token_nonce(token: bytes) -> bytes:
    """The 12-byte nonce of a field token (for audits and tests)."""
    return token[1:_HEADER]


def _field_aad(field: str) -> bytes:
    """``lp(field)`` (the length-prefixed field name), cached: there are a handful of fields."""
    cached = _FIELD_AAD.get(field)
    if cached is None:
        cached = encode_aad(field)
        if len(_FIELD_AAD) < 1024:
            _FIELD_AAD[field] = cached
    return cached


class FieldCipher:
    """Encrypts and decrypts one person's field values with that person's data key.

    ``key_id`` names the data key (for example the id of the wrapped-key row);
    it is bound into every ciphertext, so re-keying a person makes old tokens
    fail loudly rather than decrypt under the wrong key. Instances hold key
    material: keep them short-lived (one per person per operation) and never
    log them; ``repr`` shows only the key id.
    """

    __slots__ = ("_aead", "_data_key", "_key_id", "_key_id_aad", "_tails", "_v1_fields")

    def __init__(self, data_key: bytes, key_id: str) -> None:
        if len(data_key) != DATA_KEY_SIZE:
            raise CryptoError(f"a data key is {DATA_KEY_SIZE} bytes, got {len(data_key)}")
        self._data_key = bytes(data_key)
        self._aead = AESGCM(self._data_key)
        self._key_id = key_id
        raw_key_id = key_id.encode("utf-8", "surrogatepass")
        self._key_id_aad = len(raw_key_id).to_bytes(4, "big") + raw_key_id  # encode_aad(key_id), inlined
        self._tails: dict[str, bytes] = {}
        self._v1_fields: dict[str, AESGCM] | None = None

    def __repr__(self) -> str:
        return f"FieldCipher(key_id={self._key_id!r})"

    @property
    def key_id(self) -> str:
        return self._key_id

    def _tail(self, field: str) -> bytes:
        """The AAD tail ``lp(field) || lp(key_id)``, cached per field."""
        tail = self._tails.get(field)
        if tail is None:
            tail = self._tails[field] = _field_aad(field) + self._key_id_aad
        return tail

    def _v1_cipher(self, field: str) -> AESGCM:
        """The AESGCM object of a version-1 token's per-field HKDF subkey (legacy reads only)."""
        if self._v1_fields is None:
            self._v1_fields = {}
        cipher = self._v1_fields.get(field)
        if cipher is None:
            prk = HmacSha256(hkdf_extract(self._data_key))
            subkey = hkdf_expand_32(prk, _FIELD_INFO + field.encode("utf-8", "surrogatepass"))
            cipher = self._v1_fields[field] = AESGCM(subkey)
        return cipher

    @staticmethod
    def _aad(head: bytes, record_id: str, tail: bytes) -> bytes:
        """``encode_aad(version, record_id, field, key_id)``, inlined for the hot path."""
        rid = record_id.encode("utf-8", "surrogatepass")
        return head + len(rid).to_bytes(4, "big") + rid + tail

    def encrypt(self, plaintext: str, *, record_id: str, field: str) -> bytes:
        """Return the token for ``plaintext`` stored in ``field`` of record ``record_id``."""
        nonce = _urandom(NONCE_SIZE)
        aad = self._aad(_AAD_HEAD, record_id, self._tail(field))
        return _VERSION_BYTE + nonce + self._aead.encrypt(nonce, plaintext.encode("utf-8", "surrogatepass"), aad)

    def encrypt_record(
        self, record_id: str, fields: Sequence[str], values: Sequence[str | bytes | None]
    ) -> list[bytes | None]:
        """The tokens of several fields of one record: ``values[i]`` stored in ``fields[i]``.

        Exactly the tokens :meth:`encrypt` makes (text is UTF-8 encoded, bytes are taken as UTF-8
        text already); an empty or absent value gives None. One call per record instead of one
        per field, because ingestion encrypts every record's payload and identifiers: the
        record-id part of the associated data is encoded once, and the nonces (independent,
        96 random bits each) come from one read of the OS CSPRNG.
        """
        rid = record_id.encode("utf-8", "surrogatepass")
        head = _AAD_HEAD + len(rid).to_bytes(4, "big") + rid
        tail = self._key_id_aad
        seal = self._aead.encrypt
        nonces = _urandom(NONCE_SIZE * len(fields))
        out: list[bytes | None] = []
        start = 0
        for field, value in zip(fields, values, strict=True):
            if not value:
                out.append(None)
                continue
            nonce = nonces[start : start + NONCE_SIZE]
            start += NONCE_SIZE
            data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
            aad = head + (_FIELD_AAD.get(field) or _field_aad(field)) + tail
            out.append(_VERSION_BYTE + nonce + seal(nonce, data, aad))
        return out

    def decrypt(self, token: bytes, *, record_id: str, field: str) -> str:
        """Return the plaintext of ``token``, which must belong to exactly this record and field.

        Raises DecryptionFailed (naming the field and record, never the value)
        if the token was moved, tampered with, truncated, or its key shredded.
        """
        version = token[0] if token else None
        if len(token) < _HEADER + TAG_SIZE or version not in (TOKEN_VERSION, LEGACY_TOKEN_VERSION):
            raise DecryptionFailed(
                f"cannot decrypt field {field!r} of record {record_id!r}: malformed token or unknown version"
            )
        try:
            if version == TOKEN_VERSION:
                rid = record_id.encode("utf-8", "surrogatepass")
                field_aad = _FIELD_AAD.get(field) or _field_aad(field)
                aad = _AAD_HEAD + len(rid).to_bytes(4, "big") + rid + field_aad + self._key_id_aad
                raw = self._aead.decrypt(token[1:_HEADER], token[_HEADER:], aad)
            else:
                aad = self._aad(_AAD_HEAD_V1, record_id, self._tail(field))
                raw = self._v1_cipher(field).decrypt(token[1:_HEADER], token[_HEADER:], aad)
        except InvalidTag:
            raise DecryptionFailed(
                f"cannot decrypt field {field!r} of record {record_id!r}: the ciphertext was moved from another "
                "record, field or key, was tampered with, or its key was shredded"
            ) from None
        return raw.decode("utf-8", "surrogatepass")

    def decrypt_fields(self, record_id: str, row: Sequence[Any], fields: Sequence[tuple[str, int]]) -> list[str | None]:
        """Decrypt several fields of one record: ``fields`` is (field name, position of its token in ``row``).

        The same checks as :meth:`decrypt`, one call per record instead of one per field (a bulk
        read decrypts a few fields of each of many people); the record-id part of the
        associated data is encoded once. An absent (or empty) token reads as ``None``.
        """
        rid = record_id.encode("utf-8", "surrogatepass")
        head = _AAD_HEAD + len(rid).to_bytes(4, "big") + rid
        tail = self._key_id_aad
        aead = self._aead
        out: list[str | None] = []
        for field, position in fields:
            token = row[position]
            if not token:
                out.append(None)
                continue
            if token[0] != TOKEN_VERSION or len(token) < _HEADER + TAG_SIZE:
                out.append(self.decrypt(token, record_id=record_id, field=field))  # legacy or malformed
                continue
            try:
                raw = aead.decrypt(
                    token[1:_HEADER], token[_HEADER:], head + (_FIELD_AAD.get(field) or _field_aad(field)) + tail
                )
            except InvalidTag:
                raise DecryptionFailed(
                    f"cannot decrypt field {field!r} of record {record_id!r}: the ciphertext was moved from "
                    "another record, field or key, was tampered with, or its key was shredded"
                ) from None
            out.append(raw.decode("utf-8", "surrogatepass"))
        return out


class RecordEncryptor:
    """Encrypts the same fields of many records, each under its own person's :class:`FieldCipher`.

    Why it exists: ingestion encrypts a payload and up to a dozen identifiers for every record
    of a transaction (tens of thousands), each record under its person's key. Calling
    :meth:`FieldCipher.encrypt_record` per record repeats per-call work (a CSPRNG read, the
    field names' associated-data parts, argument checks); here the length-prefixed field names
    are made once, and nonces come from one CSPRNG read per call (independent 96-bit slices of
    it, refilled if a call needs more). The tokens are exactly those of
    :meth:`FieldCipher.encrypt`: ``0x02 || nonce || AES-256-GCM(data key, value, AAD)`` with
    ``AAD = encode_aad(0x02, record_id, field, key_id)``; the tests decrypt them with it.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Sequence[str]) -> None:
        self._fields = tuple(_field_aad(field) for field in fields)

    def encrypt_many(
        self, items: Sequence[tuple[FieldCipher, str, Sequence[str | bytes | None]]]
    ) -> list[list[bytes | None]]:
        """The tokens of each ``(cipher, record_id, values)``: ``values[i]`` stored in ``fields[i]``.

        ``values`` may be shorter than the fields (the rest count as absent); an empty or absent
        value gives None, text is UTF-8 encoded and bytes are taken as UTF-8 text already.
        """
        fields = self._fields
        width = len(fields)
        pool_size = NONCE_SIZE * max(1, min(width * len(items), 1 << 16))
        pool = _urandom(pool_size)
        start = 0
        out: list[list[bytes | None]] = []
        for cipher, record_id, values in items:
            if len(values) > width:
                raise CryptoError(f"{len(values)} values for {width} fields")
            rid = record_id.encode("utf-8", "surrogatepass")
            head = _AAD_HEAD + len(rid).to_bytes(4, "big") + rid
            tail = cipher._key_id_aad
            seal = cipher._aead.encrypt
            tokens: list[bytes | None] = [None] * width
            for position, value in enumerate(values):
                if not value:
                    continue
                if start + NONCE_SIZE > pool_size:
                    pool, start = _urandom(pool_size), 0
                nonce = pool[start : start + NONCE_SIZE]
                start += NONCE_SIZE
                data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
                tokens[position] = _VERSION_BYTE + nonce + seal(nonce, data, head + fields[position] + tail)
            out.append(tokens)
        return out


class RowDecryptor:
    """Decrypts the same encrypted fields of many records, each under its own person's data key.

    Why it exists: a bulk read (every profile of a table) decrypts a few fields of each of many
    people, one data key per person. Building a :class:`FieldCipher` per person (key checks, key
    id encoding, caches) costs about as much as the decryptions themselves; this class does the
    per-field work once per read (the fields, their positions in the row and their
    length-prefixed names) and, per record, only what the token format requires: one ``AESGCM``
    object for the person's key and the associated data ``encode_aad(0x02, record_id, field,
    key_id)`` of each token.

    It holds no key: each call gets the data key, uses it and drops it, so nothing outlives the
    read that unwrapped it. Tokens and errors are exactly those of :meth:`FieldCipher.decrypt`:
    a version-1 token, and any token the fast path cannot decrypt (moved, tampered with,
    truncated), is handed to it, so the error raised is the one it gives.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Sequence[tuple[str, int]]) -> None:
        """``fields``: (field name, position of its token in the rows that will be given)."""
        self._fields = tuple((name, position, _field_aad(name)) for name, position in fields)

    def decrypt_row(
        self, key_of: Callable[[str], bytes | None], key_id: str, record_id: str, row: Sequence[Any]
    ) -> dict[str, str]:
        """field name -> plaintext of each field of ``row`` with a non-empty value, for record
        ``record_id`` of the person whose data key is named ``key_id``.

        ``key_of(key_id)`` gives that data key; it is called once, and only if the row holds a
        token (a row with nothing to decrypt unwraps no key). ``None`` from it (a shredded key,
        an erased person) reads as no value. Raises DecryptionFailed (naming the field and
        record, never the value) for a token that was moved, tampered with or truncated, and
        CryptoError for a key that is not 32 bytes.
        """
        out: dict[str, str] = {}
        decrypt: Callable[[bytes, bytes, bytes], bytes] | None = None
        data_key = head = tail = b""
        for name, position, field_aad in self._fields:
            token = row[position]
            if not token:
                continue
            if decrypt is None:  # the first token: the person's key, and the record's parts of the AAD
                found = key_of(key_id)
                if found is None:
                    return out
                if len(found) != DATA_KEY_SIZE:
                    raise CryptoError(f"a data key is {DATA_KEY_SIZE} bytes, got {len(found)}")
                data_key, decrypt = found, AESGCM(found).decrypt
                rid = record_id.encode("utf-8", "surrogatepass")
                head = _AAD_HEAD + len(rid).to_bytes(4, "big") + rid
                kid = key_id.encode("utf-8", "surrogatepass")
                tail = len(kid).to_bytes(4, "big") + kid
            if token[0] == TOKEN_VERSION:
                try:
                    raw = decrypt(token[1:_HEADER], token[_HEADER:], head + field_aad + tail)
                    value = raw.decode()
                except UnicodeDecodeError:  # a lone surrogate, written with surrogatepass
                    value = raw.decode("utf-8", "surrogatepass")
                except (InvalidTag, ValueError):  # moved, tampered with or truncated: the strict path says which
                    value = FieldCipher(data_key, key_id).decrypt(token, record_id=record_id, field=name)
            else:  # version 1, or an unknown version: the strict path reads or refuses it
                value = FieldCipher(data_key, key_id).decrypt(token, record_id=record_id, field=name)
            if value:
                out[name] = value
        return out


# Length prefixes (4 bytes, big-endian) of parts shorter than _SHORT bytes, and the same after the
# version-2 AAD head: a bulk read takes them by index instead of calling ``int.to_bytes`` per part.
_SHORT = 256
_LENGTH_PREFIX = tuple(n.to_bytes(4, "big") for n in range(_SHORT))
_HEAD_OF_LENGTH = tuple(_AAD_HEAD + prefix for prefix in _LENGTH_PREFIX)


def row_values_reader(
    fields: Sequence[tuple[str, int]], unwrap: Callable[[bytes, bytes], bytes]
) -> Callable[[bytes | None, str, str, Sequence[Any]], list[str | None]]:
    """A function giving the plaintexts of ``fields`` (name, position in the row) of one row,
    ``None`` where a field is empty, under the data key wrapped in ``blob``.

    Why it exists: the bulk profile read decrypts a few fields of each of many people, most of
    them with a single record. :class:`RowDecryptor` behind a key-lookup function behind a key
    unwrapper costs a Python call per layer and a dict per row, about as much as the AES-GCM
    calls; this is the same work in one function: unwrap the person's key (``unwrap(blob,
    lp_key_id)``, see :meth:`FileKeyring.blob_unwrapper`), one ``AESGCM`` object, one decryption
    per token. The key is used for that row and dropped.

    It only takes the common case and raises on anything else (a version-1 token, a malformed
    or moved token, a key that is not 32 bytes, text that needs ``surrogatepass``, a record or
    key id of 256 bytes or more): the caller then reads that row with :class:`RowDecryptor`,
    whose values and errors are the reference. ``blob`` None (a shredded key, an erased
    person) reads as no value, as there.
    """
    plan = tuple((position, _field_aad(name)) for name, position in fields)
    width = len(plan)
    prefix_of, head_of, version, header = _LENGTH_PREFIX, _HEAD_OF_LENGTH, TOKEN_VERSION, _HEADER

    def read(blob: bytes | None, key_id: str, record_id: str, row: Sequence[Any]) -> list[str | None]:
        values: list[str | None] = []
        decrypt: Callable[[bytes, bytes, bytes], bytes] | None = None
        head = tail = b""
        for position, field_aad in plan:
            token = row[position]
            if not token:
                values.append(None)
                continue
            if decrypt is None:  # the first token: the person's key, and the row's parts of the AAD
                if blob is None:
                    return [None] * width
                kid = key_id.encode()
                tail = prefix_of[len(kid)] + kid  # IndexError past _SHORT bytes: the reference path reads it
                data_key = unwrap(blob, tail)
                if len(data_key) != DATA_KEY_SIZE:
                    raise CryptoError(f"a data key is {DATA_KEY_SIZE} bytes, got {len(data_key)}")
                decrypt = AESGCM(data_key).decrypt
                rid = record_id.encode()
                head = head_of[len(rid)] + rid
            if token[0] != version:
                raise DecryptionFailed("not a version 2 token: the reference path reads it")
            values.append(decrypt(token[1:header], token[header:], head + field_aad + tail).decode() or None)
        return values

    return read
