"""Blind indexes: equality lookups on encrypted identifiers without decrypting them.

Why this module exists: field ciphertexts are randomised (see
:mod:`cdp.crypto.fields`), so the database cannot answer "which profile has
this email?". A blind index is a keyed HMAC-SHA256 of the *normalised*
value, stored next to the ciphertext and looked up by equality. It uses its
own system key (the ``blind-index`` secret, never a person's data key), and a
per-kind subkey (HKDF-SHA256, ``info = b"cdp-bidx:" + kind``), so the index of
an email and of a phone number with the same text differ and cannot be
joined.

What it leaks, deliberately: a full-length index is an exact equality
oracle. Anyone who can read the index column learns which rows share a
value, and anyone who also holds the index key can confirm a guessed value.
cdp accepts that for identity matching, where deterministic equality is the
point. For low-cardinality or enumerable fields (postcode, birth year,
gender) use :meth:`BlindIndexer.index_truncated` with a bit length from
:meth:`BlindIndexer.recommended_bits`, so each lookup returns several false
positives (filtered after decryption) and the index no longer reveals
exact equality. Callers normalise values (case, Unicode NFC, phone E.164)
before indexing; this module hashes exactly the text it is given.
"""

from __future__ import annotations

from cdp._exceptions import ConfigurationError
from cdp.crypto.fields import HmacSha256, hkdf_expand_32, hkdf_extract

__all__ = ["BlindIndexer"]

_KIND_INFO = b"cdp-bidx:"
_MAX_BITS = 256


class BlindIndexer:
    """Computes blind indexes under one index key. Thread-safe; subkeys are cached per kind."""

    __slots__ = ("_prk", "_subkeys")

    def __init__(self, index_key: bytes) -> None:
        if len(index_key) < 32:
            raise ConfigurationError(f"a blind-index key must be at least 32 bytes, got {len(index_key)}")
        self._prk = HmacSha256(hkdf_extract(bytes(index_key)))
        self._subkeys: dict[str, HmacSha256] = {}

    def __repr__(self) -> str:
        return "BlindIndexer(<key hidden>)"

    def _subkey(self, kind: str) -> HmacSha256:
        subkey = self._subkeys.get(kind)
        if subkey is None:
            if not kind:
                raise ConfigurationError("a blind index needs a non-empty kind (for example 'email')")
            raw = hkdf_expand_32(self._prk, _KIND_INFO + kind.encode("utf-8", "surrogatepass"))
            subkey = self._subkeys[kind] = HmacSha256(raw)
        return subkey

    def digest(self, kind: str, normalized_value: str) -> bytes:
        """The raw 32-byte HMAC-SHA256 of ``normalized_value`` under the subkey of ``kind``."""
        return self._subkey(kind).digest(normalized_value.encode("utf-8", "surrogatepass"))

    def index(self, kind: str, normalized_value: str) -> str:
        """Full-length blind index (64 hex characters).

        Deterministic: the same (key, kind, value) always gives the same index,
        which makes it an exact equality oracle (see the module docstring).
        Use it for identifiers that are matched exactly (email, phone).
        """
        return self.digest(kind, normalized_value).hex()

    def index_truncated(self, kind: str, normalized_value: str, bits: int) -> str:
        """The first ``bits`` bits of the index, as hex of ``ceil(bits / 8)`` bytes.

        Bits past ``bits`` in the last byte are cleared (as CipherSweet does),
        so the result depends only on the kept bits. A truncated index is a
        prefix of the full one for the same kind: never store both for a kind.
        """
        if not 1 <= bits <= _MAX_BITS:
            raise ConfigurationError(f"blind index bits must be between 1 and {_MAX_BITS}, got {bits}")
        nbytes, rem = divmod(bits, 8)
        full = self.digest(kind, normalized_value)
        if not rem:
            return full[:nbytes].hex()
        last = full[nbytes] & (0xFF << (8 - rem)) & 0xFF
        return (full[:nbytes] + bytes([last])).hex()

    @staticmethod
    def recommended_bits_range(rows: int) -> tuple[int, int]:
        """``(min_bits, max_bits)`` keeping ``2 <= rows / 2**bits <= sqrt(rows)`` false matches per lookup.

        This is CipherSweet's planning rule for one index on a table of
        ``rows`` rows: at least two coincidences so that a lookup never pins
        one row, at most ``sqrt(rows)`` so that lookups stay cheap. With
        several truncated indexes on the same rows the rule applies to the
        *sum* of their bits. For fewer than 4 rows no length reaches two
        coincidences and ``(1, 1)`` is returned.
        """
        if rows < 1:
            raise ConfigurationError(f"row count must be positive, got {rows}")
        # rows / 2**b >= 2        <=>  2**(b+1) <= rows     <=>  b <= bit_length(rows) - 2
        # rows / 2**b <= sqrt(rows) <=> rows <= 2**(2b)     <=>  b >= ceil(log2(rows)) / 2
        high = min(_MAX_BITS, max(1, rows.bit_length() - 2))
        low = max(1, -(-(rows - 1).bit_length() // 2))
        return min(low, high), high

    @staticmethod
    def recommended_bits(rows: int) -> int:
        """The most selective bit length that still gives at least two false matches per lookup.

        The upper end of :meth:`recommended_bits_range`: for 100,000 rows,
        15 bits (about 3 rows per lookup); for 1,000,000 rows, 18 bits.
        """
        return BlindIndexer.recommended_bits_range(rows)[1]
