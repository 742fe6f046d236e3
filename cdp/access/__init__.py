"""The access layer: the only package allowed to touch customer tables.

Everything else asks :class:`CustomerStore` with an :class:`AccessContext`.
``tests/test_access_boundary.py`` fails if any other module imports the
tables or opens a database session.
"""

from cdp.access.context import AccessContext
from cdp.access.store import CustomerStore, open_store

__all__ = ["AccessContext", "CustomerStore", "open_store"]
