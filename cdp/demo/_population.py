"""The true population behind the demo data: people, households and their identifiers.

Everything here is ground truth. Sources never see a ``Person`` directly; they
render it through ``cdp.demo._noise``, which applies the corruption model. People
are produced lazily, one household at a time, so generating 100,000 customers
never holds more than a household plus the uniqueness indexes in memory. The
probabilities follow docs/demo-data.md ("Population").
"""

from __future__ import annotations

import bisect
import itertools
import unicodedata
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from random import Random
from typing import Final, Generic, TypeVar

from cdp.demo import _names as names
from cdp.demo import _places as places
from cdp.demo._catalog import CATEGORIES
from cdp.demo._places import City

T = TypeVar("T")
CnFamily = tuple[str, tuple[str, ...], str]  # Han, pinyin spellings, Cantonese romanisation
DAYS: Final = 730  # the window: day 0 is as_of - 730 days, day 729 the day before as_of


class Weighted(Generic[T]):
    """Items drawn with fixed weights (a precomputed cumulative table, bisected)."""

    __slots__ = ("_cum", "_items", "_total")

    def __init__(self, items: Sequence[T], weights: Sequence[float]) -> None:
        self._items = tuple(items)
        self._cum = tuple(itertools.accumulate(weights))
        self._total = self._cum[-1]

    @classmethod
    def zipf(cls, items: Sequence[T], shift: float = 8.0, skew: float = 1.0) -> Weighted[T]:
        """Items listed most common first, weighted ``1 / (rank + shift) ** skew``."""
        return cls(items, [1.0 / (rank + shift) ** skew for rank in range(len(items))])

    def pick(self, rng: Random) -> T:
        return self._items[bisect.bisect_right(self._cum, rng.random() * self._total)]


@dataclass(slots=True)
class Address:
    """A postal address; the street line is split around its type word so it can be abbreviated."""

    city: City
    before: str  # text before the street type word ("123 Maple ", "Haupt", "12 ")
    kind: str  # the type word ("Street", "straße", "rue"); "" if none
    after: str  # text after it (" 12" in Germany, " de la Paix" in France)
    unit: str  # apartment, flat or room ("4B"; CN "5栋2单元301室"); "" if none
    postcode: str
    pinyin: str = ""  # Chinese addresses: the street line in pinyin


@dataclass(slots=True)
class Phone:
    """A phone number as its country and national significant number (no trunk prefix)."""

    country: str
    nsn: str
    split: int  # leading digits of nsn that form the area code or mobile prefix

    @property
    def e164(self) -> str:
        return f"+{places.DIAL_CODES[self.country]}{self.nsn}"


@dataclass(slots=True)
class Household:
    """What relatives living together share."""

    address: Address
    landline: Phone | None
    family_email: str
    home_ip: str
    shared_anon: str  # anonymousId of a device used by several members ("" if none)


@dataclass(slots=True, eq=False)
class Person:
    """One true customer (an entity of labels.csv)."""

    entity_id: str
    country: str
    culture: str  # us, hisp, gb, de, fr, cn (China), cnx (Chinese diaspora)
    gender: str  # female, male, non-binary
    first: str  # romanised given name (pinyin for Chinese names)
    last: str
    birth: date
    address: Address
    mobile: Phone
    email: str
    first_day: int  # the person's first and last activity (days into the window)
    last_day: int
    web: bool
    pos: bool
    survey: bool
    home_ip: str
    interests: tuple[str, ...]
    consent: tuple[bool, bool, bool]  # marketing, analytics, advertising
    satisfaction: float  # latent 0..1, drives NPS and CSAT
    han_family: str = ""
    han_given: str = ""
    py_family: tuple[str, ...] = ()
    py_given: tuple[str, ...] = ()
    canto: str = ""
    english: str = ""  # English given name used by some Chinese people
    landline: Phone | None = None
    email2: str = ""
    loyalty_id: str = ""
    household: Household | None = None
    old_address: Address | None = None
    moved_day: int = 0
    former_last: str = ""
    renamed_day: int = 0
    anchors: tuple[str, str] = ("", "")  # sources holding the records on first_day and on last_day

    def min_records(self, source: str) -> int:
        """How many records ``source`` must make so the anchored days are covered (one suffices)."""
        return int(source in self.anchors)

    def day_of(self, rng: Random, source: str, i: int, n: int) -> int:
        """The day of record ``i`` of ``n`` in ``source``: an anchor day, or uniform in the active period.

        A source making a single record that holds both anchors puts it on the last day.
        """
        if i == n - 1 and self.anchors[1] == source:
            return self.last_day
        if i == 0 and self.anchors[0] == source:
            return self.first_day
        return rng.randint(self.first_day, self.last_day)

    def address_on(self, day: int) -> Address:
        return self.old_address if self.old_address is not None and day < self.moved_day else self.address

    def last_on(self, day: int) -> str:
        return self.former_last if self.former_last and day < self.renamed_day else self.last


