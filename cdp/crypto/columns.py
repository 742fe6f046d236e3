"""Decrypting one field of many records at once: the bulk profile read's column path.

Why this module exists: a read of every profile decrypts a few fields of each of ~100,000
people, most with a single record. Row by row (:func:`cdp.crypto.fields.row_values_reader`),
the Python around the AES-GCM calls (slicing each token into nonce and ciphertext, building
each associated data, a loop step per field) costs about as much as the calls themselves.
Here the same calls are made for a whole chunk of rows, one field at a time, with the loops
run by ``map`` in C: the same keys (each person's data key unwrapped under the KEK, one
``AESGCM`` object per person), the same associated data ``encode_aad(0x02, record_id, field,
key_id)``, the same tokens. Nothing is kept: the data keys live as long as the call.

It takes only the common case and raises on anything else (a version-1 or malformed token, a
moved or tampered token, a key that is not 32 bytes, text that needs ``surrogatepass``, an id
of 256 bytes or more): the caller then reads those rows one by one on the reference path, so
the values returned, and the errors raised, are the reference path's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import compress, repeat
from operator import add, attrgetter, call, getitem, is_not, itemgetter
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cdp._exceptions import CryptoError, DecryptionFailed
from cdp.crypto.envelope import DATA_KEY_SIZE
from cdp.crypto.fields import _HEAD_OF_LENGTH, _HEADER, _LENGTH_PREFIX, TOKEN_VERSION, _field_aad

__all__ = ["ColumnValues", "column_values_reader"]

_NONCE = slice(1, _HEADER)
_SEALED = slice(_HEADER, None)
_decrypt_of = attrgetter("decrypt")

# read(blobs, key_ids, record_ids, rows) -> one list per field, one value (or None) per row
ColumnValues = Callable[[Sequence[bytes | None], Sequence[str], Sequence[str], Sequence[Any]], list[list[str | None]]]


def _length_prefixed(parts: Sequence[bytes], prefixes: Sequence[bytes]) -> list[bytes]:
    """``prefixes[len(part)] + part`` of each part (IndexError for a part too long: the caller's fallback)."""
    return list(map(add, map(prefixes.__getitem__, map(len, parts)), parts))


def column_values_reader(
    fields: Sequence[tuple[str, int]], unwrap_many: Callable[[Sequence[bytes], Sequence[bytes]], list[bytes]]
) -> ColumnValues:
    """A function giving, for ``rows`` (each row's wrapped data key ``blobs[i]``, its key id and
    record id), the plaintext of each of ``fields`` (name, position of its token in a row) in
    every row: what :func:`~cdp.crypto.fields.row_values_reader` gives row by row, as columns.

    ``unwrap_many(blobs, lp_key_ids)`` unwraps the data keys (see
    :meth:`FileKeyring.blobs_unwrapper`); it is called only for rows holding a token and a
    wrapped key. A row whose key is None (shredded: an erased person) reads as no value, an
    empty token or plaintext as None.
    """
    plan = tuple((position, _field_aad(name)) for name, position in fields)
    getters = tuple(itemgetter(position) for position, _ in plan)

    def read(
        blobs: Sequence[bytes | None], key_ids: Sequence[str], record_ids: Sequence[str], rows: Sequence[Any]
    ) -> list[list[str | None]]:
        if not plan:
            return []
        count = len(rows)
        columns = [list(map(getter, rows)) for getter in getters]
        # The rows to unwrap a key for: with at least one token, and a key not shredded.
        keyed = list(
            compress(
                range(count),
                map(all, zip(map(any, zip(*columns, strict=True)), map(is_not, blobs, repeat(None)), strict=True)),
            )
        )
        every = len(keyed) == count
        pick: Callable[[Sequence[Any]], list[Any]] = list if every else (lambda seq: list(map(seq.__getitem__, keyed)))
        kids = list(map(str.encode, pick(key_ids)))
        tails = _length_prefixed(kids, _LENGTH_PREFIX)
        data_keys = unwrap_many(pick(blobs), tails)  # type: ignore[arg-type]  # the keyed rows' blobs are not None
        if data_keys and set(map(len, data_keys)) != {DATA_KEY_SIZE}:
            raise CryptoError(f"a data key is not {DATA_KEY_SIZE} bytes")
        decrypts = list(map(_decrypt_of, map(AESGCM, data_keys)))
        heads = _length_prefixed(list(map(str.encode, pick(record_ids))), _HEAD_OF_LENGTH)
        out: list[list[str | None]] = []
        for (_, field_aad), column in zip(plan, columns, strict=True):
            tokens = pick(column)
            present = list(compress(range(len(tokens)), tokens))
            whole = len(present) == len(tokens)
            if not whole:
                tokens = [tokens[i] for i in present]
            if tokens and set(map(itemgetter(0), tokens)) != {TOKEN_VERSION}:
                raise DecryptionFailed("not a version 2 token: the reference path reads it")
            plain: list[Any] = list(
                map(
                    bytes.decode,
                    map(
                        call,
                        decrypts if whole else [decrypts[i] for i in present],
                        map(getitem, tokens, repeat(_NONCE)),
                        map(getitem, tokens, repeat(_SEALED)),
                        map(
                            add,
                            map(add, heads if whole else [heads[i] for i in present], repeat(field_aad)),
                            tails if whole else [tails[i] for i in present],
                        ),
                    ),
                )
            )
            values: list[str | None] = plain if all(plain) else [value or None for value in plain]
            if every and whole:
                out.append(values)
                continue
            placed: list[str | None] = [None] * count
            rows_of_keyed = keyed if whole else [keyed[i] for i in present]
            for row, value in zip(rows_of_keyed, values, strict=True):
                placed[row] = value
            out.append(placed)
        return out

    return read
