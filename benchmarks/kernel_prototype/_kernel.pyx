# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Measurement prototype, not used by cdp: the attributes' per-profile event measures in one pass.

What ``cdp.segments.attributes`` computes with numpy (a bincount or ``ufunc.at`` per measure,
each a pass over the rows it concerns), here in a single loop over the events that updates
every measure of the event's profile, without the GIL. Rows of per-profile state are laid
out profile-major (one 64-byte row of ``hot`` per profile) and prefetched a few events
ahead. Built and timed by ``benchmarks/attributes_kernel.py`` (docs/benchmarks.md,
Segments, eleventh session).
"""
cdef extern from *:
    void __builtin_prefetch(const void *addr, int rw, int locality) nogil

from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t

ctypedef fused code_t:
    int8_t
    int16_t
    int32_t

def accumulate(
    const uint32_t[::1] rows, const int64_t[::1] stamp,
    const code_t[::1] name, const code_t[::1] channel, const code_t[::1] kind,
    const code_t[::1] etype, const code_t[::1] currency,
    const double[::1] revenue, const uint8_t[::1] valid, Py_ssize_t valid_offset,
    const uint8_t[::1] counting_of_type, const uint8_t[::1] product_of_name, const double[::1] rate_of_currency,
    int order_code, int64_t product_since, const int64_t[::1] windows,  # since(30), since(90), since(365), since(180)
    const uint8_t[::1] needs_amount, const int32_t[::1] spec_first, const int32_t[::1] spec_order,
    const int32_t[::1] spec_event, const int64_t[::1] spec_lo, const int64_t[::1] spec_hi,
    const uint8_t[::1] spec_has_rev, const double[::1] spec_rev, const int32_t[::1] spec_channel, const int32_t[::1] spec_kind,
    int64_t[:, ::1] hot, uint64_t[:, ::1] chmask,
    int32_t[:, ::1] browse, int64_t[:, ::1] oint, double[:, ::1] orevs, int32_t[:, ::1] pref,
    int64_t[:, ::1] scount, double[:, ::1] srev,
):
    cdef Py_ssize_t j, i, n = rows.shape[0], k, nspec = spec_event.shape[0]
    cdef uint32_t r
    cdef int64_t t
    cdef int nm, ch, kd
    cdef double amount
    cdef bint has_valid = valid.shape[0] > 0
    cdef Py_ssize_t bit
    with nogil:
        for i in range(n):
            if i + 24 < n:
                r = rows[i + 24]
                __builtin_prefetch(&hot[r, 0], 1, 3)
                __builtin_prefetch(&chmask[r, 0], 1, 3)
                __builtin_prefetch(&browse[r, 0], 1, 3)
                if name[i + 24] == order_code:
                    __builtin_prefetch(&oint[r, 0], 1, 3)
                    __builtin_prefetch(&orevs[r, 0], 1, 3)
            r = rows[i]
            t = stamp[i]
            nm = name[i]
            ch = channel[i]
            kd = kind[i]
            hot[r, 0] += 1
            hot[r, 1] += counting_of_type[etype[i] + 1]
            if t < hot[r, 2]:
                hot[r, 2] = t
            if t > hot[r, 3]:
                hot[r, 3] = t
            if ch >= 0:
                chmask[r, ch >> 6] |= (<uint64_t>1) << (ch & 63)
            if kd >= 0 and product_of_name[nm + 1] and t >= product_since:
                browse[r, kd] += 1
            if needs_amount[nm + 1]:
                bit = i + valid_offset
                if has_valid and not (valid[bit >> 3] >> (bit & 7)) & 1:
                    amount = 0.0
                else:
                    amount = revenue[i] * rate_of_currency[currency[i] + 1]
                if nm == order_code:
                    oint[r, 0] += 1
                    orevs[r, 0] += amount
                    if t < oint[r, 1]:
                        oint[r, 1] = t
                    if t > oint[r, 2]:
                        oint[r, 2] = t
                    if ch >= 0:
                        pref[r, ch] += 1
                    if t < windows[1] and t >= windows[3]:
                        oint[r, 3] += 1
                    for k in range(3):
                        if t >= windows[k]:
                            oint[r, 4 + k] += 1
                            orevs[r, 1 + k] += amount
                for j in range(spec_first[nm + 1], spec_first[nm + 2]):
                    k = spec_order[j]
                    if t >= spec_lo[k] and t < spec_hi[k]:
                        if spec_has_rev[k] and not amount > spec_rev[k]:
                            continue
                        if spec_channel[k] != -3 and ch != spec_channel[k]:
                            continue
                        if spec_kind[k] != -3 and kd != spec_kind[k]:
                            continue
                        scount[r, k] += 1
                        srev[r, k] += amount
