"""Helpers for tests that run on a small generated demo population."""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from cdp.access import CustomerStore
from cdp.demo import DemoFiles, generate
from cdp.pipeline import SourceSpec, ingest, resolve

SOURCE_OF_LABEL = {"web": "website", "pos": "pos", "survey": "survey"}


@dataclass
class Plaintexts:
    emails: set[str] = field(default_factory=set)
    phone_digits: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)


def build(store: CustomerStore, directory: Path, customers: int = 150, seed: int = 7) -> DemoFiles:
    files = generate(directory, customers=customers, seed=seed)
    ingest(store, store.settings, SourceSpec("website", {"path": str(files.web)}))
    ingest(store, store.settings, SourceSpec("pos", {"path": str(files.pos), "region_from_store_id": True}))
    ingest(store, store.settings, SourceSpec("survey", {"path": str(files.survey)}))
    resolve(store, store.settings)
    return files


def labels(files: DemoFiles) -> dict[str, list[tuple[str, str]]]:
    """entity -> [(source, source record id)]."""
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    with Path(files.labels).open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            out[row["entity_id"]].append((SOURCE_OF_LABEL[row["source"]], row["record_id"]))
    return out


def _add_name(out: Plaintexts, *values: object) -> None:
    for value in values:
        if isinstance(value, str):
            for token in re.split(r"[\s,.]+", value):
                if len(token) >= 5:
                    out.names.add(token.casefold())


def _add_phone(out: Plaintexts, value: object) -> None:
    if isinstance(value, str):
        digits = re.sub(r"\D", "", value)
        if len(digits) >= 8:
            out.phone_digits.add(digits[-8:])


def plaintexts(files: DemoFiles, *, only: set[tuple[str, str]] | None = None) -> Plaintexts:
    """Direct identifiers as they appear in the source files (optionally for some records only)."""
    out = Plaintexts()
    with Path(files.web).open(encoding="utf-8") as handle:
        for line in handle:
            call = json.loads(line)
            if only is not None and ("website", call["messageId"]) not in only:
                continue
            traits = call.get("traits") or {}
            if traits.get("email"):
                out.emails.add(str(traits["email"]).strip().lower())
            _add_phone(out, traits.get("phone"))
            _add_name(out, traits.get("firstName"), traits.get("lastName"), traits.get("name"))
    for path, source, key, email, phone, name in (
        (files.pos, "pos", "transaction_id", "customer_email", "customer_phone", "customer_name"),
        (files.survey, "survey", "response_id", "email", "phone", "name"),
    ):
        with Path(path).open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                if only is not None and (source, row[key]) not in only:
                    continue
                if row[email]:
                    out.emails.add(row[email].strip().lower())
                _add_phone(out, row[phone])
                _add_name(out, row[name])
    return out


EMAIL = re.compile(rb"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
DIGITS = re.compile(rb"\d{8,}")
WORD = re.compile(r"\w{5,}")


def find_plaintext(blob: bytes, secrets: Plaintexts, *, check_names: bool = True) -> list[str]:
    """Which of the secrets appear in this blob (emails, last 8 phone digits, name tokens)."""
    hits = [m.decode("latin-1") for m in EMAIL.findall(blob) if m.decode("latin-1").lower() in secrets.emails]
    compact = re.sub(rb"[\s().\-/]", b"", blob)
    hits += [m.decode()[-8:] for m in DIGITS.findall(compact) if m.decode()[-8:] in secrets.phone_digits]
    if check_names:
        # Names are looked for in text only: random ciphertext bytes, decoded leniently, form
        # short words that can equal a name by chance (emails and phone digits are too long to).
        try:
            text = blob.decode("utf-8")
        except UnicodeDecodeError:
            return hits
        hits += [w for w in WORD.findall(text) if w.casefold() in secrets.names]
    return hits
