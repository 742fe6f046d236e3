"""Measurement prototype: the attributes' event measures by a fused compiled loop, against cdp's numpy passes.

Not used by cdp. It answers one question for issue #7's 2 s target: how much
of the attributes step a compiled single pass over the events would save on
this machine. ``benchmarks/kernel_prototype/_kernel.pyx`` is the loop (Cython);
build it first (Cython is not a dependency of cdp):

    python3 -m pip install cython
    cythonize -i -3 benchmarks/kernel_prototype/_kernel.pyx
    python3 benchmarks/attributes_kernel.py                 # 1M profiles, 10M events, in memory

Each round times ``compute_attributes`` (cdp's code), then the prototype: the
same label codes (``label_codes``), the loop, and the loop once more over the
same output arrays (their pages then present: what the loop costs without the
kernel's first touches of fresh memory). The last round's measures are
compared, column by column, with ``compute_attributes``' (every one must be
the same; the favourite store, survey answers, preferred channel and
favourite category are not computed by the prototype).
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import polars as pl
from segments_speed import AS_OF, segments, synthesise  # the script beside this one (its folder is on sys.path)

from cdp.segments import attributes as attrs
from cdp.segments.config import TagsConfig
from cdp.segments.definition import EventSpec, event_specs

LABELS = ("event_type", "event_name", "currency", "channel", "store_id", "category")
BIG = int(np.iinfo(np.int64).max)


def load_kernel() -> ModuleType:
    folder = Path(__file__).parent / "kernel_prototype"
    built = sorted(folder.glob("_kernel*.so"))
    if not built:
        raise SystemExit("build the prototype first: cythonize -i -3 benchmarks/kernel_prototype/_kernel.pyx")
    spec = importlib.util.spec_from_file_location("_kernel", built[0])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kernel_measures(
    kernel: ModuleType, events: pl.DataFrame, size: int, now: datetime, options: TagsConfig, specs: list[EventSpec]
) -> tuple[dict[str, np.ndarray], float, float]:
    """The prototype's measures for ``events`` (with ``_row``, as ``attributes._positions`` gives them)."""
    ts_type = events.schema["occurred_at"]
    stamp = events["occurred_at"].to_physical().to_numpy()
    moment = pl.select(pl.lit(now).cast(ts_type).to_physical()).item()

    def since(days: int) -> int:
        return int(moment - days * attrs.DAY_US)

    coded = attrs.label_codes(events, ("event_name", "channel", "category", "event_type", "currency"))
    (name, names), (channel, channels), (kind, kinds), (etype, etypes), (currency, currencies) = coded.values()
    small = attrs._small(max(len(labels) for _, labels in coded.values()))
    name, channel, kind, etype, currency = (a.astype(small, copy=False) for a in (name, channel, kind, etype, currency))
    counting = np.array([0] + [int(x != "identify") for x in etypes], dtype=np.uint8)
    product = np.zeros(len(names) + 1, np.uint8)
    for event in attrs.PRODUCT_EVENTS:
        if event in names:
            product[names.index(event) + 1] = 1
    rates = attrs.currency_rates(options)
    rate = np.array([1.0] + [rates.get(c.upper(), 1.0) for c in currencies])
    revenue = events["revenue"].to_arrow()  # the values and the validity bitmap as they are: no copy
    validity, values = revenue.buffers()[0], revenue.buffers()[1]
    assert values is not None
    amounts = np.frombuffer(values, dtype=np.float64)[revenue.offset : revenue.offset + len(revenue)]
    valid = np.frombuffer(validity, dtype=np.uint8) if validity is not None else np.zeros(0, np.uint8)
    order = attrs._position(names, attrs.ORDER_EVENT)
    windows = np.array([since(30), since(90), since(365), since(180)], dtype=np.int64)
    spec_event = np.array([attrs._position(names, s.event) for s in specs], np.int32)
    needs = np.zeros(len(names) + 1, np.uint8)
    for code in [order, *spec_event.tolist()]:
        if code >= 0:
            needs[code + 1] = 1
    by_name = [[k for k, e in enumerate(spec_event.tolist()) if e == c] for c in range(-1, len(names))]
    spec_first = np.zeros(len(names) + 2, np.int32)
    spec_first[1:] = np.cumsum([len(b) for b in by_name])
    spec_order = np.array([k for b in by_name for k in b] or [0], np.int32)
    hot = np.zeros((size, 8), np.int64)  # seen, counted, first seen, last seen
    hot[:, 2], hot[:, 3] = BIG, -BIG - 1
    orders = np.zeros((size, 8), np.int64)  # count, first, last, previous 90 days, 30/90/365 days
    orders[:, 1], orders[:, 2] = BIG, -BIG - 1
    out: dict[str, Any] = {
        "hot": hot,
        "channels": np.zeros((size, (len(channels) + 63) // 64 or 1), np.uint64),
        "browse": np.zeros((size, max(len(kinds), 1)), np.int32),
        "orders": orders,
        "revenue": np.zeros((size, 4)),  # lifetime, 30/90/365 days
        "order_channels": np.zeros((size, max(len(channels), 1)), np.int32),
        "spec_count": np.zeros((size, len(specs)), np.int64),
        "spec_revenue": np.zeros((size, len(specs))),
    }
    arguments = (
        events["_row"].to_numpy(),
        stamp,
        name,
        channel,
        kind,
        etype,
        currency,
        amounts,
        valid,
        revenue.offset,
        counting,
        product,
        rate,
        order,
        since(options.interests.window_days),
        windows,
        needs,
        spec_first,
        spec_order,
        spec_event,
        np.array([since(s.start_days) for s in specs], np.int64),
        np.array([since(s.end_days) if s.end_days else BIG for s in specs], np.int64),
        np.array([s.revenue_over is not None for s in specs], np.uint8),
        np.array([s.revenue_over or 0.0 for s in specs], np.float64),
        np.array([-3 if s.channel is None else attrs._position(channels, s.channel) for s in specs], np.int32),
        np.array([-3 if s.category is None else attrs._position(kinds, s.category) for s in specs], np.int32),
        *out.values(),
    )
    kernel.accumulate(*arguments)
    prepared = time.perf_counter()
    scratch = {k: v.copy() for k, v in out.items()}  # the loop again over arrays whose pages are present
    started = time.perf_counter()
    kernel.accumulate(*arguments[: -len(out)], *scratch.values())
    again = time.perf_counter() - started
    measures = {
        "event_count": hot[:, 1],
        "first_seen": hot[:, 2],
        "last_seen": hot[:, 3],
        "channel_count": np.unpackbits(np.ascontiguousarray(out["channels"]).view(np.uint8)).reshape(size, -1).sum(1),
        "order_count": orders[:, 0],
        "first_order_at": orders[:, 1],
        "last_order_at": orders[:, 2],
        "orders_prev_90d": orders[:, 3],
        "revenue_lifetime": out["revenue"][:, 0],
        "_seen": hot[:, 0],
    }
    for j, days in enumerate(attrs.WINDOWS):
        measures[f"orders_{days}d"] = orders[:, 4 + j]
        measures[f"revenue_{days}d"] = out["revenue"][:, 1 + j]
    for j, spec in enumerate(specs):
        measures[spec.count_column] = out["spec_count"][:, j]
        measures[spec.revenue_column] = out["spec_revenue"][:, j]
    return measures, prepared, again


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    kernel = load_kernel()
    events, people = synthesise(args.profiles, args.events)
    events = events.with_columns(pl.col(c).cast(pl.Categorical) for c in LABELS)  # as the store hands them over
    keys = people["profile_id"]
    config = TagsConfig()
    specs = list({s.key: s for s in event_specs(s.where for s in segments())}.values())
    for run in range(args.repeat):
        started = time.perf_counter()
        reference = attrs.compute_attributes(events, as_of=AS_OF, config=config, event_specs=specs, profiles=keys)
        numpy_time = time.perf_counter() - started
        started = time.perf_counter()
        positioned, _ = attrs._positions(events, keys)
        measures, done, again = kernel_measures(kernel, positioned, keys.len(), AS_OF, config, specs)
        kernel_time = done - started
        print(
            f"run {run + 1}: compute_attributes {numpy_time:.2f}s;"
            f" prototype (codes, positions, loop) {kernel_time:.2f}s, the loop alone over present pages {again:.2f}s"
        )
    seen = measures.pop("_seen") > 0
    different = []
    for column, values in measures.items():
        expected = reference[column]
        if expected.dtype.is_temporal():
            expected = expected.to_physical()
        mine = pl.Series(values).filter(pl.Series(seen))
        theirs = expected.filter(pl.Series(seen)).cast(pl.Float64)
        ordered = column in {"first_order_at", "last_order_at"}
        if ordered:  # null where a profile has no order
            mask = theirs.is_not_null()
            mine, theirs = mine.filter(mask), theirs.filter(mask)
        if not (mine.cast(pl.Float64) == theirs).all():
            different.append(column)
    print(f"{len(measures)} measures compared with compute_attributes: {different or 'all the same'}")


if __name__ == "__main__":
    main()
