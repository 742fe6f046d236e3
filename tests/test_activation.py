"""Activation: incremental audience syncs to files, signed webhooks and hashed ad audiences.

Why: a destination must receive exactly the people the policy and consent allow for the
segment's purpose, only the fields the policy gives its service account, each sync only
the change since the last delivered one, and every erasure. These tests run the demo
sample (200 customers) through the built-in destinations and a plugin's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from demo_helpers import build

from cdp._exceptions import ConfigurationError, Conflict, InputError
from cdp.access import AccessContext, CustomerStore
from cdp.activation import AudienceBatch, Destination, DestinationFailed
from cdp.activation import sync as activation
from cdp.activation.builtin import AdAudienceDestination, FileDestination, verify_signature
from cdp.consent.dsr import DataSubjectRequests
from cdp.demo import DemoFiles
from cdp.pipeline import DEMO_SEGMENTS_DIR, refresh_segments
from cdp.segments.definition import Segment
from cdp.segments.service import load_segment_file

OFFICER = AccessContext("officer:ann", "compliance_officer", "dsr")
ENGINEER = AccessContext("eng", "data_engineer", "operations")
BATCH = AccessContext("destination:batch", "svc_destination", "marketing_email")
SVC = AccessContext("service:identity", "svc_identity", "identity_resolution")
SEGMENT = "active_high_value"  # the demo's segment, purpose marketing_email
ADS = Segment("recent_buyers_ads", "", "advertising", {"attribute": "order_count", "op": ">=", "value": 1})


@pytest.fixture
def demo(store: CustomerStore, tmp_path: Path) -> DemoFiles:
    files = build(store, tmp_path / "demo", customers=200)
    refresh_segments(store, [load_segment_file(DEMO_SEGMENTS_DIR / f"{SEGMENT}.yaml"), ADS])
    return files


def configured(store: CustomerStore, tmp_path: Path, text: str) -> dict[str, Destination]:
    path = tmp_path / "destinations.yaml"
    path.write_text(text, encoding="utf-8")
    return activation.load_destinations(store.settings, path)


def files_destination(store: CustomerStore, tmp_path: Path, name: str = "batch") -> Destination:
    out = tmp_path / f"out-{name}"
    return configured(store, tmp_path, f"destinations:\n  {name}:\n    type: file\n    directory: {out}\n")[name]


def delivered_rows(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(folder.rglob("*.jsonl")) for line in path.read_text().splitlines()]


def members(store: CustomerStore, segment: str = SEGMENT) -> list[str]:
    return store.segment_members(AccessContext("m", "marketer", "marketing_email"), segment)


def key_of(store: CustomerStore, destination: str, profile_id: str) -> str:
    return activation._member_keys(store.settings, destination)(profile_id)


# -- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("destinations:\n  x:\n    type: carrier_pigeon\n", r"destinations\.x\.type: 'carrier_pigeon' is not one of"),
        (
            "destinations:\n  x:\n    type: file\n",
            r"destinations\.x\.directory: missing required config key 'directory'",
        ),
        (
            "destinations:\n  x:\n    type: file\n    directory: d\n    colour: red\n",
            r"destinations\.x\.colour: unknown",
        ),
        ("destinations:\n  x:\n    type: file\n    directory: d\n    format: xml\n", r"'xml' is not one of"),
        ("destinations:\n  x:\n    type: webhook\n    url: http://crm.example.com/in\n", r"https only"),
        (
            "destinations:\n  x:\n    type: webhook\n    url: https://a.example\n    max_attempts: many\n",
            "config key 'max_attempts' must be integer",
        ),
        ("destinations: [1, 2]\n", "expected a mapping"),
        ("destinations:\n  x: [\n", r"destinations\.yaml:\d+: not valid YAML"),
    ],
)
def test_bad_destination_files_name_the_file_and_key(
    store: CustomerStore, tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as raised:
        configured(store, tmp_path, text)
    assert "destinations.yaml" in str(raised.value)


# -- incremental syncs ----------------------------------------------------------------------------


def test_a_sync_sends_consented_members_with_only_the_fields_the_policy_allows(
    store: CustomerStore, demo: DemoFiles, tmp_path: Path
) -> None:
    destination = files_destination(store, tmp_path)
    report = activation.sync_segment(store, destination, SEGMENT, "marketing_email")
    readable = store.read_profiles(
        AccessContext("destination:batch", "svc_destination", "marketing_email"),
        ("email",),
        profile_ids=members(store),
        action="export",
    )
    assert report.added == len(readable) > 0 and report.removed == 0
    assert report.excluded == len(members(store)) - len(readable)
    rows = delivered_rows(tmp_path / "out-batch")
    assert len(rows) == report.added and {r["op"] for r in rows} == {"add"}
    assert {r["member_key"] for r in rows} == {key_of(store, "batch", p["profile_id"]) for p in readable}
    # marketing_email gives the destination e-mail and given name; never phone, family name or the profile id
    assert set().union(*rows) <= {"op", "member_key", "email", "given_name", "country", "city"}
    assert not any("profile_id" in r or "phone" in r or "family_name" in r for r in rows)
    assert sorted(r["email"] for r in rows if "email" in r) == sorted(p["email"] for p in readable if p.get("email"))


def test_a_second_sync_sends_nothing_and_a_withdrawal_is_a_removal(
    store: CustomerStore, demo: DemoFiles, tmp_path: Path
) -> None:
    destination = files_destination(store, tmp_path)
    first = activation.sync_segment(store, destination, SEGMENT, "marketing_email")
    again = activation.sync_segment(store, destination, SEGMENT, "marketing_email")
    assert (again.added, again.removed, again.batches, again.delivered_to) == (0, 0, 0, first.delivered_to)
    person = sorted(store.destination_audience(BATCH, "batch", SEGMENT))[0]
    store.record_consent(OFFICER, person, purpose="marketing_email", status="withdrawn")
    third = activation.sync_segment(store, destination, SEGMENT, "marketing_email")
    assert (third.added, third.removed, third.delivered_to) == (0, 1, first.delivered_to - 1)
    removals = [r for r in delivered_rows(tmp_path / "out-batch") if r["op"] == "remove"]
    assert removals == [{"op": "remove", "member_key": key_of(store, "batch", person)}]
    assert person not in store.destination_audience(BATCH, "batch", SEGMENT)
    history = store.destination_syncs(ENGINEER, destination="batch")
    assert [h["status"] for h in history] == ["delivered"] * 3
    assert [(h["added"], h["removed"]) for h in history] == [(0, 1), (0, 0), (first.added, 0)]
    full = activation.sync_segment(store, destination, SEGMENT, "marketing_email", full=True)
    assert (full.added, full.removed, full.delivered_to) == (first.added - 1, 0, first.added - 1)


def test_member_keys_are_stable_per_destination_and_differ_between_destinations(
    store: CustomerStore, demo: DemoFiles, tmp_path: Path
) -> None:
    person = members(store)[0]
    assert key_of(store, "a", person) == key_of(store, "a", person) != key_of(store, "b", person)
    assert person not in key_of(store, "a", person) and len(key_of(store, "a", person)) == 32


def test_a_failed_delivery_changes_nothing_and_the_next_sync_sends_it_again(
    store: CustomerStore, demo: DemoFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    destination = files_destination(store, tmp_path)

    def refuse(_batch: AudienceBatch) -> None:
        raise DestinationFailed("batch: the tool is down", retryable=True)

    monkeypatch.setattr(destination, "deliver", refuse)
    with pytest.raises(DestinationFailed):
        activation.sync_segment(store, destination, SEGMENT, "marketing_email")
    assert store.destination_audience(BATCH, "batch", SEGMENT) == set()
    (failed,) = store.destination_syncs(ENGINEER, destination="batch")
    assert failed["status"] == "failed" and "the tool is down" in failed["error"] and failed["export_id"] is None
    monkeypatch.undo()
    report = activation.sync_segment(store, destination, SEGMENT, "marketing_email")
    assert report.added > 0 and len(store.destination_audience(BATCH, "batch", SEGMENT)) == report.added


def test_batches_split_adds_and_removes(store: CustomerStore, demo: DemoFiles, tmp_path: Path) -> None:
    destination = files_destination(store, tmp_path)
    monkey = type("Small", (FileDestination,), {"batch_size": 2})
    small = monkey("batch", destination.config, keys_dir=store.settings.keys_dir)
    report = activation.sync_segment(store, small, SEGMENT, "marketing_email")
    assert report.batches == -(-report.added // 2)
    assert len(list((tmp_path / "out-batch").rglob("*.jsonl"))) == report.batches


def test_a_withdrawal_while_a_sync_reads_keeps_the_person_out(
    store: CustomerStore, demo: DemoFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    destination = files_destination(store, tmp_path)
    original = store.read_profiles
    victim: dict[str, str] = {}

    def read_then_withdraw(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        rows = original(*args, **kwargs)
        if rows and not victim:
            victim["id"] = str(rows[0]["profile_id"])  # read as allowed, then the person withdraws
            store.record_consent(OFFICER, victim["id"], purpose="marketing_email", status="withdrawn")
        return rows

    monkeypatch.setattr(store, "read_profiles", read_then_withdraw)
    report = activation.sync_segment(store, destination, SEGMENT, "marketing_email")
    monkeypatch.undo()
    keys = {r["member_key"] for r in delivered_rows(tmp_path / "out-batch")}
    assert victim and key_of(store, "batch", victim["id"]) not in keys
    assert victim["id"] not in store.destination_audience(BATCH, "batch", SEGMENT)
    assert report.added == len(keys) and report.excluded >= 1


# -- webhooks -------------------------------------------------------------------------------------


class Receiver(BaseHTTPRequestHandler):
    statuses: ClassVar[list[int]] = []
    seen: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append(({k.lower(): v for k, v in self.headers.items()}, body))
        status = type(self).statuses.pop(0) if type(self).statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[Receiver]]]:
    handler = type("ThisReceiver", (Receiver,), {"statuses": [], "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/cdp", handler
    finally:
        server.shutdown()
        server.server_close()


def webhook(store: CustomerStore, tmp_path: Path, url: str) -> Destination:
    text = f"destinations:\n  crm:\n    type: webhook\n    url: {url}\n    backoff: 0.01\n    max_attempts: 3\n"
    return configured(store, tmp_path, text)["crm"]


def test_webhook_batches_are_signed_and_retried_with_the_same_idempotency_key(
    store: CustomerStore, demo: DemoFiles, tmp_path: Path, receiver: tuple[str, type[Receiver]]
) -> None:
    url, handler = receiver
    handler.statuses.extend([503, 429])
    destination = webhook(store, tmp_path, url)
    report = activation.sync_segment(store, destination, SEGMENT, "marketing_email")
    assert len(handler.seen) == 3  # two refusals, then taken
    keys = {headers["idempotency-key"] for headers, _ in handler.seen}
    assert keys == {f"{report.sync_id}-00000"}
    secret = destination.secret()  # type: ignore[attr-defined]
    for headers, body in handler.seen:
        assert verify_signature(secret, headers["x-cdp-signature"], body)
        assert not verify_signature(secret, headers["x-cdp-signature"], body + b" ")
        assert not verify_signature(b"another secret", headers["x-cdp-signature"], body)
    payload = json.loads(handler.seen[-1][1])
    assert payload["type"] == "audience.sync" and payload["last"] and len(payload["added"]) == report.added
    assert (store.settings.keys_dir / "webhook-crm.key").stat().st_mode & 0o077 == 0


def test_webhook_refusal_is_not_retried_and_is_recorded(
    store: CustomerStore, demo: DemoFiles, tmp_path: Path, receiver: tuple[str, type[Receiver]]
) -> None:
    url, handler = receiver
    handler.statuses.append(422)
    with pytest.raises(DestinationFailed, match="refused the delivery") as raised:
        activation.sync_segment(store, webhook(store, tmp_path, url), SEGMENT, "marketing_email")
    assert not raised.value.retryable and len(handler.seen) == 1
    assert store.destination_syncs(ENGINEER, destination="crm")[0]["error"].endswith("(HTTP 422)")


def test_an_old_signature_is_refused() -> None:
    from cdp.activation.builtin import sign

    header = sign(b"s", b"{}", 1_000)
    assert verify_signature(b"s", header, b"{}", now=1_200)
    assert not verify_signature(b"s", header, b"{}", now=1_000 + 301)
    assert not verify_signature(b"s", "v1=abc", b"{}", now=1_000)


# -- ad audiences ---------------------------------------------------------------------------------


def test_ad_audiences_get_only_hashes_of_people_who_allow_advertising(
    store: CustomerStore, demo: DemoFiles, tmp_path: Path
) -> None:
    out = tmp_path / "ads"
    ads = configured(store, tmp_path, f"destinations:\n  meta:\n    type: ad_audience\n    directory: {out}\n")["meta"]
    with pytest.raises(InputError, match="serves \\['advertising'\\]"):
        activation.sync_segment(store, ads, SEGMENT, "marketing_email")
    refused = members(store, ADS.name)[0]  # an opt-out of sale/sharing (CCPA) or a refusal (GDPR)
    store.record_consent(OFFICER, refused, purpose="advertising", status="denied")
    report = activation.sync_segment(store, ads, ADS.name, "advertising")
    advertising = AccessContext("destination:meta", "svc_destination", "advertising")
    allowed = store.read_profiles(advertising, ("email",), profile_ids=members(store, ADS.name), action="export")
    assert report.added == len(allowed) and report.excluded == len(members(store, ADS.name)) - len(allowed)
    assert report.excluded >= 1 and refused not in {a["profile_id"] for a in allowed}
    text = "".join(p.read_text() for p in out.rglob("*.csv"))
    assert "@" not in text
    officer = AccessContext("o", "compliance_officer", "compliance")
    plain = {
        r["profile_id"]: r
        for r in store.read_profiles(officer, ("email",), profile_ids=[a["profile_id"] for a in allowed])
    }
    hashed = {
        hashlib.sha256(str(r["email"]).strip().lower().encode()).hexdigest() for r in plain.values() if r.get("email")
    }
    assert hashed and hashed <= set(text.replace(",", "\n").split())


def test_an_ad_audience_refuses_a_value_that_is_not_a_hash(store: CustomerStore, tmp_path: Path) -> None:
    ads = AdAudienceDestination("meta", {"directory": str(tmp_path / "ads")}, keys_dir=store.settings.keys_dir)
    batch = AudienceBatch("s", "meta", "seg", "advertising", 0, True, added=({"member_key": "k", "email": "a@b.c"},))
    with pytest.raises(DestinationFailed, match="unhashed") as raised:
        ads.deliver(batch)
    assert not raised.value.retryable and not (tmp_path / "ads").exists()


# -- erasure --------------------------------------------------------------------------------------


def test_an_erasure_reaches_every_destination_that_received_the_person(
    store: CustomerStore, demo: DemoFiles, tmp_path: Path
) -> None:
    destination = files_destination(store, tmp_path)
    activation.sync_segment(store, destination, SEGMENT, "marketing_email")
    held = sorted(store.destination_audience(BATCH, "batch", SEGMENT))
    emails = {
        f["profile_id"]: f["email"] for f in store.identity_features(SVC) if f["profile_id"] in held and f["email"]
    }
    person, email = sorted(emails.items())[0]
    DataSubjectRequests(store, store.settings).run(OFFICER, kind="erasure", identifier=str(email))
    (report,) = activation.deliver_deletions(store, {"batch": destination})
    assert (report.sent, report.pending) >= (1, 0)
    deleted = delivered_rows(tmp_path / "out-batch" / "_deletions")
    assert [d["member_key"] for d in deleted] == [key_of(store, "batch", person)]
    assert all(d["op"] == "delete" and d["request_id"] for d in deleted)
    assert person not in store.destination_audience(BATCH, "batch", SEGMENT)
    assert activation.deliver_deletions(store, {"batch": destination}) == []  # nothing left queued
    after = activation.sync_segment(store, destination, SEGMENT, "marketing_email")
    assert after.removed == 0  # already deleted there: no removal on top


# -- plugins --------------------------------------------------------------------------------------


class Collecting(Destination):
    name = "collecting"
    description = "A third party's destination, for the test."
    fields = ("email", "phone")
    received: ClassVar[list[AudienceBatch]] = []

    def deliver(self, batch: AudienceBatch) -> None:
        type(self).received.append(batch)


def test_a_plugin_destination_type_is_found_through_the_hook(
    store: CustomerStore, demo: DemoFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types

    from cdp.hookspecs import hookimpl
    from cdp.plugins import build_plugin_manager

    plugin = types.ModuleType("cdp_test_collecting_destination")
    plugin.cdp_destinations = hookimpl(lambda context: [Collecting])  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, plugin.__name__, plugin)
    manager = build_plugin_manager(load_entry_points=False)
    manager.register(plugin)
    monkeypatch.setattr(activation, "get_plugin_manager", lambda: manager)
    assert {"file", "webhook", "ad_audience", "collecting"} <= set(activation.destination_types(store.settings))
    found = configured(store, tmp_path, "destinations:\n  mine:\n    type: collecting\n")["mine"]
    report = activation.sync_segment(store, found, SEGMENT, "marketing_email")
    added = [m for b in Collecting.received for m in b.added]
    assert len(added) == report.added > 0
    assert not any("phone" in m for m in added)  # asked for, but marketing_email does not give it


# -- the command line -----------------------------------------------------------------------------


def test_the_destinations_commands(
    store: CustomerStore, demo: DemoFiles, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    from typer.testing import CliRunner

    from cdp.cli import app

    (tmp_path / "destinations.yaml").write_text(
        f"destinations:\n  batch:\n    type: file\n    directory: {tmp_path / 'out'}\n", encoding="utf-8"
    )
    segment_file = str(DEMO_SEGMENTS_DIR / f"{SEGMENT}.yaml")
    runner = CliRunner()
    wide = {"COLUMNS": "200"}
    types = runner.invoke(app, ["destinations", "types"], env=wide)
    assert types.exit_code == 0 and "ad_audience" in types.output and "webhook" in types.output
    listed = runner.invoke(app, ["destinations", "list"], env=wide)
    assert listed.exit_code == 0 and "batch" in listed.output and str(tmp_path / "out") in listed.output
    first = runner.invoke(app, ["destinations", "sync", segment_file, "--to", "batch"], env=wide)
    assert first.exit_code == 0, first.output
    held = len(store.destination_audience(BATCH, "batch", SEGMENT))
    assert held > 0 and f"│ {held} " in first.output
    missing = runner.invoke(app, ["destinations", "sync", segment_file, "--to", "nowhere"], env=wide)
    assert missing.exit_code != 0 and "no destination 'nowhere'" in str(missing.exception)  # cdp.cli.main maps it
    history = runner.invoke(
        app, ["destinations", "history", "--role", "data_engineer", "--purpose", "operations"], env=wide
    )
    assert history.exit_code == 0 and "delivered" in history.output
    deletions = runner.invoke(app, ["destinations", "deletions"], env=wide)
    assert deletions.exit_code == 0


def test_a_segment_never_computed_is_not_found_rather_than_empty(
    store: CustomerStore, demo: DemoFiles, tmp_path: Path
) -> None:
    """Otherwise a misspelt name would read as "nobody" and remove the whole audience."""
    from cdp._exceptions import NotFound

    destination = files_destination(store, tmp_path)
    activation.sync_segment(store, destination, SEGMENT, "marketing_email")
    with pytest.raises(NotFound, match="'active_hihg_value' has not been computed"):
        activation.sync_segment(store, destination, "active_hihg_value", "marketing_email")
    assert len(store.destination_audience(BATCH, "batch", SEGMENT)) > 0


# -- random sequences -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_a_replay_of_every_delivery_equals_who_the_destination_should_hold(
    store: CustomerStore, demo: DemoFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """After random consent changes, segment changes, erasures, failed and full syncs, replaying
    every file the destination received (adds, removes, deletions) gives exactly the member keys
    of the segment's members whose consent allows the purpose."""
    import random

    rng = random.Random(seed)
    destination = files_destination(store, tmp_path)
    definitions = [
        load_segment_file(DEMO_SEGMENTS_DIR / f"{SEGMENT}.yaml"),
        Segment(SEGMENT, "", "marketing_email", {"attribute": "order_count", "op": ">=", "value": 1}),
        Segment(SEGMENT, "", "marketing_email", {"attribute": "order_count", "op": ">=", "value": 3}),
    ]
    requests = DataSubjectRequests(store, store.settings)
    for _ in range(30):
        step = rng.choice(["consent", "consent", "segment", "erase", "sync", "sync", "fail", "full"])
        if step == "consent":
            # People with records now (an erased person has none: a consent for them is NotFound).
            everyone = sorted({str(f["profile_id"]) for f in store.identity_features(SVC) if f["profile_id"]})
            held_now = sorted(store.destination_audience(BATCH, "batch", SEGMENT))
            person = rng.choice(held_now if held_now and rng.random() < 0.7 else everyone)
            status = rng.choice(["granted", "withdrawn", "denied"])
            store.record_consent(OFFICER, person, purpose="marketing_email", status=status)
        elif step == "segment":
            refresh_segments(store, [rng.choice(definitions), ADS])
        elif step == "erase":
            emails = [f["email"] for f in store.identity_features(SVC) if f["email"] and f["profile_id"]]
            if emails:
                with contextlib.suppress(Conflict):  # an e-mail two profiles share is refused, as it should be
                    requests.run(OFFICER, kind="erasure", identifier=str(rng.choice(sorted(emails))))
                activation.deliver_deletions(store, {"batch": destination})
        elif step == "fail":

            def refuse(_batch: AudienceBatch) -> None:
                raise DestinationFailed("batch: down", retryable=True)

            with monkeypatch.context() as patched, contextlib.suppress(DestinationFailed):
                patched.setattr(destination, "deliver", refuse)
                activation.sync_segment(store, destination, SEGMENT, "marketing_email")
        else:
            activation.sync_segment(store, destination, SEGMENT, "marketing_email", full=step == "full")
    activation.sync_segment(store, destination, SEGMENT, "marketing_email")
    activation.deliver_deletions(store, {"batch": destination})
    held: set[str] = set()
    folder = tmp_path / "out-batch"
    for path in sorted(folder.rglob("*.jsonl"), key=lambda p: (p.stat().st_mtime_ns, p.name)):
        for row in (json.loads(line) for line in path.read_text().splitlines()):
            if row["op"] == "add":
                held.add(row["member_key"])
            else:
                held.discard(row["member_key"])
    allowed = store.read_profiles(BATCH, ("email",), profile_ids=members(store), action="export")
    assert held == {key_of(store, "batch", r["profile_id"]) for r in allowed}
    sent = [json.loads(line)["op"] for p in folder.rglob("*.jsonl") for line in p.read_text().splitlines()]
    assert {"add", "remove"} <= set(sent), "the sequence should have both entries and exits"
    assert store.destination_audience(BATCH, "batch", SEGMENT) == {r["profile_id"] for r in allowed}
