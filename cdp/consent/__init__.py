"""Consent ledger services, data-subject requests, retention and records of processing."""
