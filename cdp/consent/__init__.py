"""cdp.consent."""
