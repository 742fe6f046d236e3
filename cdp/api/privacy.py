"""API routes for profiles, consent, data-subject requests and the audit log.

Thin: every route builds the caller's access context and asks the same
services the CLI uses; the access layer decides, masks and audits.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody

from cdp._exceptions import InputError
from cdp.access import CustomerStore
from cdp.api.auth import request_context
from cdp.consent.dsr import DataSubjectRequests
from cdp.settings import Settings


def _store(request: Request[Any, Any, State]) -> CustomerStore:
    store: CustomerStore = request.app.state.store
    return store


class PrivacyController(Controller):
    path = "/api"

    @get("/profiles/{profile_id:str}", sync_to_thread=True)
    def profile(
        self,
        request: Request[Any, Any, State],
        profile_id: FromPath[str],
        fields: FromQuery[str] = "given_name,email,country",
    ) -> dict[str, Any]:
        ctx = request_context(request)
        rows = _store(request).read_profiles(
            ctx, [f for f in fields.split(",") if f], profile_ids=[profile_id], with_provenance=True
        )
        if not rows:
            from cdp._exceptions import NotFound

            raise NotFound(f"no profile {profile_id} visible for this role and purpose")
        return rows[0]

    @post("/consents", sync_to_thread=True, status_code=201)
    def consent(self, request: Request[Any, Any, State], data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        ctx = request_context(request)
        for key in ("profile_id", "purpose", "status"):
            if not isinstance(data.get(key), str):
                raise InputError(f"field {key!r} is required")
        entry = _store(request).record_consent(
            ctx,
            data["profile_id"],
            purpose=data["purpose"],
            status=data["status"],
            basis=str(data.get("basis", "consent")),
            source="api",
            notice_version=data.get("notice_version"),
            evidence={"request": ctx.request_id},
        )
        return {"id": entry}

    @post("/dsr", sync_to_thread=True, status_code=201)
    def dsr(self, request: Request[Any, Any, State], data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        ctx = request_context(request)
        kind, identifier = data.get("kind"), data.get("identifier")
        if not isinstance(kind, str) or not isinstance(identifier, str):
            raise InputError("fields 'kind' and 'identifier' are required")
        options = {k: v for k, v in data.items() if k in ("purpose", "corrections")}
        settings: Settings = request.app.state.settings
        outcome = DataSubjectRequests(_store(request), settings).run(
            ctx, kind=kind, identifier=identifier, regime=str(data.get("regime", "GDPR")), **options
        )
        body: dict[str, Any] = {
            "request_id": outcome.request_id,
            "status": outcome.status,
            "profile_id": outcome.profile_id,
            "result": outcome.result,
        }
        if kind == "access" and outcome.files:
            import json

            body["export"] = json.loads(outcome.files[0].read_text(encoding="utf-8"))
        return body

    @get("/dsr/overdue", sync_to_thread=True)
    def overdue(self, request: Request[Any, Any, State]) -> list[dict[str, Any]]:
        ctx = request_context(request)
        settings: Settings = request.app.state.settings
        return [
            {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
            for r in DataSubjectRequests(_store(request), settings).overdue(ctx)
        ]

    @get("/audit", sync_to_thread=True)
    def audit(
        self,
        request: Request[Any, Any, State],
        actor: FromQuery[str | None] = None,
        subject: FromQuery[str | None] = None,
        decision: FromQuery[str | None] = None,
        limit: FromQuery[int] = 100,
    ) -> list[dict[str, Any]]:
        ctx = request_context(request)
        return _store(request).search_audit(
            ctx, actor=actor, subject=subject, decision=decision, limit=min(limit, 10_000)
        )
