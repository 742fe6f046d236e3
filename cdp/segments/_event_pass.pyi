"""Types of the compiled pass (``_event_pass.pyx``)."""

from typing import Any

import numpy as np

def mark_present(codes: np.ndarray[Any, Any], present: np.ndarray[Any, Any]) -> None: ...
def accumulate(*arrays: Any) -> None: ...
