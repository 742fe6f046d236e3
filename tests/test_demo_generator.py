"""Tests of the deterministic demo data generator (cdp.demo) and its population model."""

from __future__ import annotations

import collections
import csv
import itertools
import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any

import phonenumbers
import pytest

from cdp._exceptions import InputError
from cdp.connectors.pos import POS_COLUMNS
from cdp.connectors.survey import SURVEY_COLUMNS
from cdp.demo import DemoFiles, generate
from cdp.demo import _noise as noise
from cdp.demo._catalog import CATEGORIES, FEEDBACK
from cdp.demo._population import Person, PopulationBuilder
from cdp.demo._sink import Clock, Sink
from cdp.demo._web import WebRenderer

AS_OF = date(2026, 11, 1)
POS_HEADER = list(POS_COLUMNS)
SURVEY_HEADER = list(SURVEY_COLUMNS)
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
HAN = re.compile(r"[\u4e00-\u9fff]")
CURRENCY = {"US": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "CN": "CNY"}


class Demo:
    """The parsed files of one generation, read the way a connector would."""

    def __init__(self, files: DemoFiles) -> None:
        self.files = files
        self.web = [json.loads(line) for line in files.web.read_text(encoding="utf-8").splitlines()]
        self.pos = self._csv(files.pos)
        self.survey = self._csv(files.survey)
        self.labels = self._csv(files.labels)
        self.entity = {(r["source"], r["record_id"]): r["entity_id"] for r in self.labels}

    @staticmethod
    def _csv(path: Path) -> list[dict[str, str]]:
        with path.open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))

    def records(self) -> list[tuple[str, str, str]]:
        """(source, record_id, timestamp) of every record in the three source files."""
        return (
            [("web", w["messageId"], w["timestamp"]) for w in self.web]
            + [("pos", r["transaction_id"], r["occurred_at"]) for r in self.pos]
            + [("survey", r["response_id"], r["submitted_at"]) for r in self.survey]
        )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    return Demo(generate(tmp_path_factory.mktemp("demo"), customers=400, seed=42, as_of=AS_OF))


def _bytes(files: DemoFiles) -> list[bytes]:
    return [p.read_bytes() for p in (files.web, files.pos, files.survey, files.labels)]


def _ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


# determinism and API ----------------------------------------------------------------------------------------
def test_same_inputs_give_byte_identical_files_and_other_inputs_differ(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", customers=120, seed=7)
    b = generate(tmp_path / "b", customers=120, seed=7)
    other_seed = generate(tmp_path / "c", customers=120, seed=8)
    other_day = generate(tmp_path / "d", customers=120, seed=7, as_of=date(2025, 1, 1))
    assert _bytes(a) == _bytes(b)
    assert all(x != y for x, y in zip(_bytes(a), _bytes(other_seed), strict=True))
    assert _bytes(a)[0] != _bytes(other_day)[0]
    assert a == DemoFiles(
        web=tmp_path / "a" / "web_events.jsonl",
        pos=tmp_path / "a" / "pos_transactions.csv",
        survey=tmp_path / "a" / "survey_responses.csv",
        labels=tmp_path / "a" / "labels.csv",
        customers=120,
    )
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        ["web_events.jsonl", "pos_transactions.csv", "survey_responses.csv", "labels.csv"]
    )  # no temporary files left behind


@pytest.mark.parametrize("customers", [0, -5])
def test_rejects_a_non_positive_customer_count(tmp_path: Path, customers: int) -> None:
    with pytest.raises(InputError):
        generate(tmp_path, customers=customers)


def test_counts_scale_with_customers(tmp_path: Path, demo: Demo) -> None:
    small = Demo(generate(tmp_path, customers=100, seed=42))
    assert len({r["entity_id"] for r in small.labels}) == 100
    assert len({r["entity_id"] for r in demo.labels}) == 400
    for name in ("web", "pos", "survey", "labels"):
        ratio = len(getattr(demo, name)) / len(getattr(small, name))
        assert 2.0 < ratio < 8.0, (name, ratio)


# file formats -----------------------------------------------------------------------------------------------
def test_csv_files_have_the_exact_headers_and_crlf_line_ends(demo: Demo) -> None:
    for path, header in ((demo.files.pos, POS_HEADER), (demo.files.survey, SURVEY_HEADER)):
        raw = path.read_bytes()
        assert raw.decode("utf-8").split("\r\n", 1)[0] == ",".join(header)
        assert raw.count(b"\r\n") == raw.count(b"\n")
    assert demo.files.labels.read_bytes().startswith(b"source,record_id,entity_id\r\n")
    assert list(demo.pos[0]) == POS_HEADER
    assert list(demo.survey[0]) == SURVEY_HEADER


