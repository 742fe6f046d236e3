"""The built-in destinations, registered as a default plugin: files, signed webhooks, hashed ad audiences.

Why this module exists: the three ways audiences leave cdp out of the box, written as
ordinary ``cdp_destinations`` plugins so a third party's destination is built the same
way. Each receives batches the access layer already filtered by consent and masked by
policy (see :mod:`cdp.activation.base`); none reads customer data itself.

- ``file``: one JSON-lines (or CSV) file per batch, written atomically, mode 0600, named by
  the batch's idempotency key, so a re-delivery overwrites the same file;
- ``webhook``: an HTTPS POST of each batch, signed with HMAC-SHA256 under a per-destination
  secret kept in the keys directory (``X-CDP-Signature: t=<unix time>,v1=<hex>`` over
  ``"<t>." + body``, Stripe's scheme, so receivers can use the usual verifiers); retries with
  backoff on connection errors, 429 and 5xx, never on other 4xx;
- ``ad_audience``: the ``advertising`` purpose only, e-mail and phone as the policy's
  SHA-256 hashes (normalised as Meta's Custom Audiences and Google's Customer Match expect:
  trimmed, lower case; phone digits with the country code), written as upload files; a
  value that is not a hash stops the delivery (a policy change must not leak plaintext).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cdp.activation.base import AudienceBatch, ConfigField, DeletionBatch, Destination, DestinationFailed
from cdp.crypto.keyring import load_or_create_secret
from cdp.hookspecs import PluginContext, hookimpl
from cdp.segments.export import escape_cell

__all__ = ["AdAudienceDestination", "FileDestination", "WebhookDestination", "sign", "verify_signature"]

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _write_private(path: Path, data: bytes) -> None:
    """``data`` into ``path`` (mode 0600) through a temporary name in the same directory, so a
    reader never sees half a file and a re-delivery replaces the earlier one whole."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(f".{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)


def _jsonl(rows: Sequence[Mapping[str, Any]]) -> bytes:
    return b"".join(json.dumps(row, ensure_ascii=False, sort_keys=True).encode() + b"\n" for row in rows)


