"""cdp.segments."""