def test_web_lines_are_segment_calls(demo: Demo) -> None:
    assert len({w["messageId"] for w in demo.web}) == len(demo.web)
    types = collections.Counter(w["type"] for w in demo.web)
    assert set(types) == {"identify", "track", "page", "alias"}
    for w in demo.web:
        assert TIMESTAMP.match(w["timestamp"])
        assert w.get("userId") or w.get("anonymousId")
        assert set(w["context"]) <= {"ip", "locale", "consent"}
        if w["type"] == "identify":
            assert w["userId"].startswith("u_") and w["anonymousId"]
            assert set(w["traits"]) <= {
                "email",
                "phone",
                "firstName",
                "lastName",
                "name",
                "birthday",
                "address",
                "gender",
                "loyaltyId",
            }
            address = w["traits"].get("address")
            if address:
                assert set(address) <= {"street", "city", "state", "postalCode", "country"}
                assert address["country"] in CURRENCY
        elif w["type"] == "alias":
            assert w["previousId"] and w["userId"].startswith("u_")
        elif w["type"] == "page":
            assert set(w["properties"]) == {"path", "url", "category"} and w["name"]
        else:
            props = w["properties"]
            if w["event"] == "Order Completed":
                total = sum(p["price"] * p["quantity"] for p in props["products"])
                assert props["revenue"] == pytest.approx(total)
                assert props["order_id"] and props["currency"] in CURRENCY.values()
                assert props["category"] in CATEGORIES
            elif w["event"] in ("Product Viewed", "Product Added"):
                assert set(props) == {"sku", "category", "price"} and props["category"] in CATEGORIES
            else:
                assert w["event"] == "Newsletter Subscribed"
    consent = [w["context"]["consent"] for w in demo.web if "consent" in w["context"]]
    assert consent and all(set(c["categoryPreferences"]) == {"marketing", "analytics", "advertising"} for c in consent)
    assert all(w["type"] == "identify" for w in demo.web if "consent" in w["context"])


def test_anonymous_activity_is_linked_only_by_identify_or_alias(demo: Demo) -> None:
    linked: dict[tuple[str, str], str] = {}
    for w in demo.web:
        if w["type"] in ("identify", "alias"):
            key = (w["userId"], w["anonymousId"] if w["type"] == "identify" else w["previousId"])
            linked[key] = min(linked.get(key, w["timestamp"]), w["timestamp"])
    activity = [w for w in demo.web if w["type"] in ("track", "page")]
    assert all(w["anonymousId"] for w in activity)
    for w in activity:
        if "userId" in w:  # a userId only after that device was identified or aliased
            assert linked[(w["userId"], w["anonymousId"])] <= w["timestamp"]
    anonymous = sum("userId" not in w for w in activity)
    assert 0.05 * len(activity) < anonymous < 0.7 * len(activity)
    web_people = {demo.entity[("web", w["messageId"])] for w in demo.web}
    identified = {demo.entity[("web", w["messageId"])] for w in demo.web if w["type"] == "identify"}
    assert identified == web_people  # every web user has at least one identify call
    assert 3.0 < len(activity) / len(web_people) < 7.5  # ~5 track/page calls per web user


def test_pos_rows_are_consistent_transactions(demo: Demo) -> None:
    assert len({r["transaction_id"] for r in demo.pos}) == len(demo.pos)
    for r in demo.pos:
        items = json.loads(r["line_items"])
        assert items and all(set(i) == {"sku", "category", "quantity", "unit_price"} for i in items)
        assert r["amount"] == f"{sum(i['quantity'] * i['unit_price'] for i in items):.2f}"
        assert r["currency"] == CURRENCY[r["store_id"][:2]]
        assert r["country"] in ("", r["store_id"][:2])
        assert TIMESTAMP.match(r["occurred_at"])
    customer = ("customer_name", "customer_phone", "customer_email", "loyalty_id", "city", "postcode")
    walk_ins = sum(not any(r[k] for k in customer) for r in demo.pos)
    assert 0.15 * len(demo.pos) < walk_ins < 0.6 * len(demo.pos)
    rows_per_buyer = collections.Counter(demo.entity[("pos", r["transaction_id"])] for r in demo.pos)
    assert max(rows_per_buyer.values()) >= 5 and sum(n > 1 for n in rows_per_buyer.values()) > len(rows_per_buyer) / 3
    cards: dict[str, set[str]] = collections.defaultdict(set)
    for r in demo.pos:
        if r["loyalty_id"]:
            cards[r["loyalty_id"]].add(demo.entity[("pos", r["transaction_id"])])
    assert cards and all(len(owners) == 1 for owners in cards.values())


