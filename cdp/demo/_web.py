"""Web behaviour: Segment identify/track/page/alias calls for one person.

The point of this module is the identity graph a real website produces: devices
browse anonymously, an identify call ties a device's ``anonymousId`` to a
``userId``, other devices are linked later (or never), a few people open a
second account and a few households share a computer. Probabilities follow
docs/demo-data.md ("Web behaviour").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from random import Random
from typing import Any, Final

from cdp.demo import _noise as noise
from cdp.demo._catalog import CATEGORIES, NEWSLETTER_LISTS, PRODUCTS, SITE_PAGES, SITE_URL
from cdp.demo._places import CURRENCIES, LOCALES
from cdp.demo._population import Person, Weighted, random_ip, uuid4
from cdp.demo._sink import DAY, END, Clock, Sink

DEVICES: Final = Weighted([1, 2, 3], [65, 25, 10])
IDENTIFIES: Final = Weighted([1, 2, 3, 4], [55, 25, 12, 8])
DEVICE_LINK: Final = Weighted(["identify", "alias", "never"], [60, 15, 25])
SECOND_ACCOUNT: Final = 0.04 / 0.30  # 4% of web users; only people with a second email can open one
EVENT_MEAN: Final = 5.0
EVENT_CAP: Final = 60
EVENTS: Final = Weighted(
    ["page", "Product Viewed", "Product Added", "Order Completed", "Newsletter Subscribed"], [40, 35, 15, 7, 3]
)
CONSENT_SENT: Final = 0.35
CONSENT_CHANGED: Final = 0.10
CN_ENGLISH_LOCALE: Final = 0.20
IN_INTEREST: Final = 0.70
# Trait presence on the first identify call of an account / on later ones.
TRAITS: Final = {
    "email": (0.90, 0.55),
    "name": (0.80, 0.40),
    "phone": (0.40, 0.25),
    "birthday": (0.25, 0.15),
    "address": (0.30, 0.20),
    "gender": (0.20, 0.10),
    "loyaltyId": (0.30, 0.30),
}
FULL_NAME: Final = 0.30

_BY_CATEGORY: Final = {c: tuple(p for p in PRODUCTS if p[1] == c) for c in CATEGORIES}


def local_price(usd: float, country: str) -> float:
    """The shelf price in the country's currency (CNY in whole yuan, others ending in .99 or .49)."""
    rate = CURRENCIES[country][1]
    if country == "CN":
        return float(round(usd * rate))
    value = usd * rate
    return round(int(value) + (0.99 if value - int(value) >= 0.5 else 0.49), 2)


def pick_product(rng: Random, p: Person) -> tuple[str, str, float]:
    category = rng.choice(p.interests) if rng.random() < IN_INTEREST else rng.choice(CATEGORIES)
    return rng.choice(_BY_CATEGORY[category])


@dataclass(slots=True)
class Device:
    anon: str
    ip: str
    locale: str
    user: str = ""  # userId once linked
    linked_at: int = -1  # seconds; -1 = never linked


