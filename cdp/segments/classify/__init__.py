"""Classifiers: turning computed attributes into tags and more attributes.

See :mod:`cdp.segments.classify.base` for the interface and
:mod:`cdp.segments.classify.builtin` for the default plugin.
"""

from cdp.segments.classify.base import (
    Classification,
    ClassifiedSnapshot,
    Classifier,
    TagSpec,
    collect_classifiers,
    run_classifiers,
)

__all__ = ["Classification", "ClassifiedSnapshot", "Classifier", "TagSpec", "collect_classifiers", "run_classifiers"]
