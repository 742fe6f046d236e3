"""Types of the compiled merge (``_sorted_ids.pyx``)."""

from typing import Any

import numpy as np

_Array = np.ndarray[Any, Any]

def merge_positions(ids_at: _Array, ids: _Array, keys_at: _Array, keys: _Array, out: _Array) -> bool: ...
def gather_positions(codes: _Array, positions: _Array, rows: _Array, seen: _Array) -> None: ...
