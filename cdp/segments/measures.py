"""Per-profile event measures, taken batch by batch as a scan of the events hands them over.

Why it exists: the attributes (``attributes.py``) need some sixty counts, times and
sums per profile over every event. :class:`EventMeasures` is the sink of an
events scan (``cdp.access._event_scan``): the store hands it each block as soon
as it is decoded, and it runs the compiled pass (:mod:`cdp.segments._event_pass`)
over that block at once, so decoding overlaps the pass and no frame of ten
million events is ever assembled (docs/benchmarks.md, Segments, twelfth session).
An events frame is fed to it the same way, cut into batches.

A batch's label columns arrive as codes into small tables that change from
block to block (each block has its own sorted labels). Each label column keeps
a registry: every label met gets a slot, in the order met, and a batch's codes
reach the pass through a table from code to slot. The per-label measures
(browsing per category, orders per channel) are columns per slot; the caller
reads them in sorted label order through :attr:`Measures.kinds` and
:attr:`Measures.channels`. Events whose profile is not wanted (``SKIP``) or that
happen after ``as_of`` are left out by the pass itself.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from cdp.access._event_scan import SKIP, EventBatch, LabelCodes, LabelTable
from cdp.segments._event_pass import SPEC_ANY, accumulate, favourite_ranks, mark_codes, spread, touch_pages
from cdp.segments.config import TagsConfig
from cdp.segments.definition import EventSpec, merge_specs

ORDER_EVENT = "Order Completed"
SURVEY_EVENT = "Survey Submitted"
PRODUCT_EVENTS = ("Product Viewed", "Product Added", "Product", ORDER_EVENT)
DAY_US = 86_400_000_000
STORE_TIME = pl.Datetime("us", "UTC")  # the events' time as the store hands it over
_PER_DAY = {"ns": 86_400_000_000_000, "us": DAY_US, "ms": 86_400_000}


def currency_rates(config: TagsConfig) -> dict[str, float]:
    """Upper-case currency code -> rate to the reporting currency (a currency not listed counts 1)."""
    return {code.upper(): float(rate) for code, rate in config.currency.rates.items()}


class _Registry:
    """The labels of one column met so far, each with a slot in the order met (see the module)."""

    def __init__(self) -> None:
        self.slot: dict[str, int] = {}
        self.labels: list[str] = []
        # Per table: (which codes occur, marked as batches show them; code -> slot, -1 for the null code and
        # for codes not met).
        self._tables: dict[LabelTable, tuple[np.ndarray, np.ndarray]] = {}

    def _register(self, names: Sequence[str]) -> list[int]:
        for name in names:
            if name not in self.slot:
                self.slot[name] = len(self.labels)
                self.labels.append(name)
        return [self.slot[name] for name in names]

    def codes(self, column: LabelCodes | None, length: int) -> tuple[np.ndarray, np.ndarray]:
        """(the batch's codes; the table from code to slot, -1 for the null code)."""
        if column is None:  # no such column: every event's label is null
            return np.zeros(length, dtype=np.uint8), np.full(1, -1, dtype=np.int32)
        return column.codes, self._table(column)

    def _table(self, column: LabelCodes) -> np.ndarray:
        labels = column.table
        known = self._tables.get(labels)
        if labels.complete:  # a block's own labels, all of them used: registered whole, once
            if known is None:
                assert labels.labels is not None
                known = (np.zeros(0, dtype=np.uint8), np.array([*self._register(labels.labels), -1], dtype=np.int32))
                self._tables[labels] = known
            return known[1]
        # A Categorical's codes: mark those this batch uses, and look up the labels of new ones.
        present, table = known if known is not None else (np.zeros(256, dtype=np.uint8), np.full(257, -1, np.int32))
        codes = column.codes
        top = mark_codes(codes, present)
        if top >= present.size:  # a code past the marks so far: grow them, and mark again
            grown = np.zeros(max(top + 1, 2 * present.size), dtype=np.uint8)
            grown[: present.size] = present
            present = grown
            mark_codes(codes, present)
            table = np.concatenate([table[:-1], np.full(present.size - table.size + 2, -1, dtype=np.int32)])
        new = np.flatnonzero(present.astype(bool) & (table[:-1] < 0))
        new = new[new != column.null]
        if new.size:
            table[new] = self._register(labels.names(new.tolist()))
        self._tables[labels] = (present, table)
        return table


@dataclass
class Measures:
    """What :meth:`EventMeasures.finish` hands the attributes: arrays with one column per profile."""

    counts: np.ndarray  # (8, profiles): events, counted, channels, orders, orders 90-180 days ago, 30/90/365 days
    times: np.ndarray  # (4, profiles): first and last event, first and last order (0 where there are none)
    sums: np.ndarray  # (4, profiles): revenue over the lifetime and within 30/90/365 days
    spec_count: np.ndarray  # (specs, profiles), int32
    spec_revenue: np.ndarray  # (specs whose total is read, profiles), in the order of ``specs``
    specs: list[EventSpec]
    browsing: np.ndarray  # (profiles, at least the categories' slots): product events per category
    order_channels: np.ndarray  # (profiles, at least the channels' slots): orders per channel
    kinds: list[tuple[str, int]]  # (category, its slot), in sorted order
    channels: list[tuple[str, int]]  # (channel, its slot), in sorted order
    favourite_store: pl.Series | None  # per profile, its most frequent store (None: the events have no stores)
    survey: pl.DataFrame | None  # _row, occurred_at, properties: the survey answers (None: no properties)
    time_type: pl.DataType  # the events' time column's


class EventMeasures:
    """The sink of an events scan (:class:`cdp.access._event_scan.EventSink`): see the module."""

    def __init__(
        self,
        profiles: int,
        *,
        as_of: datetime,
        config: TagsConfig,
        specs: Sequence[EventSpec] = (),
        time_type: pl.DataType = STORE_TIME,
        columns: Collection[str] = ("store_id", "properties"),
    ) -> None:
        self.size = profiles
        self.options = config
        self.specs = merge_specs(specs)
        unit = getattr(time_type, "time_unit", "us") or "us"
        self._per_day = _PER_DAY[unit]
        self.moment = int(pl.select(pl.lit(as_of).cast(time_type).to_physical()).item())
        self.rates = currency_rates(config)
        self.time_type = time_type
        # The events have these columns (a store's always do): the favourite store and the survey
        # answers are columns of the result, null without events, exactly when they do.
        self.stores_kept = "store_id" in columns
        self.answers_kept = "properties" in columns
        self.reset()

    def since(self, days: int) -> int:
        """ "At most ``days`` old" is ``stamp >= since(days)`` (exact, in the time column's unit)."""
        return int(self.moment - days * self._per_day)

    def reset(self) -> None:
        size, count = self.size, len(self.specs)
        self.registries = {c: _Registry() for c in ("event_name", "channel", "category", "event_type", "currency")}
        self.stores = _Registry()
        # Zeros, touched only where the pass adds (first and last times are set by the first event
        # or order, not filled with bounds beforehand): a million profiles' rows are not written twice.
        # Events and counted events, first, last, channel bits 0-63, orders, first and last order, revenue.
        self.hot = _aligned_rows(size, 8)
        self.counts = np.zeros((8, size), dtype=np.int64)
        self.times = np.zeros((4, size), dtype=np.int64)  # first and last event (from ``hot``), first and last order
        self.sums = np.zeros((4, size), dtype=np.float64)
        # A count per spec; a total revenue only for the specs a definition reads it of.
        self.spec_count = np.zeros((count, size), dtype=np.int32)
        totals = [k for k, spec in enumerate(self.specs) if spec.total]
        self.spec_revenue = np.zeros((len(totals), size), dtype=np.float64)
        self._spec_total = np.full(max(count, 1), -1, dtype=np.int32)
        self._spec_total[totals] = np.arange(len(totals), dtype=np.int32)
        # Per slot: grown as labels are met (see ``_fit``).
        self.channel_bits = np.zeros((size, 0), dtype=np.uint64)  # channels 64 and up (a word per 64)
        self.browsing = np.zeros((size, 0), dtype=np.int32)
        self.order_channels = np.zeros((size, 0), dtype=np.int32)
        self._fixed: tuple[Any, ...] = ()
        self._sizes: tuple[int, ...] = ()
        self._per_type = np.zeros(1, dtype=np.uint8)
        self._per_currency = np.ones(1, dtype=np.float64)
        self._store_parts: list[tuple[np.ndarray, np.ndarray]] = []
        self._visits = (np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.int32))  # the pass writes them
        self._survey_slot = -2
        self._survey_parts: list[pl.DataFrame] = []

    def _fit(self) -> None:
        """Rebuild the per-slot tables of the pass (and grow the per-slot measures) when labels were added."""
        names, channels, kinds, types, currencies = (
            self.registries[c].labels for c in ("event_name", "channel", "category", "event_type", "currency")
        )
        sizes = (len(names), len(channels), len(kinds), len(types), len(currencies))
        if sizes == self._sizes:
            return
        self._sizes = sizes
        self.browsing = _widen(self.browsing, len(kinds))
        self.order_channels = _widen(self.order_channels, len(channels))
        words = max(0, (len(channels) - 1) // 64)
        if words > self.channel_bits.shape[1]:
            self.channel_bits = np.concatenate(
                [self.channel_bits, np.zeros((self.size, words - self.channel_bits.shape[1]), dtype=np.uint64)], axis=1
            )
        # Per slot, then one more entry for null (a table's -1 takes the last): counted (a type, not
        # ``identify``), the currency's rate (unknown or null: 1).
        self._per_type = np.array([t != "identify" for t in types] + [False], dtype=np.uint8)
        self._per_currency = np.array([self.rates.get(c.upper(), 1.0) for c in currencies] + [1.0], dtype=np.float64)
        slot = self.registries["event_name"].slot
        order = slot.get(ORDER_EVENT, -2)
        self._survey_slot = slot.get(SURVEY_EVENT, -2)
        # Per event name (entry 0: null): a product event (browsing), an event whose amount is needed.
        product_name = np.zeros(len(names) + 1, dtype=np.uint8)
        product_name[[slot[n] + 1 for n in PRODUCT_EVENTS if n in slot]] = 1
        spec_name = [slot.get(spec.event, -2) for spec in self.specs]
        amount_name = np.zeros(len(names) + 1, dtype=np.uint8)
        amount_name[[code + 1 for code in [order, *spec_name] if code >= 0]] = 1
        by_name = [[k for k, code in enumerate(spec_name) if code == c] for c in range(-1, len(names))]
        spec_start = np.zeros(len(names) + 2, dtype=np.int32)
        spec_start[1:] = np.cumsum([len(b) for b in by_name])
        channel_slot, kind_slot = self.registries["channel"].slot, self.registries["category"].slot
        never = np.iinfo(np.int64).max
        since = self.since
        self._fixed = (
            self.moment,
            product_name,
            amount_name,
            order,
            since(self.options.interests.window_days),
            np.array([since(30), since(90), since(365), since(180)], dtype=np.int64),
            spec_start,
            np.array([k for b in by_name for k in b] or [0], dtype=np.int32),
            np.array([since(s.start_days) for s in self.specs], dtype=np.int64),
            np.array([since(s.end_days) if s.end_days else never for s in self.specs], dtype=np.int64),
            np.array([s.revenue_over is not None for s in self.specs], dtype=np.uint8),
            np.array([s.revenue_over or 0.0 for s in self.specs], dtype=np.float64),
            np.array([_target(channel_slot, s.channel) for s in self.specs], dtype=np.int32),
            np.array([_target(kind_slot, s.category) for s in self.specs], dtype=np.int32),
            self._spec_total,
            self.hot,
            self.hot.view(np.float64),
            self.counts,
            self.times,
            self.sums,
            self.channel_bits,
            self.browsing,
            self.order_channels,
            self.spec_count,
            self.spec_revenue,
        )

    def add(self, batch: EventBatch) -> None:
        """Add one batch to every measure (the compiled pass, without the GIL)."""
        length = batch.height
        if not length:
            return
        raw = {c: r.codes(batch.labels.get(c), length) for c, r in self.registries.items()}
        self._fit()
        rows = np.ascontiguousarray(batch.rows, dtype=np.uint32)
        stamps = np.ascontiguousarray(batch.occurred_at.to_physical().to_numpy(), dtype=np.int64)
        revenue = np.ascontiguousarray(batch.revenue.fill_null(0.0).to_numpy(), dtype=np.float64)
        (name_raw, name_of), (channel_raw, channel_of), (kind_raw, kind_of) = (
            raw["event_name"],
            raw["channel"],
            raw["category"],
        )
        (type_raw, type_of), (currency_raw, currency_of) = raw["event_type"], raw["currency"]
        coded = (name_raw, channel_raw, kind_raw, type_raw, currency_raw)
        if any(codes.dtype != np.uint8 for codes in coded):  # the pass takes them all in one width
            name_raw, channel_raw, kind_raw, type_raw, currency_raw = (_wide(codes) for codes in coded)
        store_raw, store_of = self.stores.codes(batch.labels.get("store_id"), length)
        store_raw = _wide(store_raw)
        if self._visits[0].size < length:
            self._visits = (np.zeros(length, dtype=np.uint32), np.zeros(length, dtype=np.int32))
        visits = accumulate(
            rows,
            stamps,
            name_raw,
            name_of,
            channel_raw,
            channel_of,
            kind_raw,
            kind_of,
            type_raw,
            self._per_type[type_of],
            currency_raw,
            self._per_currency[currency_of],
            store_raw,
            store_of,
            revenue,
            *self._fixed,
            *self._visits,
        )
        if visits:  # the events at a store: (profile, store) pairs, counted at the end
            self._store_parts.append((self._visits[0][:visits].copy(), self._visits[1][:visits].copy()))

        if batch.properties.height and self._survey_slot >= 0:
            at = batch.properties["row"].to_numpy()
            answers = (name_of[name_raw[at]] == self._survey_slot) & (rows[at] != SKIP) & (stamps[at] <= self.moment)
            if answers.any():
                self._survey_parts.append(
                    pl.DataFrame(
                        {
                            "_row": rows[at[answers]],
                            "occurred_at": batch.occurred_at.gather(at[answers]),
                            "properties": batch.properties["properties"].filter(pl.Series(answers)),
                        }
                    )
                )

    def prefault(self) -> None:
        """Fault in the per-profile measure arrays of a fixed size (the per-slot ones grow with the
        labels met, so are left to the pass): called on an idle core as the scan starts, so that the
        pass's first batches, which touch nearly every page of them, do not zero ~230 MB of fresh
        pages themselves (0.2-0.4 s on the critical path on a VM whose host reclaims freed memory:
        docs/benchmarks.md, Segments, sixteenth session), nor :meth:`finish` the rows it copies
        ``hot`` into. No value is changed (``touch_pages``), so it may run while the pass adds to
        the same arrays."""
        for array in (self.spec_revenue, self.spec_count, self.sums, self.times, self.counts, self.hot):
            touch_pages(array.reshape(-1).view(np.uint8))

    def finish(self) -> Measures:
        """The measures of every batch added (the sink is spent: ``reset`` to use it again)."""
        self._fit()
        spread(self.hot, self.hot.view(np.float64), self.channel_bits, self.counts, self.times, self.sums)
        return Measures(
            self.counts,
            self.times,
            self.sums,
            self.spec_count,
            self.spec_revenue,
            self.specs,
            self.browsing,
            self.order_channels,
            _sorted_slots(self.registries["category"]),
            _sorted_slots(self.registries["channel"]),
            self._favourite_store(),
            (
                pl.concat(self._survey_parts)
                if self._survey_parts
                else pl.DataFrame(schema={"_row": pl.UInt32, "occurred_at": self.time_type, "properties": pl.String})
            )
            if self.answers_kept
            else None,
            self.time_type,
        )

    def _favourite_store(self) -> pl.Series | None:
        """Each profile's most frequent store (ties: the first in sorted order; null: none), from
        the (profile, store) pairs the pass wrote (counted by ``favourite_ranks``: a few ms)."""
        if not self.stores_kept:
            return None
        labels = self.stores.labels
        rank = np.zeros(len(labels), dtype=np.uint32)  # per slot, its label's place in sorted order
        rank[sorted(range(len(labels)), key=labels.__getitem__)] = np.arange(len(labels), dtype=np.uint32)
        parts = self._store_parts or [(np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.int32))]
        rows = np.concatenate([p[0] for p in parts])
        ranks = rank[np.concatenate([p[1] for p in parts])]
        best = np.empty(self.size, dtype=np.int32)
        tally = np.zeros(max(len(labels), 1), dtype=np.int32)
        favourite_ranks(rows, ranks, np.zeros(self.size, dtype=np.int64), np.empty_like(rows), tally, best)
        # An Enum of the stores someone favours (a byte or two a profile, not a string each); the
        # same, whatever labels the blocks listed, as from a frame of the same events.
        picked = best >= 0
        used = np.flatnonzero(np.bincount(best[picked], minlength=len(labels)))
        place = np.full(len(labels) + 1, -1, dtype=np.int64)  # per rank, its place among the used; -1: none
        place[used] = np.arange(used.size)
        ordered = sorted(labels)
        names = pl.Series("favourite_store", [ordered[u] for u in used.tolist()], dtype=pl.String)
        at = pl.Series("favourite_store", place[best]).cast(pl.UInt32, strict=False)  # -1 (none): null
        return names.cast(pl.Enum(names)).gather(at)


