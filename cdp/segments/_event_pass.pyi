"""Types of the compiled pass (``_event_pass.pyx``)."""

from typing import Any

import numpy as np

_Array = np.ndarray[Any, Any]

SPEC_ANY: int

def mark_codes(codes: _Array, present: _Array) -> int: ...
def row_argmax(counts: _Array, order: _Array, best: _Array, largest: _Array) -> None: ...

SKIP_ROW: int

def accumulate(*arrays: Any) -> int: ...
def spread(hot: _Array, counts: _Array, times: _Array) -> None: ...
def favourite_ranks(*arrays: _Array) -> None: ...
