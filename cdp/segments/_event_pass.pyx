# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The per-profile event measures of the attributes, in one compiled pass over the events.

Why it exists: issue #7's refresh computes some sixty measures per profile over
ten million events. Done with numpy, each measure is a pass of its own (a
``bincount`` or ``ufunc.at`` over the rows it concerns, 3-4 ns an element, with
masks, gathers and 80 MB index arrays in between, and the GIL held); here one
loop visits each event once and updates every measure of its profile, without
the GIL, so the store's threads decode the next blocks of events on the other
core meanwhile (docs/benchmarks.md, Segments, eleventh and twelfth sessions).

The loop is given, per event: its profile's position (``rows``), its time, and
the codes of its labels (a block's own, or a Categorical's physical codes, a
null coded as one code of its own; a byte each, or four, the same for the five
label columns, four for the store); per label column a table maps a code to the
label's slot (``measures.py``: each label met gets one; -1: null). Amounts are
the revenue (a null counts 0) times the rate of the event's currency. Sums are
added in the events' order, as ``numpy.bincount`` adds them, so the results are
the same to the last bit. The events at a store are written out as (profile,
store) pairs for the favourite store, counted afterwards.

What every event touches (counts, first and last time, channels) and what every
order does (orders, first and last order, revenue) is kept in one 64-byte row per
profile, aligned so that a row is one cache line: events and counted events in one
word, first, last, the bits of channels 0-63 (the distinct channels are counted
from the bits, once), orders, first and last order, revenue. The rows for the events a little ahead are
prefetched (with, for an order ahead, the lines of its order measures, and for a
product event its category's count: the pass over touched memory ~15 % faster),
and copied out into columns once (:func:`spread`); every other
measure is a contiguous row of per-profile values (the attributes frame's
columns as they are). It is called once per batch of events (a block of the
events read, small enough to stay in cache) and adds to what earlier batches
added. ``measures.py`` allocates every output array and reads the results;
nothing here allocates or keeps anything. Events whose row is ``SKIP_ROW``
(their profile is not wanted) or that happen after ``until`` are left out.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t

cdef extern from *:
    void __builtin_prefetch(const void *addr, int rw, int locality) nogil
    int __builtin_popcountll(unsigned long long x) nogil

cdef extern from *:
    """
    /* Add 0 atomically: the page is written (so faulted in, writable) and no update another
       thread makes to the same byte at the same time is lost. */
    static inline void cdp_touch_byte(unsigned char *at) { __atomic_fetch_add(at, 0, __ATOMIC_RELAXED); }
    """
    void cdp_touch_byte(unsigned char *at) nogil

cdef enum:
    AHEAD = 24  # events prefetched ahead: far enough to hide a miss, near enough to stay cached
    ANY = -3  # a spec's channel or category that is not a condition
    PAGE = 4096  # bytes a page: ``touch_pages`` touches one byte of each

cdef uint32_t SKIPPED = 0xFFFFFFFF  # the row of an event to leave out (its profile is not wanted)

SPEC_ANY = ANY  # the same, for the Python side, which builds the spec tables
PAGE_BYTES = PAGE  # the same, for the Python side
SKIP_ROW = SKIPPED  # the same as ``cdp.access._event_scan.SKIP`` (a test checks)


ctypedef fused code_t:  # a label column's codes: a byte each where the labels are few
    uint8_t
    uint32_t


def mark_codes(const code_t[::1] codes, uint8_t[::1] present):
    """``present[code] = 1`` for each code; returns the largest code (-1: none). Codes not below
    ``present.shape[0]`` are not marked: the caller grows ``present`` and marks again."""
    cdef Py_ssize_t i, n = codes.shape[0], size = present.shape[0]
    cdef int64_t top = -1
    cdef uint32_t c
    with nogil:
        for i in range(n):
            c = <uint32_t>codes[i]
            if c > top:
                top = c
            if c < size:
                present[c] = 1
    return top


def row_argmax(const int32_t[:, ::1] counts, const int64_t[::1] order, int64_t[::1] best, int64_t[::1] largest):
    """Per row of ``counts``, its columns taken in ``order``: the first position in ``order`` whose
    column holds the row's largest count, and that count (0 when ``order`` is empty)."""
    cdef Py_ssize_t r, c, n = counts.shape[0], at, width = order.shape[0]
    cdef int32_t top
    with nogil:
        for r in range(n):
            at = 0
            top = counts[r, order[0]] if width else 0
            for c in range(1, width):
                if counts[r, order[c]] > top:
                    top = counts[r, order[c]]
                    at = c
            best[r] = at
            largest[r] = top


def accumulate(
    const uint32_t[::1] rows,
    const int64_t[::1] stamp,
    const code_t[::1] name_raw, const int32_t[::1] name_of,
    const code_t[::1] channel_raw, const int32_t[::1] channel_of,
    const code_t[::1] kind_raw, const int32_t[::1] kind_of,
    const code_t[::1] type_raw, const uint8_t[::1] counted_type,
    const code_t[::1] currency_raw, const double[::1] rate_of,
    const uint32_t[::1] store_raw, const int32_t[::1] store_of,
    const double[::1] revenue,
    int64_t until,
    const uint8_t[::1] product_name, const uint8_t[::1] amount_name,
    int order_name, int64_t product_since, const int64_t[::1] since,
    const int32_t[::1] spec_start, const int32_t[::1] spec_index,
    const int64_t[::1] spec_lo, const int64_t[::1] spec_hi,
    const uint8_t[::1] spec_has_floor, const double[::1] spec_floor,
    const int32_t[::1] spec_channel, const int32_t[::1] spec_kind, const int32_t[::1] spec_total,
    int64_t[:, ::1] hot, double[:, ::1] hot_sums, int64_t[:, ::1] counts, int64_t[:, ::1] times, double[:, ::1] sums,
    uint64_t[:, ::1] channel_bits, int32_t[:, ::1] browsing, int32_t[:, ::1] order_channels,
    int32_t[:, ::1] spec_count, double[:, ::1] spec_revenue,
    uint32_t[::1] visit_rows, int32_t[::1] visit_stores,
):
    """Add one batch of events to the per-profile measures (``measures.EventMeasures`` reads them).

    ``hot``: one row per profile (one cache line) for what every event touches (events in the
    low 32 bits and counted events, i.e. not ``identify``, in the high 32; first and last event,
    set by the first; the bits of channels 0-63) and every order (orders; first and last order,
    set by the first; revenue, in ``hot_sums``, the same memory read as doubles), copied out into
    ``counts``, ``times`` and ``sums`` by :func:`spread` once every batch is in. Otherwise one row per
    measure, one column per profile (each measure a contiguous column): ``counts`` rows 4-7:
    orders 90-180 days ago, orders within 30/90/365 days (``since[0..2]``; ``since[3]`` is 180
    days ago); ``sums`` rows 1-3: revenue within 30/90/365 days. Per profile: ``channel_bits`` (channels 64 and up, a bit each),
    ``browsing`` (product events per category), ``order_channels`` (orders per channel).
    ``spec_count``: a row per spec; ``spec_revenue``: a row per spec whose total revenue is read
    (spec ``k``'s is row ``spec_total[k]``, -1: none); the specs of event name ``c`` are
    ``spec_index[spec_start[c + 1]:spec_start[c + 2]]``. Each event at a store (``store_of``: the
    store's slot, -1 none) is written to ``visit_rows`` and ``visit_stores`` (room for every event of
    the batch); returns how many were. Events whose row is ``SKIP_ROW`` or that happen after
    ``until`` are left out of everything.
    """
    cdef Py_ssize_t i, j, n = rows.shape[0], ahead
    cdef Py_ssize_t k, visits = 0
    cdef int st
    cdef uint32_t r, q
    cdef int64_t t
    cdef int nm, ch, kd, na, ka
    cdef double amount
    cdef uint64_t bit
    with nogil:
        for i in range(n):
            ahead = i + AHEAD
            if ahead < n:
                q = rows[ahead]
                if q != SKIPPED:
                    __builtin_prefetch(&hot[q, 0], 1, 3)
                    na = name_of[name_raw[ahead]]
                    if na == order_name:
                        __builtin_prefetch(&counts[5, q], 1, 3)
                        __builtin_prefetch(&counts[6, q], 1, 3)
                        __builtin_prefetch(&counts[7, q], 1, 3)
                        __builtin_prefetch(&sums[1, q], 1, 3)
                        __builtin_prefetch(&sums[2, q], 1, 3)
                        __builtin_prefetch(&sums[3, q], 1, 3)
                    elif product_name[na + 1]:
                        ka = kind_of[kind_raw[ahead]]
                        if ka >= 0:
                            __builtin_prefetch(&browsing[q, ka], 1, 3)
            r = rows[i]
            t = stamp[i]
            if r == SKIPPED or t > until:
                continue
            nm = name_of[name_raw[i]]
            ch = channel_of[channel_raw[i]]
            kd = kind_of[kind_raw[i]]
            if hot[r, 0] == 0:  # the profile's first event: the rows start as zeros, not as bounds
                hot[r, 1] = t
                hot[r, 2] = t
            elif t < hot[r, 1]:
                hot[r, 1] = t
            elif t > hot[r, 2]:
                hot[r, 2] = t
            hot[r, 0] += 1 + ((<int64_t>counted_type[type_raw[i]]) << 32)  # events, and counted ones above
            if ch >= 0:
                bit = (<uint64_t>1) << (ch & 63)
                if ch < 64:
                    hot[r, 3] = <int64_t>((<uint64_t>hot[r, 3]) | bit)
                else:
                    channel_bits[r, (ch >> 6) - 1] |= bit
            if kd >= 0 and product_name[nm + 1] and t >= product_since:
                browsing[r, kd] += 1
            st = store_of[store_raw[i]]
            if st >= 0:
                visit_rows[visits] = r
                visit_stores[visits] = st
                visits += 1
            if not amount_name[nm + 1]:
                continue
            amount = revenue[i] * rate_of[currency_raw[i]]
            if nm == order_name:
                if hot[r, 4] == 0:  # the first order
                    hot[r, 5] = t
                    hot[r, 6] = t
                elif t < hot[r, 5]:
                    hot[r, 5] = t
                elif t > hot[r, 6]:
                    hot[r, 6] = t
                hot[r, 4] += 1
                hot_sums[r, 7] += amount
                if ch >= 0:
                    order_channels[r, ch] += 1
                if since[3] <= t < since[1]:
                    counts[4, r] += 1
                for j in range(3):
                    if t >= since[j]:
                        counts[5 + j, r] += 1
                        sums[1 + j, r] += amount
            for j in range(spec_start[nm + 1], spec_start[nm + 2]):
                k = spec_index[j]
                if t < spec_lo[k] or t >= spec_hi[k]:
                    continue
                if spec_has_floor[k] and not amount > spec_floor[k]:
                    continue
                if spec_channel[k] != ANY and ch != spec_channel[k]:
                    continue
                if spec_kind[k] != ANY and kd != spec_kind[k]:
                    continue
                spec_count[k, r] += 1
                if spec_total[k] >= 0:
                    spec_revenue[spec_total[k], r] += amount
    return visits


def spread(
    const int64_t[:, ::1] hot,
    const double[:, ::1] hot_sums,
    const uint64_t[:, ::1] channel_bits,
    int64_t[:, ::1] counts,
    int64_t[:, ::1] times,
    double[:, ::1] sums,
):
    """Copy ``hot``'s per-profile rows out into the measure rows: events, counted events, distinct
    channels (the bits set in ``hot`` and in ``channel_bits``), orders; first and last event, first
    and last order; the revenue of every order (``hot_sums``: ``hot`` read as doubles)."""
    cdef Py_ssize_t r, j, n = hot.shape[0], words = channel_bits.shape[1]
    cdef int64_t channels, low = 0xFFFFFFFF
    if channel_bits.shape[0] != n and words:
        raise ValueError("one row of channel bits per profile")
    if hot_sums.shape[0] != n:
        raise ValueError("hot_sums must be hot read as doubles")
    with nogil:
        for r in range(n):
            counts[0, r] = hot[r, 0] & low
            counts[1, r] = hot[r, 0] >> 32
            channels = __builtin_popcountll(<uint64_t>hot[r, 3])
            for j in range(words):
                channels += __builtin_popcountll(channel_bits[r, j])
            counts[2, r] = channels
            counts[3, r] = hot[r, 4]
            times[0, r] = hot[r, 1]
            times[1, r] = hot[r, 2]
            times[2, r] = hot[r, 5]
            times[3, r] = hot[r, 6]
            sums[0, r] = hot_sums[r, 7]


def favourite_ranks(
    const uint32_t[::1] rows, const uint32_t[::1] ranks, int64_t[::1] ends,
    uint32_t[::1] grouped, int32_t[::1] tally, int32_t[::1] best,
):
    """Per profile, the rank of the store it visited most (ties: the lowest rank; -1: none).

    ``rows`` and ``ranks``: one (profile, store rank) pair per visit. ``ends``: zeros, one per
    profile; ``grouped``: room for every visit; ``tally``: zeros, one per rank. The visits are
    grouped by profile (a counting sort: a pass counts each profile's, another puts each in its
    place, after which ``ends[r]`` is where profile ``r``'s visits end), then each profile's own
    are counted (a profile's visits are few, the tally is reset after each).
    """
    cdef Py_ssize_t i, j, r, n = rows.shape[0], profiles = best.shape[0]
    cdef int64_t lo, total
    cdef int32_t top, pick, count
    cdef uint32_t rank
    if ends.shape[0] != profiles or grouped.shape[0] < n:
        raise ValueError("ends and grouped must fit the profiles and the visits")
    for i in range(n):
        if rows[i] >= profiles:
            raise ValueError("a visit's profile is not among the profiles")
    with nogil:
        for i in range(n):
            ends[rows[i]] += 1
        total = 0
        for r in range(profiles):  # each profile's start, where its visits are put from
            count = <int32_t>ends[r]
            ends[r] = total
            total += count
        for i in range(n):
            r = rows[i]
            grouped[ends[r]] = ranks[i]
            ends[r] += 1
        lo = 0
        for r in range(profiles):
            top, pick = 0, -1
            for j in range(lo, ends[r]):
                rank = grouped[j]
                tally[rank] += 1
                count = tally[rank]
                if count > top or (count == top and <int32_t>rank < pick):
                    top, pick = count, rank
            for j in range(lo, ends[r]):
                tally[grouped[j]] = 0
            best[r] = pick
            lo = ends[r]


ctypedef fused count_t:
    uint8_t
    int32_t


def column_totals(const int32_t[:, ::1] counts, int64_t[::1] totals):
    """``totals[c]``: the sum of column ``c`` of ``counts`` (one row-major pass, not one strided pass a column)."""
    cdef Py_ssize_t r, c, n = counts.shape[0], width = counts.shape[1]
    if totals.shape[0] != width:
        raise ValueError("one total per column")
    with nogil:
        for c in range(width):
            totals[c] = 0
        for r in range(n):
            for c in range(width):
                totals[c] += counts[r, c]


def list_offsets(const count_t[:, ::1] counts, const int64_t[::1] columns, int64_t floor, int64_t[::1] offsets):
    """Where each row's list starts: ``offsets[r + 1] - offsets[r]`` is how many of ``columns``
    hold at least ``floor`` in row ``r`` (``offsets``: one more than the rows). Returns the total."""
    cdef Py_ssize_t r, j, n = counts.shape[0], width = columns.shape[0]
    cdef int64_t total = 0
    if offsets.shape[0] != n + 1:
        raise ValueError("one offset per row, and one more")
    for j in range(width):
        if not 0 <= columns[j] < counts.shape[1]:
            raise ValueError("a column is out of range")
    with nogil:
        offsets[0] = 0
        for r in range(n):
            for j in range(width):
                if counts[r, columns[j]] >= floor:
                    total += 1
            offsets[r + 1] = total
    return total


def list_items(const count_t[:, ::1] counts, const int64_t[::1] columns, int64_t floor, int32_t[::1] items):
    """The lists of :func:`list_offsets`, one after the other: per row, the places ``j`` in ``columns``
    (in that order) whose column holds at least ``floor`` (``items``: room for the total)."""
    cdef Py_ssize_t r, j, n = counts.shape[0], width = columns.shape[0], k = 0, room = items.shape[0]
    for j in range(width):
        if not 0 <= columns[j] < counts.shape[1]:
            raise ValueError("a column is out of range")
    with nogil:
        for r in range(n):
            for j in range(width):
                if counts[r, columns[j]] >= floor:
                    if k == room:
                        with gil:
                            raise ValueError("items has no room for every item")
                    items[k] = <int32_t>j
                    k += 1


def touch_pages(uint8_t[::1] memory):
    """Fault in every page of ``memory`` (the bytes of a measure array) without changing a byte,
    while the pass may be adding to it on another thread: one atomic add of 0 a page, without
    the GIL. A fresh array's first touch costs a zeroed page each (0.5-1.5 ms a MB on a VM whose
    host reclaims freed memory); done on an idle core, the pass does not wait for it."""
    cdef Py_ssize_t i = 0, n = memory.shape[0]
    with nogil:
        while i < n:
            cdp_touch_byte(&memory[i])
            i += PAGE
