"""Ids made in bulk (records, data keys) are time-ordered, so bulk inserts append to their indexes."""

from __future__ import annotations

import re
import time
from pathlib import Path

from cdp.access import CustomerStore
from cdp.access._core import new_id, ordered_ids


def test_ordered_ids_have_the_shape_of_new_ids_and_sort_by_time() -> None:
    first = ordered_ids("k", 500)
    assert first == sorted(first) and len(set(first)) == 500
    shape = re.compile(r"k_[0-9a-f]{24}")
    assert all(shape.fullmatch(i) for i in first) and shape.fullmatch(new_id("k"))
    time.sleep(0.002)
    later = ordered_ids("k", 500)
    assert max(first)[:14] < min(later)[:14]  # the 12-digit millisecond prefix moved on
    assert ordered_ids("r", 0) == []


def test_new_data_keys_are_time_ordered(store: CustomerStore, tmp_path: Path) -> None:
    first = [key_id for key_id, _, _ in store.create_keys(50)]
    time.sleep(0.002)
    second = [key_id for key_id, _, _ in store.create_keys(50)]
    assert first == sorted(first) and max(first) < min(second)
    assert store.keystore.get(first + second).keys() == set(first + second)
