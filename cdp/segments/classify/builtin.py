"""The built-in classifiers, registered as a default plugin through ``cdp_classifiers``.

Listed in ``cdp.plugins.DEFAULT_PLUGINS`` like any other built-in feature;
a third-party plugin adds its own classifiers through the same hook.
"""

from __future__ import annotations

from typing import Any

from cdp.hookspecs import PluginContext, hookimpl
from cdp.segments.classify.demographics import DemographicsClassifier
from cdp.segments.classify.geography import GeographyClassifier
from cdp.segments.classify.interests import InterestClassifier
from cdp.segments.classify.lifecycle import LifecycleClassifier
from cdp.segments.classify.rfm import RfmClassifier
from cdp.segments.classify.value import ValueClassifier


def builtin_classifiers() -> list[Any]:
    return [
        LifecycleClassifier(),
        RfmClassifier(),
        ValueClassifier(),
        GeographyClassifier(),
        DemographicsClassifier(),
        InterestClassifier(),
    ]


@hookimpl
def cdp_classifiers(context: PluginContext) -> list[Any]:
    return builtin_classifiers()
