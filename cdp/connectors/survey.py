"""Survey responses from CSV or JSON exports.

Respondent identifiers become identity fields; NPS and CSAT scores, interests
and a feedback sentiment (positive / neutral / negative) become a
``Survey Submitted`` event; the free-text feedback itself is personal data and
stays only in the encrypted payload. A marketing opt-in answer feeds the
consent ledger.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from cdp._exceptions import RecordRejected
from cdp.connectors._parse import number, text, timestamp
from cdp.connectors._tabular import MappedFileConnector
from cdp.connectors.base import ConfigField, FieldSpec, SourceItem, StreamSpec
from cdp.model import ConsentSignal, EventData, IncomingRecord

SURVEY_COLUMNS = (
    "response_id",
    "submitted_at",
    "name",
    "email",
    "phone",
    "country",
    "city",
    "postcode",
    "birth_date",
    "nps",
    "csat",
    "interests",
    "feedback",
    "marketing_opt_in",
)
SURVEY_FIELDS = (
    FieldSpec("response_id", "string", "pseudonymous", required=True),
    FieldSpec("submitted_at", "datetime", "behavioural", required=True),
    FieldSpec("name", "string", "direct_identifier"),
    FieldSpec("email", "string", "direct_identifier"),
    FieldSpec("phone", "string", "direct_identifier"),
    FieldSpec("country", "string", "quasi_identifier"),
    FieldSpec("city", "string", "quasi_identifier"),
    FieldSpec("postcode", "string", "quasi_identifier"),
    FieldSpec("birth_date", "string", "direct_identifier"),
    FieldSpec("nps", "integer", "behavioural"),
    FieldSpec("csat", "integer", "behavioural"),
    FieldSpec("interests", "string", "behavioural"),
    FieldSpec("feedback", "string", "direct_identifier"),
    FieldSpec("marketing_opt_in", "string", "operational"),
)
YES = frozenset({"yes", "y", "true", "1", "是", "oui", "ja"})
NO = frozenset({"no", "n", "false", "0", "否", "non", "nein"})
_POSITIVE = re.compile(
    r"\b(love|great|excellent|amazing|fantastic|happy|recommend|perfect|good|friendly|fast)\b|喜欢|很好|满意|推荐|不错|棒",
    re.I,
)
_NEGATIVE = re.compile(
    r"\b(bad|terrible|awful|slow|rude|disappoint\w*|never again|poor|worst|broken|late|unhappy)\b"
    r"|差|失望|慢|糟糕|不满意|投诉",
    re.I,
)


def sentiment(feedback: str | None, nps: float | None, csat: float | None) -> str:
    """positive / neutral / negative from the words, falling back on the scores."""
    if feedback:
        positive = len(_POSITIVE.findall(feedback))
        negative = len(_NEGATIVE.findall(feedback))
        if positive != negative:
            return "positive" if positive > negative else "negative"
    if nps is not None:
        return "positive" if nps >= 9 else "negative" if nps <= 6 else "neutral"
    if csat is not None:
        return "positive" if csat >= 4 else "negative" if csat <= 2 else "neutral"
    return "neutral"


class SurveyConnector(MappedFileConnector):
    name: ClassVar[str] = "survey"
    description: ClassVar[str] = "Survey responses (CSV or JSON lines): identifiers, NPS/CSAT, interests, feedback."
    config_schema: ClassVar[tuple[ConfigField, ...]] = (
        ConfigField("path", "path", required=True, description="the responses export"),
        ConfigField("source", "string", description="source name to store records under (default: survey)"),
        ConfigField("format", "string", description="csv or jsonl (default: from the file extension)"),
        ConfigField("delimiter", "string", default=","),
        ConfigField("columns", "object", default=None, description="canonical name -> column name in the file"),
        ConfigField("ignore_columns", "array", default=None),
        ConfigField("interest_separator", "string", default=";"),
        ConfigField(
            "notice_version", "string", default="survey-2026", description="privacy notice shown with the opt-in"
        ),
    )
    streams: ClassVar[tuple[StreamSpec, ...]] = (
        StreamSpec("responses", ("response_id",), "submitted_at", SURVEY_FIELDS),
    )
    canonical_columns = SURVEY_COLUMNS
    stream_name = "responses"

    def to_record(self, item: SourceItem) -> list[IncomingRecord]:
        row, record = self.canonical(item, record_field="response_id")
        response_id = text(row.get("response_id"), "response_id", record=record, required=True, max_len=200)
        when = timestamp(row.get("submitted_at"), "submitted_at", record=record)
        assert response_id is not None and when is not None
        nps = number(row.get("nps"), "nps", record=record, low=0, high=10)
        csat = number(row.get("csat"), "csat", record=record, low=1, high=5)
        if nps is not None and nps != int(nps):
            raise RecordRejected("must be a whole number from 0 to 10", record=record, field="nps")
        feedback = text(row.get("feedback"), "feedback", record=record, max_len=5000)
        separator = str(self.config.get("interest_separator") or ";")
        raw_interests = text(row.get("interests"), "interests", record=record, max_len=1000)
        interests = sorted({i.strip().lower() for i in (raw_interests or "").split(separator) if i.strip()})
        identity: dict[str, str] = {}
        for source_field, target in (
            ("name", "full_name"),
            ("email", "email"),
            ("phone", "phone"),
            ("country", "country"),
            ("city", "city"),
            ("postcode", "postcode"),
            ("birth_date", "date_of_birth"),
        ):
            value = text(row.get(source_field), source_field, record=record, max_len=300)
            if value:
                identity[target] = value
        consents: list[ConsentSignal] = []
        opt_in = (text(row.get("marketing_opt_in"), "marketing_opt_in", record=record, max_len=20) or "").lower()
        if opt_in in YES or opt_in in NO:
            consents.append(
                ConsentSignal(
                    "marketing_email",
                    "granted" if opt_in in YES else "denied",
                    source=self.source_name,
                    notice_version=str(self.config.get("notice_version") or ""),
                    evidence={"response": response_id},
                )
            )
        elif opt_in:
            raise RecordRejected("must be yes or no", record=record, field="marketing_opt_in")
        properties: dict[str, Any] = {"interests": interests, "sentiment": sentiment(feedback, nps, csat)}
        if nps is not None:
            properties["nps"] = int(nps)
        if csat is not None:
            properties["csat"] = int(csat)
        event = EventData("survey", when, "Survey Submitted", channel="survey", properties=properties)
        return [
            IncomingRecord(
                source=self.source_name,
                stream=self.stream_name,
                source_record_id=response_id,
                occurred_at=when,
                payload=dict(item.data),
                identity=identity,
                events=[event],
                consents=consents,
                position=item.position,
            )
        ]
