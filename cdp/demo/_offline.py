"""Offline sources: till transactions (POS) and survey responses for one person.

POS rows are the hard half of identity resolution: most carry little or nothing
about the buyer, loyalty rows repeat whatever was typed at enrolment, and the
rest is keyed by a cashier in a hurry. Survey answers are self-reported, in one
free-text name field, with scores and feedback that agree with each other.
Probabilities follow docs/demo-data.md ("POS behaviour", "Survey behaviour").
"""

from __future__ import annotations

import json
import string
from random import Random
from typing import Final

from cdp.demo import _noise as noise
from cdp.demo._catalog import CATEGORIES, FEEDBACK
from cdp.demo._places import CITIES, CURRENCIES, PLACEHOLDER_EMAILS
from cdp.demo._population import Person, Weighted
from cdp.demo._sink import Clock, Sink, csv_row
from cdp.demo._web import local_price, pick_product

POS_HEADER: Final = (
    "transaction_id,store_id,occurred_at,customer_name,customer_phone,customer_email,loyalty_id,"
    "line_items,amount,currency,city,state,postcode,country"
)
SURVEY_HEADER: Final = (
    "response_id,submitted_at,name,email,phone,country,city,postcode,birth_date,nps,csat,interests,feedback,"
    "marketing_opt_in"
)

TX_MEAN_EXTRA: Final = 3.0
TX_CAP: Final = 50
HOME_STORE: Final = 0.90
CARD_SCANNED: Final = 0.80
REKEYED: Final = 0.10
ENROLMENT: Final = {"name": 0.95, "phone": 0.80, "email": 0.60, "address": 0.70}
# Rows without a card: nothing (walk-in), e-receipt email, phone lookup, full delivery details.
NO_CARD: Final = Weighted(["walk-in", "email", "phone", "delivery"], [65, 15, 10, 10])
PLACEHOLDER: Final = 0.005
ITEMS: Final = Weighted([1, 2, 3, 4, 5], [45, 25, 15, 10, 5])
QUANTITY: Final = Weighted([1, 2, 3], [75, 18, 7])

RESPONSES: Final = Weighted([1, 2], [88, 12])
SURVEY_FIELDS: Final = {
    "name": 0.90,
    "email": 0.85,
    "phone": 0.45,
    "country": 0.97,
    "city": 0.75,
    "postcode": 0.55,
    "birth_date": 0.40,
    "nps": 0.93,
    "csat": 0.88,
    "interests": 0.90,
    "feedback": 0.75,
    "opt_in": 0.80,
}
OPT_IN_AGREES: Final = 0.90
EXTRA_INTEREST: Final = 0.20
NATIVE_FEEDBACK: Final = {"CN": ("zh", 0.80), "DE": ("de", 0.60), "FR": ("fr", 0.60)}


