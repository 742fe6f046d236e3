"""Envelope encryption: one random data key per person, wrapped by a key-encryption key.

Why envelopes: direct identifiers of a person are encrypted with that person's
own data key, and only the *wrapped* data key (encrypted under a KEK held by a
:class:`~cdp.crypto.keyring.Keyring`) is stored next to the data. This gives
two properties the privacy core relies on:

- **crypto-shredding**: deleting a person's wrapped data key makes every
  ciphertext of that person unreadable, including copies in backups;
- **cheap key rotation**: rotating the KEK re-wraps 32-byte data keys
  (:func:`rewrap`) instead of re-encrypting every value, and the data key is
  only ever in memory, never on disk in plaintext.

This module also owns :func:`encode_aad`, the one unambiguous encoding of
associated data used by every AEAD call in :mod:`cdp.crypto`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cdp.crypto.keyring import Keyring, WrappedKey

DATA_KEY_SIZE = 32
"""Size in bytes of a data key (AES-256)."""


def new_data_key() -> bytes:
    """Return a fresh random 32-byte data key from the operating system CSPRNG."""
    return os.urandom(DATA_KEY_SIZE)


def new_data_keys(count: int) -> bytes:
    """``count`` fresh data keys as one read of the OS CSPRNG: key ``i`` is the ``i``-th 32-byte slice."""
    return os.urandom(DATA_KEY_SIZE * count)


def encode_aad(*parts: str | bytes) -> bytes:
    """Encode ``parts`` as associated data that cannot be confused with any other sequence.

    Each part is UTF-8 encoded (``str``) or taken as is (``bytes``) and
    prefixed with its length as 4 big-endian bytes, so ``("ab", "c")`` and
    ``("a", "bc")`` give different AAD. Plain concatenation with a separator
    would let a crafted record id shift bytes into the field name.
    """
    out = b""
    for part in parts:
        raw = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        out += len(raw).to_bytes(4, "big") + raw
    return out


def data_key_aad(person_id: str) -> bytes:
    """Associated data binding a wrapped data key to the person (row) it belongs to.

    Pass it as ``aad`` to :meth:`Keyring.wrap` and :meth:`Keyring.unwrap`, so
    a wrapped key copied onto another person's row fails with
    :class:`~cdp._exceptions.DecryptionFailed` instead of silently decrypting.
    """
    return encode_aad(b"cdp-data-key", person_id)


def rewrap(keyring: Keyring, wrapped: WrappedKey, *, aad: bytes) -> WrappedKey:
    """Re-wrap ``wrapped`` under the keyring's current KEK (key rotation).

    The data key is unwrapped into memory and wrapped again; it is never
    written anywhere. Returns ``wrapped`` unchanged when it already uses the
    current KEK, so rotation jobs can be re-run safely after an interruption.
    Raises :class:`~cdp._exceptions.KeyUnavailable` if the old KEK is gone and
    :class:`~cdp._exceptions.DecryptionFailed` if the blob was tampered with.
    """
    current = keyring.current_kek_id()
    if wrapped.kek_id == current:
        return wrapped
    data_key = keyring.unwrap(wrapped, aad=aad)
    return keyring.wrap(data_key, aad=aad)
