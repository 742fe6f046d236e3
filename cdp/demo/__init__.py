"""Synthetic, labelled customer data for demos and identity-resolution benchmarks.

``generate()`` writes web events, POS transactions and survey responses for a
realistic, deliberately messy population, plus the ground truth of who is who.
See docs/demo-data.md for the population and corruption model.
"""

from cdp.demo.generator import DemoFiles, generate

__all__ = ["DemoFiles", "generate"]