def _stores() -> dict[str, list[str]]:
    """Store ids per city name: one store per 8 weight points of the city, at least one."""
    by_city: dict[str, list[str]] = {}
    counters: dict[str, int] = {}
    for city in CITIES:
        for _ in range(1 + city.weight // 8):
            counters[city.country] = counters.get(city.country, 0) + 1
            by_city.setdefault(city.name, []).append(f"{city.country}{counters[city.country]:03d}")
    return by_city


STORES_BY_CITY: Final = _stores()
STORES_BY_COUNTRY: Final = {
    country: [s for c in CITIES if c.country == country for s in STORES_BY_CITY[c.name]]
    for country in dict.fromkeys(c.country for c in CITIES)
}
_ALNUM: Final = string.ascii_letters + string.digits

Customer = tuple[str, str, str, str, str, str, str, str]  # name, phone, email, loyalty, city, state, postcode, country


class PosRenderer:
    """Writes one person's till transactions to the sink."""

    def __init__(self, rng: Random, sink: Sink, clock: Clock) -> None:
        self.rng = rng
        self.sink = sink
        self.clock = clock

    def _email(self, p: Person) -> str:
        return self.rng.choice(PLACEHOLDER_EMAILS) if self.rng.random() < PLACEHOLDER else noise.email(self.rng, p)

    def _customer(self, p: Person, day: int, kind: str, presence: dict[str, float] | None = None) -> Customer:
        """Customer fields as captured: ``kind`` is a NO_CARD outcome or "card" (with ``presence`` odds)."""
        rng = self.rng
        if kind == "walk-in":
            return ("",) * 8
        if kind == "email":
            return ("", "", self._email(p), "", "", "", "", "")
        if kind == "phone":
            return ("", noise.phone(rng, p, keyed=True), "", "", "", "", "", "")
        odds = presence or {"name": 1.0, "phone": 1.0, "email": 1.0, "address": 1.0}
        name = noise.full_name(rng, p, day, "pos") if rng.random() < odds["name"] else ""
        phone = noise.phone(rng, p, keyed=True) if rng.random() < odds["phone"] else ""
        email = self._email(p) if rng.random() < odds["email"] else ""
        city = state = postcode = country = ""
        if rng.random() < odds["address"]:
            a = p.address_on(day)
            city, state = noise.city(rng, a.city), noise.state(rng, a.city)
            postcode, country = noise.postcode(rng, a, keyed=True), a.city.country
        return (name, phone, email, p.loyalty_id if kind == "card" else "", city, state, postcode, country)

    def render(self, p: Person) -> None:
        rng = self.rng
        home = rng.choice(STORES_BY_CITY[p.address.city.name])
        enrolment = self._customer(p, p.first_day, "card", ENROLMENT) if p.loyalty_id else None
        currency = CURRENCIES[p.country][0]
        n = max(p.min_records("pos"), min(TX_CAP, 1 + int(rng.expovariate(1 / TX_MEAN_EXTRA))))
        for i in range(n):
            day = p.day_of(rng, "pos", i, n)
            t = self.clock.at(rng, day, p.country, 9, 21)
            store = home if rng.random() < HOME_STORE else rng.choice(STORES_BY_COUNTRY[p.country])
            if enrolment is not None and rng.random() < CARD_SCANNED:
                customer = self._customer(p, day, "card", ENROLMENT) if rng.random() < REKEYED else enrolment
            else:
                customer = self._customer(p, day, NO_CARD.pick(rng))
            items, amount = [], 0.0
            for _ in range(ITEMS.pick(rng)):
                sku, category, usd = pick_product(rng, p)
                price, quantity = local_price(usd, p.country), QUANTITY.pick(rng)
                items.append({"sku": sku, "category": category, "quantity": quantity, "unit_price": price})
                amount += price * quantity
            txn = f"txn_{rng.getrandbits(64):016x}"
            row = [
                txn,
                store,
                self.clock.iso(t),
                *customer[:4],
                json.dumps(items, ensure_ascii=False, separators=(",", ":")),
                f"{amount:.2f}",
                currency,
                *customer[4:],
            ]
            self.sink.add("pos", t, txn, p.entity_id, csv_row(row))


class SurveyRenderer:
    """Writes one person's survey responses to the sink."""

    def __init__(self, rng: Random, sink: Sink, clock: Clock) -> None:
        self.rng = rng
        self.sink = sink
        self.clock = clock

    def _field(self, name: str) -> bool:
        return self.rng.random() < SURVEY_FIELDS[name]

    def render(self, p: Person) -> None:
        rng = self.rng
        n = max(p.min_records("survey"), RESPONSES.pick(rng))
        for i in range(n):
            day = p.day_of(rng, "survey", i, n)
            t = self.clock.at(rng, day, p.country, 7, 24)
            a = p.address_on(day)
            nps = min(10, max(0, round(p.satisfaction * 10 + rng.gauss(0, 1.2)))) if self._field("nps") else None
            csat = min(5, max(1, round(1 + p.satisfaction * 4 + rng.gauss(0, 0.6)))) if self._field("csat") else None
            interests = ""
            if self._field("interests"):
                chosen = set(p.interests)
                if rng.random() < EXTRA_INTEREST:
                    chosen.add(rng.choice(CATEGORIES))
                interests = ";".join(c for c in CATEGORIES if c in chosen)
            opt_in = ""
            if self._field("opt_in"):
                agrees = rng.random() < OPT_IN_AGREES
                opt_in = "yes" if p.consent[0] == agrees else "no"
            response_id = "R_" + "".join(rng.choice(_ALNUM) for _ in range(15))
            row = [
                response_id,
                self.clock.iso(t),
                noise.full_name(rng, p, day, "survey") if self._field("name") else "",
                noise.email(rng, p) if self._field("email") else "",
                noise.phone(rng, p, keyed=True) if self._field("phone") else "",
                a.city.country if self._field("country") else "",
                noise.city(rng, a.city) if self._field("city") else "",
                noise.postcode(rng, a, keyed=True) if self._field("postcode") else "",
                noise.birth_date(rng, p) if self._field("birth_date") else "",
                "" if nps is None else str(nps),
                "" if csat is None else str(csat),
                interests,
                self._feedback(p, nps, csat) if self._field("feedback") else "",
                opt_in,
            ]
            self.sink.add("survey", t, response_id, p.entity_id, csv_row(row))

    def _feedback(self, p: Person, nps: int | None, csat: int | None) -> str:
        rng = self.rng
        if nps is not None:
            tone = "pos" if nps >= 9 else "neu" if nps >= 7 else "neg"
        elif csat is not None:
            tone = "pos" if csat >= 4 else "neu" if csat == 3 else "neg"
        else:
            tone = "neu"
        language = "en"
        native = NATIVE_FEEDBACK.get(p.country)
        if native is not None and rng.random() < native[1]:
            language = native[0]
        elif p.culture == "cnx" and rng.random() < 0.2:
            language = "zh"
        return rng.choice(FEEDBACK[language][tone])