class WebRenderer:
    """Writes one person's web calls to the sink."""

    def __init__(self, rng: Random, sink: Sink, clock: Clock, customers: int) -> None:
        self.rng = rng
        self.sink = sink
        self.clock = clock
        self._user_width = max(6, len(str(customers * 4)))
        self._users: set[int] = set()

    def _user_id(self) -> str:
        while True:
            n = self.rng.randrange(1, 10**self._user_width)
            if n not in self._users:
                self._users.add(n)
                return f"u_{n:0{self._user_width}d}"

    def _time(self, p: Person, after: int) -> int:
        """A moment of the person's active period later than ``after``, in local waking hours."""
        rng = self.rng
        first = max(p.first_day, after // DAY)
        t = self.clock.at(rng, rng.randint(first, max(first, p.last_day)), p.country, 7, 24)
        if t <= after:
            t = min(after + rng.randrange(60, 4 * 3600), END - 1)
        return t

    def _device(self, p: Person, home: bool) -> Device:
        locale = LOCALES[p.country]
        if p.country == "CN" and self.rng.random() < CN_ENGLISH_LOCALE:
            locale = "en-US"
        return Device(uuid4(self.rng), p.home_ip if home else random_ip(self.rng, p.country), locale)

    def render(self, p: Person) -> None:
        rng = self.rng
        devices = [self._device(p, home=i == 0 or rng.random() < 0.3) for i in range(DEVICES.pick(rng))]
        if p.household is not None and p.household.shared_anon:
            shared = self._device(p, home=True)
            shared.anon = p.household.shared_anon
            devices.append(shared)
        span = p.last_day - p.first_day
        signup_day = p.first_day + int(span * rng.random() ** 2)
        t0 = self.clock.at(rng, signup_day, p.country, 7, 24)
        user = self._user_id()
        main = devices[0]
        main.user, main.linked_at = user, t0
        self._identify(p, main, t0, first=True)
        for device in devices[1:]:
            how = DEVICE_LINK.pick(rng)
            if how == "never":
                continue
            t = self._time(p, t0)
            device.user, device.linked_at = user, t
            if how == "identify":
                self._identify(p, device, t, first=False)
            else:
                alias = {"type": "alias", "previousId": device.anon, "userId": user}
                self._emit(t, alias, device, p, anonymous=False)
        for _ in range(IDENTIFIES.pick(rng) - 1):
            t = self._time(p, t0)
            linked = [d for d in devices if 0 <= d.linked_at <= t]
            self._identify(p, rng.choice(linked) if linked else main, t, first=False)
        if p.email2 and rng.random() < SECOND_ACCOUNT:
            second = self._device(p, home=rng.random() < 0.5)
            second.user, second.linked_at = self._user_id(), self._time(p, t0)
            self._identify(p, second, second.linked_at, first=True, email=p.email2)
            devices.append(second)
        self._activity(p, devices)

    def _activity(self, p: Person, devices: list[Device]) -> None:
        rng = self.rng
        newsletter = not p.consent[0]
        n = max(p.min_records("web"), min(EVENT_CAP, int(rng.expovariate(1 / EVENT_MEAN) + 0.5)))
        for i in range(n):
            device = devices[0] if rng.random() < 0.6 else rng.choice(devices)
            t = self.clock.at(rng, p.day_of(rng, "web", i, n), p.country, 7, 24)
            kind = EVENTS.pick(rng)
            if kind == "Newsletter Subscribed":
                if newsletter:
                    kind = "page"
                newsletter = True
            if kind == "page":
                call = self._page(p)
            else:
                call = {"type": "track", "event": kind, "properties": self._properties(p, kind)}
            self._emit(t, call, device, p, anonymous=not (0 <= device.linked_at <= t))

    def _page(self, p: Person) -> dict[str, Any]:
        rng = self.rng
        u = rng.random()
        if u < 0.5:
            sku, category, _ = pick_product(rng, p)
            name, path = "Product", f"/p/{sku}"
        elif u < 0.75:
            category = rng.choice(p.interests) if rng.random() < IN_INTEREST else rng.choice(CATEGORIES)
            name, path = "Category", f"/c/{category}"
        else:
            name, path, category = rng.choice(SITE_PAGES)
        return {
            "type": "page",
            "name": name,
            "properties": {"path": path, "url": SITE_URL + path, "category": category},
        }

    def _properties(self, p: Person, event: str) -> dict[str, Any]:
        rng = self.rng
        if event == "Newsletter Subscribed":
            return {"list": rng.choice(NEWSLETTER_LISTS)}
        if event != "Order Completed":
            sku, category, usd = pick_product(rng, p)
            return {"sku": sku, "category": category, "price": local_price(usd, p.country)}
        products: list[dict[str, Any]] = []
        revenue, top, top_price = 0.0, "", -1.0
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            sku, category, usd = pick_product(rng, p)
            price, quantity = local_price(usd, p.country), 1 if rng.random() < 0.8 else 2
            products.append({"sku": sku, "category": category, "price": price, "quantity": quantity})
            revenue += price * quantity
            if price > top_price:
                top, top_price = category, price
        return {
            "order_id": f"o_{rng.getrandbits(48):012x}",
            "revenue": round(revenue, 2),
            "currency": CURRENCIES[p.country][0],
            "category": top,
            "products": products,
        }

    def _identify(self, p: Person, device: Device, t: int, *, first: bool, email: str = "") -> None:
        rng = self.rng
        day = t // DAY
        col = 0 if first else 1
        traits: dict[str, Any] = {}
        if email:
            traits["email"] = email
        elif rng.random() < TRAITS["email"][col]:
            traits["email"] = noise.email(rng, p)
        if rng.random() < TRAITS["name"][col]:
            if rng.random() < FULL_NAME:
                traits["name"] = noise.full_name(rng, p, day, "web")
            else:
                traits["firstName"], traits["lastName"] = noise.split_name(rng, p, day, "web")
        if rng.random() < TRAITS["phone"][col]:
            traits["phone"] = noise.phone(rng, p)
        if rng.random() < TRAITS["birthday"][col]:
            traits["birthday"] = noise.birth_date(rng, p)
        if rng.random() < TRAITS["address"][col]:
            traits["address"] = self._address(p, day)
        if rng.random() < TRAITS["gender"][col]:
            traits["gender"] = noise.gender(rng, p)
        if p.loyalty_id and rng.random() < TRAITS["loyaltyId"][col]:
            traits["loyaltyId"] = p.loyalty_id
        call: dict[str, Any] = {"type": "identify", "userId": device.user, "anonymousId": device.anon, "traits": traits}
        consent = None
        if rng.random() < CONSENT_SENT:
            prefs = list(p.consent)
            if rng.random() < CONSENT_CHANGED:
                i = rng.randrange(3)
                prefs[i] = not prefs[i]
            consent = {"categoryPreferences": dict(zip(("marketing", "analytics", "advertising"), prefs, strict=True))}
        self._emit(t, call, device, p, anonymous=False, consent=consent)

    def _address(self, p: Person, day: int) -> dict[str, str]:
        rng = self.rng
        a = p.address_on(day)
        pinyin = noise.chinese_pinyin_address(rng, p)
        out = {"street": noise.street(rng, a, pinyin=pinyin), "city": noise.city(rng, a.city, pinyin=pinyin)}
        state = noise.state(rng, a.city, pinyin=pinyin)
        if state:
            out["state"] = state
        postcode = noise.postcode(rng, a)
        if postcode:
            out["postalCode"] = postcode
        out["country"] = a.city.country
        return out

    def _emit(
        self,
        t: int,
        call: dict[str, Any],
        device: Device,
        p: Person,
        *,
        anonymous: bool,
        consent: dict[str, Any] | None = None,
    ) -> None:
        message_id = uuid4(self.rng)
        head: dict[str, Any] = {"type": call.pop("type"), "messageId": message_id, "timestamp": self.clock.iso(t)}
        if head["type"] == "alias":
            head["userId"] = call.pop("userId")
        elif head["type"] == "identify":
            head["userId"] = call.pop("userId")
            head["anonymousId"] = call.pop("anonymousId")
        else:
            if not anonymous:
                head["userId"] = device.user
            head["anonymousId"] = device.anon
        head.update(call)
        context: dict[str, Any] = {"ip": device.ip, "locale": device.locale}
        if consent is not None:
            context["consent"] = consent
        head["context"] = context
        self.sink.add("web", t, message_id, p.entity_id, json.dumps(head, ensure_ascii=False, separators=(",", ":")))