def _aligned_rows(rows: int, width: int) -> np.ndarray:
    """Zeros, (rows, width) int64, starting on a 64-byte boundary: a row of 8 (64 bytes) is then one
    cache line, not two (numpy aligns an array to 16 bytes only)."""
    line = 64 // 8
    memory = np.zeros(rows * width + line, dtype=np.int64)
    skip = (-memory.ctypes.data % 64) // 8
    return memory[skip : skip + rows * width].reshape(rows, width)


def _wide(codes: np.ndarray) -> np.ndarray:
    """Codes as uint32 (no copy when they are)."""
    return np.ascontiguousarray(codes, dtype=np.uint32)


def _target(slots: dict[str, int], value: str | None) -> int:
    """A spec's channel or category as the pass matches it: any (no condition), its slot, or -2 (no event)."""
    if value is None:
        return SPEC_ANY
    return slots.get(value, -2)  # -2 matches no event: a label's slot is >= 0, a null's -1


def _widen(matrix: np.ndarray, columns: int) -> np.ndarray:
    """``matrix`` with at least ``columns`` columns (a copy with zeros added, when it has fewer)."""
    if matrix.shape[1] >= max(1, columns):
        return matrix
    wider = np.zeros((matrix.shape[0], max(1, columns)), dtype=matrix.dtype)
    wider[:, : matrix.shape[1]] = matrix
    return wider


def _sorted_slots(registry: _Registry) -> list[tuple[str, int]]:
    return sorted(registry.slot.items())
