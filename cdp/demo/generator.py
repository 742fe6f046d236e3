"""The deterministic demo data generator behind ``cdp demo`` and the identity-resolution benchmarks.

``generate()`` writes three source files in the formats real connectors see
(Segment web calls, a till export, a survey export) plus ``labels.csv``, the
ground truth of which person made each record. The same ``(customers, seed,
as_of)`` always produces byte-identical files: one ``random.Random(seed)`` drives
everything and nothing reads the clock or global state. The population and its
corruption are documented in docs/demo-data.md.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from random import Random

from cdp._exceptions import InputError
from cdp.demo._offline import POS_HEADER, SURVEY_HEADER, PosRenderer, SurveyRenderer
from cdp.demo._population import PopulationBuilder
from cdp.demo._sink import Clock, Sink
from cdp.demo._web import WebRenderer

WEB_FILE = "web_events.jsonl"
POS_FILE = "pos_transactions.csv"
SURVEY_FILE = "survey_responses.csv"
LABELS_FILE = "labels.csv"


@dataclass(frozen=True)
class DemoFiles:
    """Where ``generate()`` wrote the demo data, and for how many customers."""

    web: Path  # web_events.jsonl
    pos: Path  # pos_transactions.csv
    survey: Path  # survey_responses.csv
    labels: Path  # labels.csv (ground truth)
    customers: int


def generate(out_dir: Path, *, customers: int = 10_000, seed: int = 42, as_of: date = date(2026, 11, 1)) -> DemoFiles:
    """Write the demo files for ``customers`` people into ``out_dir`` (created if missing).

    All timestamps fall in the two years before ``as_of`` (midnight UTC). Existing
    files of the same names are replaced only once the new ones are complete.
    """
    if isinstance(customers, bool) or not isinstance(customers, int) or customers < 1:
        raise InputError(f"customers must be a positive integer, got {customers!r}")
    as_of = date(as_of.year, as_of.month, as_of.day)  # a datetime would otherwise leak its time of day
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = Random(seed)  # noqa: S311 - reproducible synthetic data, not security
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".cdp-demo-") as tmp_name:
        tmp = Path(tmp_name)
        sink = Sink(tmp)
        clock = Clock(as_of)
        web = WebRenderer(rng, sink, clock, customers)
        pos = PosRenderer(rng, sink, clock)
        survey = SurveyRenderer(rng, sink, clock)
        try:
            for person in PopulationBuilder(rng, as_of, customers).people(customers):
                if person.web:
                    web.render(person)
                if person.pos:
                    pos.render(person)
                if person.survey:
                    survey.render(person)
        finally:
            sink.close()
        names = {"web": WEB_FILE, "pos": POS_FILE, "survey": SURVEY_FILE}
        staged = {source: tmp / name for source, name in names.items()}
        sink.write(staged, {"pos": POS_HEADER, "survey": SURVEY_HEADER}, tmp / LABELS_FILE)
        for name in (*names.values(), LABELS_FILE):
            os.replace(tmp / name, out_dir / name)
    return DemoFiles(
        web=out_dir / WEB_FILE,
        pos=out_dir / POS_FILE,
        survey=out_dir / SURVEY_FILE,
        labels=out_dir / LABELS_FILE,
        customers=customers,
    )
