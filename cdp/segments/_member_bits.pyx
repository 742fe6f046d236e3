# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Each segment's members out of the bit words the segment queries answer with, in compiled passes.

Why it exists: :meth:`cdp.segments.engine.SegmentEngine.run_many` answers up to
62 segments with one BIGINT per row of ``base`` (a bit per segment) and each
row's position. Taking one segment's members out of that with Polars is a mask
and a filter over every row: 2-3 ms a segment at a million profiles, ~45 ms for
twenty (docs/benchmarks.md, Segments, seventeenth session). Here one pass
counts each bit's members and a second writes each member's position into its
segment's run of one shared array, both visiting only the bits that are set.
"""

from libc.stdint cimport int64_t, uint32_t, uint64_t

cdef extern from *:
    int __builtin_ctzll(unsigned long long x) nogil
    int __builtin_popcountll(unsigned long long x) nogil


def count_bits(const int64_t[::1] words, int64_t[::1] counts):
    """``counts[b]``: how many of ``words`` have bit ``b`` set (``counts``: zeros, one per bit, at
    most 63); returns the total. A word with a bit set past ``counts`` is an error."""
    cdef Py_ssize_t i, n = words.shape[0], width = counts.shape[0], bad = -1
    cdef uint64_t w, allowed
    cdef int64_t total = 0
    if not 0 <= width <= 63:
        raise ValueError("at most 63 bits a word")
    allowed = ((<uint64_t>1) << width) - 1
    with nogil:
        for i in range(n):
            w = <uint64_t>words[i]
            if w & ~allowed:
                bad = i
                break
            total += __builtin_popcountll(w)
            while w:
                counts[__builtin_ctzll(w)] += 1
                w &= w - 1
    if bad >= 0:
        raise ValueError(f"row {bad}: a bit set past the {width} counted")
    return total


def fill_bits(const uint32_t[::1] positions, const int64_t[::1] words, int64_t[::1] starts, uint32_t[::1] members):
    """The ``positions`` of the rows whose word has bit ``b`` set, in the rows' order, written to
    ``members`` from ``starts[b]`` on (``starts``: where each bit's run begins, as
    :func:`count_bits`' counts lay them out; each is left where its run ends)."""
    cdef Py_ssize_t i, b, n = positions.shape[0], width = starts.shape[0], room = members.shape[0]
    cdef uint64_t w
    if words.shape[0] != n:
        raise ValueError("one word per position")
    for b in range(width):
        if starts[b] < 0:
            raise ValueError("a start is negative")
    with nogil:
        for i in range(n):
            w = <uint64_t>words[i]
            while w:
                b = __builtin_ctzll(w)
                if b >= width or starts[b] >= room:
                    with gil:
                        raise ValueError(f"row {i}: no room for bit {b}")
                members[starts[b]] = positions[i]
                starts[b] += 1
                w &= w - 1
