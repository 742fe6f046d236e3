"""The HTTP API: one ``create_app()`` building the Litestar application.

Domain errors are mapped to HTTP statuses in one place (``errors.py``).
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, get
from litestar.datastructures import State

from cdp._exceptions import CDPError
from cdp.api.collect import CollectController, stop_parser
from cdp.api.errors import cdp_error_handler
from cdp.api.matching import BackgroundMatcher
from cdp.api.privacy import PrivacyController
from cdp.settings import Settings


@get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


def create_app(settings: Settings, *, store: Any = None) -> Litestar:
    from cdp.access import open_store
    from cdp.connectors.runner import load_normalizers

    opened = store or open_store(settings, migrate=True)
    matcher = BackgroundMatcher(opened, settings) if settings.match_on_arrival else None

    async def start_matcher() -> None:
        if matcher is not None:
            await matcher.start()

    async def stop_matcher() -> None:
        if matcher is not None:
            await matcher.stop()

    async def close_store() -> None:
        await stop_parser(app.state)  # the /v1/batch parser process, if one was started
        if store is None:
            opened.close()

    state = {"settings": settings, "store": opened, "normalizers": load_normalizers(settings), "matcher": matcher}
    app = Litestar(
        route_handlers=[health, CollectController, PrivacyController],
        exception_handlers={CDPError: cdp_error_handler},
        state=State(state),
        on_startup=[start_matcher],
        on_shutdown=[stop_matcher, close_store],
        debug=False,
    )
    return app
