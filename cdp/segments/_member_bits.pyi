"""Types of the compiled member split (``_member_bits.pyx``)."""

from typing import Any

import numpy as np

_Array = np.ndarray[Any, Any]

def count_bits(words: _Array, counts: _Array) -> int: ...
def fill_bits(positions: _Array, words: _Array, starts: _Array, members: _Array) -> None: ...