def _csv(columns: list[str], rows: Sequence[Mapping[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows([escape_cell(row.get(c)) for c in columns] for row in rows)
    return buffer.getvalue().encode()


def _deletion_name(batch: DeletionBatch) -> str:
    """A deletion file's name: the time, and a digest of whom it names (the same notice sent twice
    lands on one file; two different notices in the same second do not overwrite each other)."""
    keys = "\n".join(sorted(m["member_key"] for m in batch.members))
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + hashlib.sha256(keys.encode()).hexdigest()[:16]


def _segment_folder(segment: str) -> str:
    """A segment name as one path component (names are validated, but a path is no place to trust that)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", segment).lstrip(".") or "_"


class FileDestination(Destination):
    name = "file"
    description = "Files for batch jobs: one file per batch of adds and removes (JSON lines or CSV)."
    config_fields = (
        ConfigField("directory", "path", required=True, description="where the files go"),
        ConfigField("format", "string", default="jsonl", description="jsonl or csv"),
    )
    fields = ("given_name", "email", "phone", "country", "city")
    supports_deletion = True

    def __init__(self, instance: str, config: Mapping[str, Any], *, keys_dir: Path, source: str = "") -> None:
        super().__init__(instance, config, keys_dir=keys_dir, source=source)
        if self.config["format"] not in ("jsonl", "csv"):
            raise self.config_error("format", f"{self.config['format']!r} is not one of ['jsonl', 'csv']")

    def _folder(self) -> Path:
        return Path(self.config["directory"]).expanduser()

    def location(self) -> str:
        return str(self._folder())

    def deliver(self, batch: AudienceBatch) -> None:
        rows: list[Mapping[str, Any]] = [{"op": "add", **row} for row in batch.added]
        rows += [{"op": "remove", "member_key": key} for key in batch.removed]
        path = self._folder() / _segment_folder(batch.segment) / f"{batch.idempotency_key}.{self.config['format']}"
        if self.config["format"] == "csv":
            columns = ["op", "member_key", *sorted({k for r in rows for k in r} - {"op", "member_key"})]
            data = _csv(columns, rows)
        else:
            data = _jsonl(rows)
        try:
            _write_private(path, data)
        except OSError as exc:
            raise DestinationFailed(f"{self.instance}: cannot write {path}: {exc.strerror}", retryable=True) from exc

    def delete(self, batch: DeletionBatch) -> None:
        path = self._folder() / "_deletions" / f"{_deletion_name(batch)}.jsonl"
        try:
            _write_private(path, _jsonl([{"op": "delete", **m} for m in batch.members]))
        except OSError as exc:
            raise DestinationFailed(f"{self.instance}: cannot write {path}: {exc.strerror}", retryable=True) from exc


# -- webhooks ---------------------------------------------------------------------------------


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The ``X-CDP-Signature`` header of ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: bytes, header: str, body: bytes, *, tolerance: int = 300, now: float | None = None
) -> bool:
    """For receivers: whether ``header`` signs ``body`` under ``secret``, sent at most
    ``tolerance`` seconds ago (a replayed old delivery fails)."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


class WebhookDestination(Destination):
    name = "webhook"
    description = "An HTTPS endpoint (a CRM, an email tool): each batch POSTed as JSON, HMAC-SHA256 signed."
    config_fields = (
        ConfigField("url", "string", required=True, description="the receiver's URL (https, or http to this machine)"),
        ConfigField("timeout", "number", default=10.0, description="seconds per request"),
        ConfigField("max_attempts", "integer", default=4, description="tries per batch (connection errors, 429, 5xx)"),
        ConfigField("backoff", "number", default=0.5, description="seconds before the first retry, doubled each time"),
    )
    fields = ("given_name", "email", "phone", "country")
    supports_deletion = True

    def __init__(self, instance: str, config: Mapping[str, Any], *, keys_dir: Path, source: str = "") -> None:
        super().__init__(instance, config, keys_dir=keys_dir, source=source)
        self._secret: bytes | None = None
        url = urlsplit(self.config["url"])
        if url.scheme not in ("https", "http") or not url.hostname:
            raise self.config_error("url", "not an http(s) URL")
        if url.scheme == "http" and url.hostname not in _LOCAL_HOSTS:
            raise self.config_error("url", "personal data goes over https only (plain http to this machine alone)")
        if self.config["max_attempts"] < 1:
            raise self.config_error("max_attempts", "at least 1")

    @property
    def secret_name(self) -> str:
        return f"webhook-{re.sub(r'[^a-z0-9_-]', '-', self.instance.lower())}"[:64]

    def secret(self) -> bytes:
        """The signing secret shared with the receiver (created on first use, mode 0600, in the keys
        directory); read once per destination object, not once per batch."""
        if self._secret is None:
            self._secret = load_or_create_secret(self.keys_dir, self.secret_name)
        return self._secret

    def location(self) -> str:
        url = urlsplit(self.config["url"])
        port = f":{url.port}" if url.port else ""
        return f"{url.scheme}://{url.hostname}{port}{url.path}"  # no credentials, no query

    def deliver(self, batch: AudienceBatch) -> None:
        body = {
            "type": "audience.sync",
            "sync_id": batch.sync_id,
            "sequence": batch.sequence,
            "last": batch.last,
            "segment": batch.segment,
            "purpose": batch.purpose,
            "added": list(batch.added),
            "removed": list(batch.removed),
        }
        self._post(body, batch.idempotency_key)

    def delete(self, batch: DeletionBatch) -> None:
        keys = ",".join(sorted(m["member_key"] for m in batch.members))
        self._post(
            {"type": "audience.delete", "members": list(batch.members)},
            "delete-" + hashlib.sha256(keys.encode()).hexdigest()[:32],
        )

    def _post(self, payload: Mapping[str, Any], idempotency_key: str) -> None:
        import httpx

        body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
        secret = self.secret()
        attempts, wait = int(self.config["max_attempts"]), float(self.config["backoff"])
        problem = ""
        with httpx.Client(timeout=float(self.config["timeout"]), follow_redirects=False) as client:
            for attempt in range(1, attempts + 1):
                headers = {
                    "Content-Type": "application/json",
                    "Idempotency-Key": idempotency_key,
                    "X-CDP-Signature": sign(secret, body, int(time.time())),
                    "User-Agent": "cdp-webhook/1",
                }
                try:
                    response = client.post(self.config["url"], content=body, headers=headers)
                except httpx.TransportError as exc:
                    problem = f"{type(exc).__name__}"
                else:
                    if response.status_code < 300:
                        return
                    problem = f"HTTP {response.status_code}"
                    if response.status_code != 429 and response.status_code < 500:
                        raise DestinationFailed(
                            f"{self.instance}: the receiver refused the delivery ({problem})", retryable=False
                        )
                    retry_after = response.headers.get("retry-after", "")
                    if retry_after.isdigit():
                        wait = max(wait, min(float(retry_after), 30.0))
                if attempt < attempts:
                    time.sleep(wait)
                    wait *= 2
        raise DestinationFailed(f"{self.instance}: no delivery after {attempts} attempts ({problem})", retryable=True)


# -- ad audiences -----------------------------------------------------------------------------


class AdAudienceDestination(Destination):
    name = "ad_audience"
    description = "Hashed ad audiences (Meta Custom Audiences, Google Customer Match): SHA-256 e-mails and phones."
    config_fields = (ConfigField("directory", "path", required=True, description="where the upload files go"),)
    fields = ("email", "phone", "country")
    purposes = ("advertising",)
    batch_size = 10_000
    supports_deletion = True  # as a removal file: an ad audience holds nothing else of a person

    def location(self) -> str:
        return str(Path(self.config["directory"]).expanduser())

    def deliver(self, batch: AudienceBatch) -> None:
        rows = []
        for member in batch.added:
            hashed = {name: member.get(name) for name in ("email", "phone")}
            for name, value in hashed.items():
                if value is not None and not _SHA256_HEX.fullmatch(str(value)):
                    raise DestinationFailed(
                        f"{self.instance}: the policy gave '{name}' to an ad audience unhashed; nothing was "
                        "written (advertising reads must mask e-mail and phone with mask:hash)",
                        retryable=False,
                    )
            if any(hashed.values()):
                rows.append(
                    {
                        "member_key": member["member_key"],
                        "email_sha256": hashed["email"],
                        "phone_sha256": hashed["phone"],
                        "country": member.get("country"),
                    }
                )
        folder = Path(self.config["directory"]).expanduser() / _segment_folder(batch.segment)
        try:
            if rows:
                columns = ["member_key", "email_sha256", "phone_sha256", "country"]
                _write_private(folder / f"{batch.idempotency_key}-add.csv", _csv(columns, rows))
            if batch.removed:
                removed = [{"member_key": key} for key in batch.removed]
                _write_private(folder / f"{batch.idempotency_key}-remove.csv", _csv(["member_key"], removed))
        except OSError as exc:
            problem = f"{self.instance}: cannot write to {folder}: {exc.strerror}"
            raise DestinationFailed(problem, retryable=True) from exc

    def delete(self, batch: DeletionBatch) -> None:
        folder = Path(self.config["directory"]).expanduser() / "_deletions"
        try:
            _write_private(folder / f"{_deletion_name(batch)}-remove.csv", _csv(["member_key"], batch.members))
        except OSError as exc:
            problem = f"{self.instance}: cannot write to {folder}: {exc.strerror}"
            raise DestinationFailed(problem, retryable=True) from exc


@hookimpl
def cdp_destinations(context: PluginContext) -> list[type[Destination]]:
    return [FileDestination, WebhookDestination, AdAudienceDestination]