def test_survey_answers_are_in_range_and_feedback_tone_follows_the_scores(demo: Demo) -> None:
    tone_of = {text: tone for language in FEEDBACK.values() for tone, texts in language.items() for text in texts}
    checked = 0
    for r in demo.survey:
        assert r["nps"] == "" or 0 <= int(r["nps"]) <= 10
        assert r["csat"] == "" or 1 <= int(r["csat"]) <= 5
        assert r["interests"] == "" or set(r["interests"].split(";")) <= set(CATEGORIES)
        assert r["marketing_opt_in"] in ("yes", "no", "")
        assert r["country"] == "" or r["country"] in CURRENCY
        if r["feedback"] and r["nps"]:
            nps = int(r["nps"])
            assert tone_of[r["feedback"]] == ("pos" if nps >= 9 else "neu" if nps >= 7 else "neg")
            checked += 1
    assert checked > 20
    assert any(HAN.search(r["feedback"]) for r in demo.survey)
    assert {"", "yes", "no"} == {r["marketing_opt_in"] for r in demo.survey}


# ground truth -----------------------------------------------------------------------------------------------
def test_labels_cover_every_record_exactly_once(demo: Demo) -> None:
    labelled = [(r["source"], r["record_id"]) for r in demo.labels]
    records = [(source, record_id) for source, record_id, _ in demo.records()]
    assert len(labelled) == len(set(labelled)) == len(records)
    assert labelled == records  # same order as the files: web, then pos, then survey
    assert all(re.fullmatch(r"e_\d{6}", r["entity_id"]) for r in demo.labels)


def test_files_are_in_time_order_not_grouped_by_person(demo: Demo) -> None:
    for source in ("web", "pos", "survey"):
        stamps = [t for s, _, t in demo.records() if s == source]
        assert stamps == sorted(stamps)
    entities = [r["entity_id"] for r in demo.labels if r["source"] == "pos"]
    runs = sum(a != b for a, b in itertools.pairwise(entities))
    assert runs > 0.8 * len(entities)  # consecutive rows rarely belong to the same person


def test_timestamps_lie_in_the_two_years_before_as_of_and_give_lifecycle_stages(demo: Demo) -> None:
    start = datetime(AS_OF.year, AS_OF.month, AS_OF.day, tzinfo=UTC) - timedelta(days=730)
    end = start + timedelta(days=730)
    first: dict[str, datetime] = {}
    last: dict[str, datetime] = {}
    for source, record_id, text in demo.records():
        t = _ts(text)
        assert start <= t < end
        entity = demo.entity[(source, record_id)]
        first[entity] = min(first.get(entity, t), t)
        last[entity] = max(last.get(entity, t), t)
    idle = [(end - last[e]).days for e in last]
    new = sum((end - first[e]).days <= 30 for e in first)
    assert 0.03 * len(first) < new < 0.2 * len(first)
    assert 0.25 * len(idle) < sum(d < 90 for d in idle) < 0.6 * len(idle)  # active
    assert 0.15 * len(idle) < sum(183 <= d < 548 for d in idle) < 0.45 * len(idle)  # lapsed 6-18 months


def test_people_appear_in_one_to_three_sources_with_overlap(demo: Demo) -> None:
    sources: dict[str, set[str]] = collections.defaultdict(set)
    for r in demo.labels:
        sources[r["entity_id"]].add(r["source"])
    n = len(sources)
    shares = {s: sum(s in v for v in sources.values()) / n for s in ("web", "pos", "survey")}
    assert 0.5 < shares["web"] < 0.72 and 0.5 < shares["pos"] < 0.72 and 0.15 < shares["survey"] < 0.35
    assert sum(len(v) == 3 for v in sources.values()) >= 10
    assert 0.3 < sum(len(v) >= 2 for v in sources.values()) / n < 0.55