_FIRST: Final = {
    "us": (Weighted.zipf(names.US_MALE), Weighted.zipf(names.US_FEMALE)),
    "hisp": (Weighted.zipf(names.HISPANIC_MALE), Weighted.zipf(names.HISPANIC_FEMALE)),
    "gb": (Weighted.zipf(names.GB_MALE), Weighted.zipf(names.GB_FEMALE)),
    "de": (Weighted.zipf(names.DE_MALE), Weighted.zipf(names.DE_FEMALE)),
    "fr": (Weighted.zipf(names.FR_MALE), Weighted.zipf(names.FR_FEMALE)),
}
_LAST: Final = {
    "us": Weighted.zipf(names.US_LAST, shift=10.0),
    "hisp": Weighted.zipf(names.HISPANIC_LAST, shift=10.0),
    "gb": Weighted.zipf(names.GB_LAST, shift=10.0),
    "de": Weighted.zipf(names.DE_LAST, shift=10.0),
    "fr": Weighted.zipf(names.FR_LAST, shift=10.0),
}
_CN_FAMILY: Final = Weighted.zipf(names.CN_FAMILY, shift=4.0)
_CN_GIVEN: Final = (Weighted.zipf(names.CN_GIVEN_MALE, shift=10.0), Weighted.zipf(names.CN_GIVEN_FEMALE, shift=10.0))
_CN_ENGLISH: Final = (Weighted.zipf(names.CN_ENGLISH_MALE), Weighted.zipf(names.CN_ENGLISH_FEMALE))
_COUNTRY: Final = Weighted([c for c, _ in places.COUNTRY_WEIGHTS], [w for _, w in places.COUNTRY_WEIGHTS])
_CITY: Final = {
    country: Weighted(
        [c for c in places.CITIES if c.country == country], [c.weight for c in places.CITIES if c.country == country]
    )
    for country in places.DIAL_CODES
}
_DOMAIN: Final = {c: Weighted([d for d, _ in ds], [w for _, w in ds]) for c, ds in places.EMAIL_DOMAINS.items()}
# web, pos, survey membership (docs: "Sources per person")
_SOURCES: Final = Weighted(
    [
        (True, False, False),
        (False, True, False),
        (False, False, True),
        (True, True, False),
        (True, False, True),
        (False, True, True),
        (True, True, True),
    ],
    [25.5, 25.5, 8, 24, 5, 5, 7],
)
_AGE_BANDS: Final = Weighted([(18, 24), (25, 34), (35, 44), (45, 54), (55, 64), (65, 85)], [12, 22, 22, 19, 14, 11])
_IP_FIRST_OCTETS: Final = {
    "US": (24, 50, 67, 68, 73, 98, 107, 174),
    "GB": (2, 31, 51, 81, 86, 90, 92),
    "DE": (46, 77, 79, 84, 87, 91, 93),
    "FR": (2, 78, 80, 82, 86, 90, 109),
    "CN": (36, 58, 60, 101, 111, 112, 113, 114, 115, 116, 117, 119, 120, 123),
}

HOUSEHOLD_START: Final = 0.065  # share of draws that start a household (=> ~15% of people)
HOUSEHOLD_SIZE: Final = Weighted([2, 3, 4], [55, 30, 15])
SHARED_LANDLINE: Final = 0.70
SINGLE_LANDLINE: Final = 0.15
FAMILY_EMAIL: Final = 0.15
SHARED_DEVICE: Final = 0.10
JUNIOR: Final = 0.03
MOVED: Final = 0.05
RENAMED: Final = 0.015
SECOND_EMAIL: Final = 0.30
LOYALTY_CARD: Final = 0.55


def fold_ascii(text: str) -> str:
    """Drop diacritics the way a keyboard without them would (ü -> u, ß -> ss, é -> e)."""
    text = text.replace("ß", "ss").replace("ı", "i")
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def _digits(rng: Random, n: int) -> str:
    return str(rng.randrange(10**n)).zfill(n)


