"""Builds the compiled modules of cdp (``cdp/segments/_event_pass.pyx``, ``cdp/segments/_member_bits.pyx``,
``cdp/access/_sorted_ids.pyx``); the rest is in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension("cdp.segments._event_pass", ["cdp/segments/_event_pass.pyx"]),
            Extension("cdp.segments._member_bits", ["cdp/segments/_member_bits.pyx"]),
            Extension("cdp.access._sorted_ids", ["cdp/access/_sorted_ids.pyx"]),
        ],
        compiler_directives={"language_level": "3"},
    )
)
