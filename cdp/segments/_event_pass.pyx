# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The per-profile event measures of the attributes, in one compiled pass over the events.

Why it exists: issue #7's refresh computes some sixty measures per profile over
ten million events. Done with numpy, each measure is a pass of its own (a
``bincount`` or ``ufunc.at`` over the rows it concerns, 3-4 ns an element, with
masks, gathers and 80 MB index arrays in between, and the GIL held); here one
loop visits each event once and updates every measure of its profile, without
the GIL, so the favourite store and survey answers (Polars) use the other core
meanwhile (docs/benchmarks.md, Segments, eleventh session).

The loop is given, per event: its profile's position (``rows``), its time, and
the raw codes of its labels (a Categorical's physical codes, a null coded as the
table's last slot); per label column a table maps a raw code to the label's
position in sorted order (-1: null). Amounts are the revenue (a null counts 0)
times the rate of the event's currency. Sums are added in the events' order, as
``numpy.bincount`` adds them, so the results are the same to the last bit.

Each measure is a contiguous row of per-profile values (the attributes frame's
columns as they are, no copy out), and the rows of the events a little ahead are
prefetched. It is called once per batch of events (a block of the events read,
small enough to stay in cache) and adds to what earlier batches added.
``attributes.py`` allocates every output array and reads the results; nothing
here allocates or keeps anything.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t

cdef extern from *:
    void __builtin_prefetch(const void *addr, int rw, int locality) nogil

cdef enum:
    AHEAD = 24  # events prefetched ahead: far enough to hide a miss, near enough to stay cached
    ANY = -3  # a spec's channel or category that is not a condition


def mark_present(const uint32_t[::1] codes, uint8_t[::1] present):
    """``present[code] = 1`` for every code (each code < ``present.shape[0]``)."""
    cdef Py_ssize_t i, n = codes.shape[0]
    with nogil:
        for i in range(n):
            present[codes[i]] = 1


def accumulate(
    const uint32_t[::1] rows,
    const int64_t[::1] stamp,
    const uint32_t[::1] name_raw, const int32_t[::1] name_of,
    const uint32_t[::1] channel_raw, const int32_t[::1] channel_of,
    const uint32_t[::1] kind_raw, const int32_t[::1] kind_of,
    const uint32_t[::1] type_raw, const uint8_t[::1] counted_type,
    const uint32_t[::1] currency_raw, const double[::1] rate_of,
    const double[::1] revenue,
    const uint8_t[::1] product_name, const uint8_t[::1] amount_name,
    int order_name, int64_t product_since, const int64_t[::1] since,
    const int32_t[::1] spec_start, const int32_t[::1] spec_index,
    const int64_t[::1] spec_lo, const int64_t[::1] spec_hi,
    const uint8_t[::1] spec_has_floor, const double[::1] spec_floor,
    const int32_t[::1] spec_channel, const int32_t[::1] spec_kind,
    int64_t[:, ::1] counts, int64_t[:, ::1] times, double[:, ::1] sums,
    uint64_t[:, ::1] channel_bits, int32_t[:, ::1] browsing, int32_t[:, ::1] order_channels,
    int64_t[:, ::1] spec_count, double[:, ::1] spec_revenue,
):
    """Add one batch of events to the per-profile measures (``attributes._event_pass`` reads them).

    One row per measure, one column per profile (each measure a contiguous column):
    ``counts``: events, counted events (not ``identify``), distinct channels, orders, orders 90-180
    days ago, orders within 30/90/365 days (``since[0..2]``; ``since[3]`` is 180 days ago);
    ``times``: first and last event, first and last order; ``sums``: revenue over the lifetime and
    within 30/90/365 days. Per profile: ``channel_bits`` (a bit per channel), ``browsing`` (product
    events per category), ``order_channels`` (orders per channel). ``spec_count`` and
    ``spec_revenue``: a row per spec; the specs of event name ``c`` are
    ``spec_index[spec_start[c + 1]:spec_start[c + 2]]``.
    """
    cdef Py_ssize_t i, j, n = rows.shape[0], ahead
    cdef Py_ssize_t k
    cdef uint32_t r, q
    cdef int64_t t
    cdef int nm, ch, kd
    cdef double amount
    cdef uint64_t bit
    with nogil:
        for i in range(n):
            ahead = i + AHEAD
            if ahead < n:
                q = rows[ahead]
                __builtin_prefetch(&counts[0, q], 1, 3)
                __builtin_prefetch(&counts[1, q], 1, 3)
                __builtin_prefetch(&times[0, q], 1, 3)
                __builtin_prefetch(&times[1, q], 1, 3)
                __builtin_prefetch(&channel_bits[q, 0], 1, 3)
            r = rows[i]
            t = stamp[i]
            nm = name_of[name_raw[i]]
            ch = channel_of[channel_raw[i]]
            kd = kind_of[kind_raw[i]]
            counts[0, r] += 1
            counts[1, r] += counted_type[type_raw[i]]
            if t < times[0, r]:
                times[0, r] = t
            if t > times[1, r]:
                times[1, r] = t
            if ch >= 0:
                bit = (<uint64_t>1) << (ch & 63)
                if not channel_bits[r, ch >> 6] & bit:
                    channel_bits[r, ch >> 6] |= bit
                    counts[2, r] += 1
            if kd >= 0 and product_name[nm + 1] and t >= product_since:
                browsing[r, kd] += 1
            if not amount_name[nm + 1]:
                continue
            amount = revenue[i] * rate_of[currency_raw[i]]
            if nm == order_name:
                counts[3, r] += 1
                sums[0, r] += amount
                if t < times[2, r]:
                    times[2, r] = t
                if t > times[3, r]:
                    times[3, r] = t
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
                spec_revenue[k, r] += amount
