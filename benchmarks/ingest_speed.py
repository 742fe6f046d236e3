"""Ingestion throughput and crash safety at scale (the figures in docs/benchmarks.md, "Ingestion").

Why a script and not a test: these runs take tens of seconds on 2 cores.

    python benchmarks/ingest_speed.py files [--records 100000]   # demo files -> SQLite, records/s (one run)
    python benchmarks/ingest_speed.py files --sequential         # one run per file
    python benchmarks/ingest_speed.py http [--events 100000 --clients 4 --batch 100]
    python benchmarks/ingest_speed.py crash [--records 100000]   # SIGKILL mid-run, restart, count
    python benchmarks/ingest_speed.py files --profile            # cProfile of reading (in-process)

Everything runs in a temporary directory against SQLite; the HTTP server
listens on 127.0.0.1 only and every run is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import multiprocessing
import os
import pstats
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent / "tests"
OPS_ARGS = ("bench", "data_engineer", "operations")


def _settings(folder: Path, **changes: Any) -> Any:
    from cdp.settings import Settings

    return Settings(data_dir=folder / "data", log_level="ERROR", **changes)


def demo_files(folder: Path, records: int) -> list[tuple[str, Path, dict[str, Any]]]:
    """Demo files holding about ``records`` lines in all (about 6.8 lines per customer)."""
    from cdp.demo import generate

    made = generate(folder / "demo", customers=max(10, round(records / 6.82)), seed=42)
    return [
        ("website", made.web, {}),
        ("pos", made.pos, {"region_from_store_id": True}),
        ("survey", made.survey, {}),
    ]


def bench_files(
    records: int, profile: bool, batch_size: int | None = None, *, sequential: bool = False
) -> dict[str, Any]:
    from cdp.access import open_store
    from cdp.connectors.runner import IngestRunner, make_connector

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sources = demo_files(folder, records)
        settings = _settings(folder, **({"batch_size": batch_size} if batch_size else {}))
        store = open_store(settings, migrate=True)
        profiler = cProfile.Profile() if profile else None
        rows: list[dict[str, Any]] = []
        started = time.perf_counter()
        cpu = time.process_time()
        children = _children_cpu()
        if profiler:
            profiler.enable()
        connectors = [make_connector(settings, name, {**config, "path": str(path)}) for name, path, config in sources]
        # Profiled in-process: cProfile sees only this thread, and a worker would hide the reading.
        parallel = False if profile else None
        runner = IngestRunner(store, settings)
        if sequential:  # one run per file, as `cdp ingest` does for each
            runs = [runner.run(connector, parallel=parallel) for connector in connectors]
        else:  # the files of one run pipelined, as `cdp demo` ingests them
            runs = runner.run_many(connectors, parallel=parallel)
        for (name, _, _), stats in zip(sources, runs, strict=True):
            rows.append(
                {"source": name, "read": stats.read, "accepted": stats.accepted, "rejected": stats.rejected}
                | {"worker_process": stats.worker}
                | {"seconds": round(stats.seconds, 2), "per_second": round(stats.per_second)}
            )
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        wall = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu
        worker_seconds = _children_cpu() - children
        total = sum(r["read"] for r in rows)
        store.close()
    return {
        "mode": "files, one run per file" if sequential else "files, one run for all",
        "records": total,
        "seconds": round(wall, 2),
        "records_per_second": round(total / wall),
        "cpu_seconds": round(cpu_seconds, 2),  # the storing process
        "worker_cpu_seconds": round(worker_seconds, 2),  # the reading/normalising worker process(es)
        "records_per_cpu_second": round(total / (cpu_seconds + worker_seconds)),
        "load_average": os.getloadavg()[0],
        "sources": rows,
    }


def _children_cpu() -> float:
    """CPU seconds of the finished child processes (the ingest workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _calls(events: int) -> list[dict[str, Any]]:
    """Segment calls: one identify per ten events, the rest track/page, for events / 5 people."""
    calls: list[dict[str, Any]] = []
    for n in range(events):
        person = n % max(1, events // 5)
        base = {"messageId": f"bench-{n}", "userId": f"u{person}", "timestamp": "2026-10-01T10:00:00.000Z"}
        if n % 10 == 0:
            traits = {"email": f"person{person}@example.org", "firstName": "Pat", "lastName": f"Lee{person}"}
            calls.append(base | {"type": "identify", "traits": traits})
        elif n % 3 == 0:
            calls.append(base | {"type": "page", "name": "Home", "properties": {"path": "/"}})
        else:
            calls.append(base | {"type": "track", "event": "Product Viewed", "properties": {"sku": f"s{n % 500}"}})
    return calls


def _drive(port: int, bodies: list[bytes], clients: int) -> list[str]:
    """POST the bodies from ``clients`` concurrent HTTP clients; return the failures' texts."""
    import httpx

    failures: list[str] = []

    async def client(share: list[bytes]) -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", auth=("bench-key", ""), timeout=60) as http:
            for body in share:
                response = await http.post("/v1/batch", content=body, headers={"Content-Type": "application/json"})
                if response.status_code != 200:
                    failures.append(response.text[:200])

    async def main() -> None:
        await asyncio.gather(*(client(bodies[i::clients]) for i in range(clients)))

    asyncio.run(main())
    return failures


def bench_http(events: int, clients: int, batch: int) -> dict[str, Any]:
    import uvicorn

    from cdp.access import open_store
    from cdp.access.context import AccessContext
    from cdp.api import create_app

    with tempfile.TemporaryDirectory() as tmp:
        settings = _settings(Path(tmp), write_keys=("bench-key",))
        store = open_store(settings, migrate=True)
        # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on connections accepted from a
        # socket whose proto says TCP (base_events._set_nodelay), as uvicorn's own host/port socket
        # does in `cdp serve`. With proto 0, every response's body waited for the client's delayed
        # ACK of its headers (Nagle): ~40 ms per request, which all earlier /v1/batch figures include.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        app = create_app(settings, store=store)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="none", access_log=False))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        calls = _calls(events)
        bodies = [json.dumps({"batch": calls[i : i + batch]}).encode() for i in range(0, len(calls), batch)]
        # The clients run in their own process, as they would in life: in the server's process
        # they would compete with it for the GIL, and the figure would measure httpx as much as cdp.
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            pool.apply(_drive, (port, [], 1))  # process started and httpx imported before the clock starts
            started = time.perf_counter()
            cpu = time.process_time()
            failures = pool.apply(_drive, (port, bodies, clients))
            cpu_seconds = time.process_time() - cpu
            parser_seconds = _parser_cpu(app)
        wall = time.perf_counter() - started
        server.should_exit = True
        thread.join(timeout=30)
        stored = store.counts(AccessContext(*OPS_ARGS)).get("records:website", 0)
        store.close()
    return {
        "mode": "http",
        "events": events,
        "stored": stored,
        "failures": len(failures),
        "clients": clients,
        "calls_per_request": batch,
        "seconds": round(wall, 2),
        "events_per_second": round(events / wall),
        "server_cpu_seconds": round(cpu_seconds, 2),  # event loop, group writer (this process)
        "parser_cpu_seconds": parser_seconds,  # the /v1/batch parser process, from its start
        "load_average": os.getloadavg()[0],
    }


def _parser_cpu(app: Any) -> float | None:
    """CPU seconds of the app's /v1/batch parser process so far (Linux /proc), if one runs."""
    parser = app.state.get("batch_parser")
    if parser is None:
        return None
    total = 0.0
    for pid in list(parser.pool._processes or {}):
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return round(total, 2)


def bench_crash(records: int, batch_size: int) -> dict[str, Any]:
    sys.path.insert(0, str(TESTS))
    from test_ingest_crash import RUN, write_calls  # the same input and ingest script as the test

    from cdp.access import open_store
    from cdp.access.context import AccessContext

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "calls.jsonl"
        good, bad = write_calls(path, records)
        settings = _settings(folder)
        store = open_store(settings, migrate=True)
        env = {
            **os.environ,
            "CDP_DATA_DIR": str(settings.data_dir),
            "CDP_BATCH_SIZE": str(batch_size),
            "CDP_LOG_LEVEL": "ERROR",
        }
        ops = AccessContext(*OPS_ARGS)
        kills: list[int] = []
        for fraction in (0.3, 0.7):
            process = subprocess.Popen([sys.executable, "-c", RUN, str(path)], env=env, cwd=folder)
            deadline = time.monotonic() + 600
            while store.counts(ops).get("records:website", 0) < fraction * len(good):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the ingest ended or stalled before it could be killed")
                time.sleep(0.2)
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills.append(store.counts(ops).get("records:website", 0))
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", RUN, str(path)], env=env, cwd=folder, capture_output=True, text=True, check=True
        )
        restart_seconds = time.perf_counter() - started
        found = store.counts(ops)
        from sqlalchemy import text

        with store.engine.connect() as connection:
            distinct = connection.execute(text("SELECT count(DISTINCT source_record_id) FROM records")).scalar()
        store.close()
    accepted, quarantined = found.get("records:website", 0), found.get("quarantine", 0)
    return {
        "mode": "crash",
        "input_lines": records,
        "valid": len(good),
        "invalid": len(bad),
        "stored_when_killed": kills,
        "stored": accepted,
        "distinct_record_ids": distinct,
        "quarantined": quarantined,
        "accepted_or_quarantined": accepted + quarantined,
        "exact": accepted == len(good) and quarantined == len(bad) and distinct == accepted,
        "last_run": json.loads(done.stdout.strip().splitlines()[-1]),
        "last_run_seconds": round(restart_seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["files", "http", "crash"])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=None, help="records per batch (default: the setting's 2,000)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sequential", action="store_true", help="files: one run per file instead of one for all")
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    if args.mode == "files":
        result = bench_files(min(args.records, 500_000), args.profile, args.batch_size, sequential=args.sequential)
    elif args.mode == "http":
        result = bench_http(min(args.events, 200_000), max(1, min(args.clients, 16)), max(1, args.batch))
    else:
        result = bench_crash(min(args.records, 200_000), args.batch_size or 2000)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
