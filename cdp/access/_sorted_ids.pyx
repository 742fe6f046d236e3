# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The position of each of a sorted list of ids in another sorted list, by one merge.

Why it exists: a segment refresh's events read maps each profile id of the store's
dictionary (about 600k at a million profiles) to its profile's position in the refresh's
profile frame (a million ids). Both lists are sorted, so one merge of the two
visits each id once (about 15 ms), where a binary search per id costs about
80 ms on an idle core, and more while the blocks are decoded beside it: that time
is spent before the first block can be handed on (``_event_blocks.py``).

The ids come as Arrow ``large_string`` buffers (offsets and bytes), compared
byte by byte, which is the order Polars sorts strings in.
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t
from libc.string cimport memcmp

cdef uint32_t MISSING = 0xFFFFFFFF


cdef inline int _compare(const uint8_t[::1] a, int64_t a0, int64_t a1, const uint8_t[::1] b, int64_t b0, int64_t b1) noexcept nogil:
    cdef int64_t n = a1 - a0 if a1 - a0 < b1 - b0 else b1 - b0
    cdef int found = memcmp(&a[a0], &b[b0], n) if n > 0 else 0
    if found != 0:
        return found
    return (a1 - a0 > b1 - b0) - (a1 - a0 < b1 - b0)


def merge_positions(
    const int64_t[::1] ids_at, const uint8_t[::1] ids,
    const int64_t[::1] keys_at, const uint8_t[::1] keys,
    uint32_t[::1] out,
):
    """``out[i]``: the position of id ``i`` among the keys (``0xFFFFFFFF``: not there); both sorted.

    ``ids_at``/``keys_at``: Arrow offsets (one more than the ids), ``ids``/``keys``: the bytes (at
    least one byte each: the caller pads an empty buffer).
    Returns False, leaving ``out`` unfinished, if either list turns out not to be strictly sorted.
    """
    cdef Py_ssize_t i = 0, k = 0, n = ids_at.shape[0] - 1, m = keys_at.shape[0] - 1
    cdef int c
    cdef bint ordered = True
    with nogil:
        for i in range(1, n):
            if _compare(ids, ids_at[i - 1], ids_at[i], ids, ids_at[i], ids_at[i + 1]) >= 0:
                ordered = False
                break
        for k in range(1, m if ordered else 0):
            if _compare(keys, keys_at[k - 1], keys_at[k], keys, keys_at[k], keys_at[k + 1]) >= 0:
                ordered = False
                break
        k = 0
        for i in range(n if ordered else 0):
            c = 1
            while k < m:
                c = _compare(keys, keys_at[k], keys_at[k + 1], ids, ids_at[i], ids_at[i + 1])
                if c >= 0:
                    break
                k += 1
            out[i] = <uint32_t>k if k < m and c == 0 else MISSING
    return ordered


def gather_positions(const uint32_t[::1] codes, const uint32_t[::1] positions, uint32_t[::1] rows, uint8_t[::1] seen):
    """``rows[i] = positions[codes[i]]`` and ``seen[rows[i]] = 1`` (``seen``'s last entry for a row
    past it, such as ``0xFFFFFFFF``): a block's profile positions in one pass (``_event_blocks.py``),
    where numpy's fancy indexing takes three, each converting the codes to 64-bit indices."""
    cdef Py_ssize_t i, n = codes.shape[0], size = positions.shape[0], last = seen.shape[0] - 1
    cdef uint32_t r
    cdef bint inside = True
    if rows.shape[0] != n:
        raise ValueError("one row per code")
    if last < 0:
        raise ValueError("seen needs at least one entry")
    with nogil:
        for i in range(n):
            if codes[i] >= size:
                inside = False
                break
    if not inside:
        raise ValueError("a code past the positions")
    with nogil:
        for i in range(n):
            r = positions[codes[i]]
            rows[i] = r
            seen[r if r < last else last] = 1
