"""Activation: delivering segments to downstream tools, only where policy and consent allow.

Destinations are plugins (the ``cdp_destinations`` hook; the built-in ones in
:mod:`cdp.activation.builtin`); :mod:`cdp.activation.sync` sends each configured
destination the members who entered and left a segment since its last sync, and
the erasures it must carry out.
"""

from cdp.activation.base import AudienceBatch, ConfigField, DeletionBatch, Destination, DestinationFailed, member_key

__all__ = ["AudienceBatch", "ConfigField", "DeletionBatch", "Destination", "DestinationFailed", "member_key"]