def test_households_share_an_address_or_home_phone_but_remain_distinct_entities(demo: Demo) -> None:
    locale_country = {"en-US": "US", "en-GB": "GB", "de-DE": "DE", "fr-FR": "FR", "zh-CN": "CN"}
    holders: dict[tuple[str, ...], set[str]] = collections.defaultdict(set)

    def phone(text: str, country: str, entity: str) -> None:
        number = phonenumbers.parse(text, country)
        holders[("phone", phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))].add(entity)

    for w in demo.web:
        entity, traits = demo.entity[("web", w["messageId"])], w.get("traits", {})
        address = traits.get("address")
        if address and address.get("postalCode"):
            number = re.search(r"\d+", address["street"])
            key = ("address", address["postalCode"].upper().replace(" ", ""), number.group() if number else "")
            holders[key].add(entity)
        if "phone" in traits:
            phone(traits["phone"], address["country"] if address else locale_country[w["context"]["locale"]], entity)
    for r in demo.pos:
        if r["customer_phone"]:
            phone(r["customer_phone"], r["store_id"][:2], demo.entity[("pos", r["transaction_id"])])
    for r in demo.survey:
        if r["phone"] and r["country"]:
            phone(r["phone"], r["country"], demo.entity[("survey", r["response_id"])])
    assert sum(len(entities) > 1 for entities in holders.values()) >= 2


def test_population_households_and_common_names() -> None:
    people = list(PopulationBuilder(Random(3), AS_OF, 2000).people(2000))
    assert len(people) == len({p.entity_id for p in people}) == 2000
    households: dict[int, list[Person]] = collections.defaultdict(list)
    for p in people:
        if p.household is not None:
            households[id(p.household)].append(p)
    in_households = sum(len(m) for m in households.values())
    assert 0.10 < in_households / len(people) < 0.22
    for members in households.values():
        assert 2 <= len(members) <= 4
        assert len({m.address.postcode for m in members}) == 1
        assert len({m.landline.e164 if m.landline else "" for m in members}) == 1
        assert len({m.mobile.e164 for m in members}) == len(members)
        if members[0].culture not in ("cn", "cnx"):
            assert len({m.last for m in members}) == 1
    assert any(m[0].landline is not None for m in households.values())
    # Common names recur among unrelated people.
    names = collections.Counter(
        (p.han_family + p.han_given) if p.han_family else f"{p.first} {p.last}" for p in people if p.household is None
    )
    assert names.most_common(1)[0][1] >= 3
    assert len({p.email for p in people}) == len(people)


# corruption model -------------------------------------------------------------------------------------------
def test_chinese_people_appear_in_han_characters_and_in_pinyin(demo: Demo) -> None:
    def names_in(source: str, record: dict[str, Any]) -> list[str]:
        if source == "web":
            traits = record.get("traits", {})
            assert isinstance(traits, dict)
            return [str(traits[k]) for k in ("name", "firstName", "lastName") if k in traits]
        return [str(record["customer_name" if source == "pos" else "name"])]

    scripts: dict[str, set[str]] = collections.defaultdict(set)
    for source, rows, key in (
        ("web", demo.web, "messageId"),
        ("pos", demo.pos, "transaction_id"),
        ("survey", demo.survey, "response_id"),
    ):
        for row in rows:
            for text in names_in(source, row):
                if text.strip():
                    script = "han" if HAN.search(text) else "latin"
                    scripts[demo.entity[(source, row[key])]].add(script)
    assert sum(s == {"han", "latin"} for s in scripts.values()) >= 3


def test_records_carry_the_documented_corruptions(demo: Demo) -> None:
    identify = [w["traits"] for w in demo.web if w["type"] == "identify"]
    emails = [t["email"] for t in identify if "email" in t] + [r["email"] for r in demo.survey if r["email"]]
    assert any("+" in e.split("@")[0] for e in emails)
    assert any(e != e.lower() for e in emails)
    birthdays = [t["birthday"] for t in identify if "birthday" in t] + [r["birth_date"] for r in demo.survey]
    assert any(re.fullmatch(r"\d{4}-\d{2}-\d{2}", b) for b in birthdays)
    assert any(re.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}", b) for b in birthdays)
    assert any(re.fullmatch(r"\d{2}\.\d{2}\.\d{4}", b) for b in birthdays)
    assert any("年" in b for b in birthdays)
    phones = [t["phone"] for t in identify if "phone" in t] + [r["customer_phone"] for r in demo.pos]
    assert any(p.startswith("+") for p in phones) and any(p[0] in "0123456789(" for p in phones if p)
    full_names = [t["name"] for t in identify if "name" in t]
    assert full_names and any("firstName" in t for t in identify)
    assert any(n != n.strip() or "  " in n or n.isupper() for n in full_names + [r["name"] for r in demo.survey])
    zips = [r["postcode"] for r in demo.pos if r["country"] in ("US", "GB", "DE", "FR", "CN")]
    assert "" in zips


