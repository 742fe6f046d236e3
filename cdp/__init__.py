"""cdp: a privacy-first customer data platform.

Data flows one way: connector → raw records → normalisation → identity
resolution → profiles → policy-checked access → segments → exports. Only
``cdp.access`` touches customer tables; everything else asks it, with an
``AccessContext`` (actor, role, purpose).
"""

__version__ = "0.1.0"