class PopulationBuilder:
    """Draws people household by household, keeping identifiers unique where they should be."""

    def __init__(self, rng: Random, as_of: date, customers: int) -> None:
        self.rng = rng
        self.as_of = as_of
        self.width = max(6, len(str(customers)))
        self._next_entity = 1
        self._emails: set[str] = set()
        self._phones: set[str] = set()
        self._loyalty: set[str] = set()

    # identifiers --------------------------------------------------------------------------------------------
    def _unique_email(self, local: str, domain: str) -> str:
        email = f"{local}@{domain}"
        while email in self._emails:
            email = f"{local}{self.rng.randrange(1, 1000)}@{domain}"
        self._emails.add(email)
        return email

    def email_for(self, p: Person, *, work: bool = False) -> str:
        """A plausible address built from the person's name at a country-typical provider."""
        rng = self.rng
        first = fold_ascii(p.english or p.first).lower().replace("'", "").replace(" ", "").replace("-", "")
        last = fold_ascii(p.last).lower().replace("'", "").replace(" ", "").replace("-", "")
        if work:
            return self._unique_email(f"{first}.{last}", rng.choice(places.WORK_DOMAINS[p.country]))
        domain = _DOMAIN[p.country].pick(rng)
        if domain == "qq.com" and rng.random() < 0.6:
            return self._unique_email(str(rng.randrange(10_000_000, 3_000_000_000)), domain)
        if p.culture in ("cn", "cnx") and not p.english:
            given = "".join(p.py_given).lower()
            u = rng.random()
            local = f"{last}{given}" if u < 0.5 else f"{last}.{given}" if u < 0.7 else f"{given}{last}"
            if rng.random() < 0.6:
                local += str(rng.choice((p.birth.year % 100, p.birth.year, rng.randrange(1, 1000))))
            return self._unique_email(local, domain)
        u = rng.random()
        if u < 0.25:
            local = f"{first}.{last}"
        elif u < 0.40:
            local = f"{first}{last}"
        elif u < 0.55:
            local = f"{first[0]}{last}"
        elif u < 0.60:
            local = f"{first}_{last}"
        elif u < 0.70:
            local = f"{first}.{last}{rng.randrange(1, 100)}"
        elif u < 0.80:
            local = f"{first}{p.birth.year % 100:02d}"
        elif u < 0.85:
            local = f"{last}.{first}"
        elif u < 0.90:
            local = f"{first}{last[0]}{rng.randrange(1, 1000)}"
        else:
            local = f"{first[:4]}{last[:3]}{rng.randrange(1, 100)}"
        return self._unique_email(local, domain)

    def phone(self, country: str, city: City, *, mobile: bool) -> Phone:
        rng = self.rng
        while True:
            if country == "US":
                area = city.area if not mobile or rng.random() < 0.7 else _CITY["US"].pick(rng).area
                nsn, split = f"{area}{rng.randrange(2, 10)}{_digits(rng, 6)}", 3
            elif mobile:
                prefix, rest = rng.choice(places.MOBILE_PREFIXES[country])
                nsn, split = prefix + _digits(rng, rest), (4 if country == "GB" else 1 if country == "FR" else 3)
            else:
                nsn = f"{city.area}{rng.choice(city.first)}{_digits(rng, city.rest)}"
                split = 1 if country == "FR" else len(city.area)
            key = country + nsn
            if key not in self._phones:
                self._phones.add(key)
                return Phone(country, nsn, split)

    def loyalty_id(self) -> str:
        while True:
            card = f"LC{_digits(self.rng, 10)}"
            if card not in self._loyalty:
                self._loyalty.add(card)
                return card

    def address(self, city: City) -> Address:
        rng = self.rng
        country = city.country
        postcode = self._postcode(city)
        if country == "US":
            number = rng.randrange(1, 9900)
            name, kind = rng.choice(places.US_STREETS), rng.choice(places.US_STREET_TYPES)
            unit = f"{rng.randrange(1, 30)}{rng.choice('ABCDEF')}" if rng.random() < 0.2 else ""
            return Address(city, f"{number} {name} ", kind, "", unit, postcode)
        if country == "GB":
            name, kind = rng.choice(places.GB_STREETS)
            unit = str(rng.randrange(1, 40)) if rng.random() < 0.2 else ""
            return Address(city, f"{rng.randrange(1, 250)} {name} ", kind, "", unit, postcode)
        if country == "DE":
            name, kind = rng.choice(places.DE_STREETS)
            house = f"{rng.randrange(1, 180)}{'a' if rng.random() < 0.08 else ''}"
            return Address(city, name, kind, f" {house}", "", postcode)
        if country == "FR":
            kind, name = rng.choice(places.FR_STREETS)
            return Address(city, f"{rng.randrange(1, 160)} ", kind, name, "", postcode)
        street, street_py = rng.choice(places.CN_STREETS)
        number = rng.randrange(1, 1200)
        unit = (
            f"{rng.randrange(1, 30)}栋{rng.randrange(1, 6)}单元{rng.randrange(1, 33)}{rng.randrange(1, 5):02d}室"
            if rng.random() < 0.8
            else ""
        )
        return Address(city, "", "", f"{street}{number}号", unit, postcode, f"{number} {street_py}")

    def _postcode(self, city: City) -> str:
        rng = self.rng
        prefix = rng.choice(city.postcodes)
        if city.country == "GB":
            letters = places.POSTCODE_LETTERS
            return f"{prefix} {rng.randrange(10)}{rng.choice(letters)}{rng.choice(letters)}"
        if city.country in ("US", "DE"):
            return prefix + _digits(rng, 5 - len(prefix))
        if city.country == "CN":
            return prefix + _digits(rng, 6 - len(prefix))
        return prefix

    # people -------------------------------------------------------------------------------------------------
    def _lifecycle(self) -> tuple[int, int]:
        rng = self.rng
        u = rng.random()
        if u < 0.08:  # new: first seen in the last 30 days
            first = rng.randrange(DAYS - 30, DAYS)
            return first, rng.randrange(first, DAYS)
        if u < 0.50:  # active
            last = rng.randrange(DAYS - 90, DAYS)
        elif u < 0.64:  # at risk
            last = rng.randrange(DAYS - 180, DAYS - 90)
        elif u < 0.94:  # lapsed 6-18 months
            last = rng.randrange(DAYS - 548, DAYS - 183)
        else:  # dormant
            last = rng.randrange(0, DAYS - 548)
        first = max(0, last - int(rng.expovariate(1 / 300)))
        return min(first, DAYS - 31), last

    def _birth(self, low: int = 0, high: int = 0) -> date:
        rng = self.rng
        if high:
            age = rng.randint(low, max(low, high))
        else:
            a, b = _AGE_BANDS.pick(rng)
            age = rng.randint(a, b)
        return self.as_of - timedelta(days=age * 365 + rng.randrange(365))

    def person(
        self,
        country: str,
        culture: str,
        gender: str,
        *,
        first: str = "",
        last: str = "",
        cn_family: CnFamily | None = None,
        birth: date | None = None,
        household: Household | None = None,
    ) -> Person:
        """One person; ``first``/``last``/``cn_family`` force names, ``household`` the shared parts."""
        rng = self.rng
        city = household.address.city if household is not None else _CITY[country].pick(rng)
        male = gender == "male" or (gender == "non-binary" and rng.random() < 0.5)
        entity_id = f"e_{self._next_entity:0{self.width}d}"
        self._next_entity += 1
        first_day, last_day = self._lifecycle()
        web, pos, survey = _SOURCES.pick(rng)
        k = rng.choice((1, 1, 2, 2, 3))
        p = Person(
            entity_id=entity_id,
            country=country,
            culture=culture,
            gender=gender,
            first=first,
            last=last,
            birth=birth or self._birth(),
            address=household.address if household else self.address(city),
            mobile=self.phone(country, city, mobile=True),
            email="",
            first_day=first_day,
            last_day=last_day,
            web=web,
            pos=pos,
            survey=survey,
            home_ip=household.home_ip if household else random_ip(rng, country),
            interests=tuple(rng.sample(CATEGORIES, k)),
            consent=(rng.random() < 0.55, rng.random() < 0.80, rng.random() < 0.35),
            satisfaction=rng.betavariate(4, 2),
            household=household,
        )
        sources = [name for name, on in (("web", web), ("pos", pos), ("survey", survey)) if on]
        first_anchor = rng.choice(sources)
        p.anchors = (first_anchor, rng.choice([s for s in sources if s != first_anchor] or sources))
        if culture in ("cn", "cnx"):
            fam = cn_family or _CN_FAMILY.pick(rng)
            given = _CN_GIVEN[0 if male else 1].pick(rng)
            p.han_family, p.py_family, p.canto = fam
            p.han_given, p.py_given = given
            p.first, p.last = given[1][0] + "".join(g.lower() for g in given[1][1:]), fam[1][0]
            if rng.random() < (0.12 if culture == "cn" else 0.45):
                p.english = _CN_ENGLISH[0 if male else 1].pick(rng)
        else:
            p.first = first or _FIRST[culture][0 if male else 1].pick(rng)
            p.last = last or _LAST[culture].pick(rng)
        if household is not None:
            p.landline = household.landline
        elif rng.random() < SINGLE_LANDLINE:
            p.landline = self.phone(country, city, mobile=False)
        p.email = self.email_for(p)
        if household is None and rng.random() < SECOND_EMAIL:
            p.email2 = self.email_for(p, work=rng.random() < 0.5)
        if pos and rng.random() < LOYALTY_CARD:
            p.loyalty_id = self.loyalty_id()
        if household is None and last_day > first_day:
            if rng.random() < MOVED:
                p.old_address = self.address(city if rng.random() < 0.3 else _CITY[country].pick(rng))
                p.moved_day = rng.randrange(first_day + 1, last_day + 1)
            if gender == "female" and culture not in ("cn", "cnx") and rng.random() < RENAMED:
                p.former_last = _LAST[culture].pick(rng)
                p.renamed_day = rng.randrange(first_day + 1, last_day + 1)
        return p

    def people(self, customers: int) -> Iterator[Person]:
        """Yield exactly ``customers`` people, relatives next to each other."""
        rng = self.rng
        made = 0
        while made < customers:
            country = _COUNTRY.pick(rng)
            culture = self._culture(country)
            size = HOUSEHOLD_SIZE.pick(rng) if rng.random() < HOUSEHOLD_START else 1
            size = min(size, customers - made)
            if size > 1:
                group = self._household(country, culture, size)
            else:
                group = [self.person(country, culture, self._gender())]
            made += len(group)
            yield from group

    def _culture(self, country: str) -> str:
        u = self.rng.random()
        if country == "US":
            return "cnx" if u < 0.04 else "hisp" if u < 0.22 else "us"
        if country == "GB":
            return "cnx" if u < 0.03 else "gb"
        return country.lower()

    def _gender(self) -> str:
        u = self.rng.random()
        return "female" if u < 0.50 else "male" if u < 0.99 else "non-binary"

    def _relation(self, index: int, head_age: int) -> str:
        u = self.rng.random()
        if index == 1:
            relation = "spouse" if u < 0.75 else "child" if u < 0.90 else "sibling"
        else:
            relation = "child" if u < 0.80 else "sibling"
        return "sibling" if relation == "child" and head_age < 40 else relation

    def _household(self, country: str, culture: str, size: int) -> list[Person]:
        rng = self.rng
        city = _CITY[country].pick(rng)
        landline = self.phone(country, city, mobile=False) if rng.random() < SHARED_LANDLINE else None
        home = Household(self.address(city), landline, "", random_ip(rng, country), "")
        chinese = culture in ("cn", "cnx")
        head_gender = "male" if chinese else self._gender()
        head = self.person(country, culture, head_gender, household=home, birth=self._birth(30, 80))
        family: CnFamily | None = (head.han_family, head.py_family, head.canto) if chinese else None
        head_age = (self.as_of - head.birth).days // 365
        members = [head]
        for i in range(1, size):
            relation = self._relation(i, head_age)
            gender = self._gender()
            first = ""
            if relation == "spouse":
                gender = {"male": "female", "female": "male"}.get(head.gender, gender)
                gender = gender if rng.random() < 0.95 else head.gender
                birth = head.birth + timedelta(days=rng.randint(-6 * 365, 6 * 365))
            elif relation == "child":
                birth = self._birth(18, head_age - 22)
                if gender == head.gender == "male" and not chinese and rng.random() < JUNIOR:
                    first = head.first  # a "Jr." shares his father's full name
            else:
                birth = head.birth + timedelta(days=rng.randint(-10 * 365, 10 * 365))
            own_family = chinese and relation == "spouse"  # Chinese wives keep their family name
            members.append(
                self.person(
                    country,
                    culture,
                    gender,
                    first=first,
                    last="" if chinese else head.last,
                    cn_family=None if own_family else family,
                    birth=birth,
                    household=home,
                )
            )
        if rng.random() < FAMILY_EMAIL:
            local = "the" + fold_ascii(head.last).lower().replace(" ", "").replace("'", "") + "s"
            home.family_email = self._unique_email(local, _DOMAIN[country].pick(rng))
        for m in members:
            m.email2 = home.family_email
        if sum(m.web for m in members) >= 2 and rng.random() < SHARED_DEVICE:
            home.shared_anon = uuid4(rng)
        return members


def random_ip(rng: Random, country: str) -> str:
    """A public-looking IPv4 address from a range common in the country."""
    octets = (rng.randrange(256), rng.randrange(256), rng.randrange(1, 255))
    return f"{rng.choice(_IP_FIRST_OCTETS[country])}.{octets[0]}.{octets[1]}.{octets[2]}"


def uuid4(rng: Random) -> str:
    """A random (version 4) UUID drawn from ``rng``, never from the OS."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