def test_every_phone_format_parses_to_the_true_number() -> None:
    builder = PopulationBuilder(Random(11), AS_OF, 300)
    seen: collections.Counter[str] = collections.Counter()
    for p in builder.people(300):
        for phone in (p.mobile, p.landline):
            if phone is None:
                continue
            seen[phone.country] += 1
            for text in noise.phone_formats(phone.country, phone.nsn, phone.split):
                parsed = phonenumbers.parse(text, phone.country)
                assert phonenumbers.is_valid_number(parsed), (text, phone.country)
                assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == phone.e164
    assert set(seen) == {"US", "GB", "DE", "FR", "CN"}


def test_typo_is_a_single_edit() -> None:
    rng = Random(5)
    for word in ("Katherine", "Schmidt", "Garcia", "Oliver"):
        for _ in range(50):
            changed = noise.typo(rng, word)
            assert changed != word
            assert abs(len(changed) - len(word)) <= 1
            if len(changed) == len(word):
                assert sum(a != b for a, b in zip(changed, word, strict=True)) <= 2


def test_name_and_email_variants_follow_the_corruption_model() -> None:
    rng = Random(9)
    person = next(p for p in PopulationBuilder(Random(1), AS_OF, 50).people(50) if p.culture in ("us", "gb"))
    person.first, person.last, person.former_last = "Robert", "Müller", ""
    person.email, person.email2 = "robert.mueller@gmail.com", ""
    full = {noise.full_name(rng, person, 100, "pos") for _ in range(3000)}
    assert {"Robert Müller", "Bob Müller", "Robert Mueller", "Robert Muller"} <= full
    assert any(n.startswith(("R. ", "R ")) for n in full)
    assert any(n.startswith(("Müller, ", "Müller R")) for n in full)
    assert any(n.isupper() for n in full) and any(n != n.strip() for n in full)
    typos = {n for n in full if n.endswith(" Müller") and n.split()[0] not in ("Robert", "Bob", "Rob", "Bobby")}
    assert any(len(n.split()[0]) > 2 for n in typos)  # one-edit typos of the first name
    emails = {noise.email(rng, person) for _ in range(2000)}
    assert {"robert.mueller@gmail.com", "robertmueller@gmail.com"} <= emails
    assert any("+" in e for e in emails) and any(e != e.lower() for e in emails)

    chinese = next(p for p in PopulationBuilder(Random(2), AS_OF, 400).people(400) if p.culture == "cn")
    chinese.han_family, chinese.han_given, chinese.py_family, chinese.py_given = "王", "伟", ("Wang",), ("Wei",)
    chinese.english, chinese.canto = "", "Wong"
    full = {noise.full_name(rng, chinese, 100, "web") for _ in range(2000)}
    assert {"王伟", "Wang Wei", "Wei Wang", "WANG Wei"} <= full
    assert "Wong Wei" not in full  # Cantonese spellings only for the diaspora
    assert any(HAN.search(n) and n != "王伟" for n in full)  # spaced or homophone-typo variants


class _Recorder(Sink):
    """A sink that keeps records in memory (for rendering a few chosen people)."""

    def __init__(self) -> None:
        super().__init__(Path("unused"))
        self.records: list[tuple[str, dict[str, Any]]] = []

    def add(self, source: str, t: int, record_id: str, entity: str, payload: str) -> None:
        self.records.append((entity, json.loads(payload)))


def test_a_shared_household_device_is_identified_as_several_people() -> None:
    rng = Random(4)
    people = list(PopulationBuilder(rng, AS_OF, 3000).people(3000))
    sharing = [p for p in people if p.web and p.household is not None and p.household.shared_anon]
    assert sharing
    sink = _Recorder()
    renderer = WebRenderer(rng, sink, Clock(AS_OF), 3000)
    for p in sharing:
        renderer.render(p)
    identified_as: dict[str, set[str]] = collections.defaultdict(set)
    for entity, call in sink.records:
        if call["type"] == "identify":
            identified_as[call["anonymousId"]].add(entity)
        elif call["type"] == "alias":
            identified_as[call["previousId"]].add(entity)
    shared = {p.household.shared_anon for p in sharing if p.household is not None}
    assert any(len(identified_as[anon]) > 1 for anon in shared)
    assert all(len(entities) == 1 for anon, entities in identified_as.items() if anon not in shared)
