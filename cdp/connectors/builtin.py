"""The built-in connectors, registered as a default plugin like any other."""

from __future__ import annotations

from typing import Any

from cdp.connectors.generic import GenericFileConnector
from cdp.connectors.pos import PosConnector
from cdp.connectors.survey import SurveyConnector
from cdp.connectors.website import WebsiteConnector
from cdp.hookspecs import PluginContext, hookimpl


@hookimpl
def cdp_connectors(context: PluginContext) -> list[Any]:
    return [WebsiteConnector, PosConnector, SurveyConnector, GenericFileConnector]
