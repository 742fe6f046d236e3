"""Builds the one compiled module of cdp (``cdp/segments/_event_pass.pyx``); the rest is in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("cdp.segments._event_pass", ["cdp/segments/_event_pass.pyx"])],
        compiler_directives={"language_level": "3"},
    )
)
