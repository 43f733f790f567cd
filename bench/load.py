"""A bounded load test: concurrent clients registering and verifying for a fixed time, against the
scaled-out topology (API processes + workers, PostgreSQL, anvil) and against one process
(`serve --role all` on the same PostgreSQL and chain), side by side in one run.

    python -m bench.load [--clients 30] [--duration 60] [--apis 2] [--workers 2]

Each client has its own camera or newsroom API key (rate limits are per key) and loops: four
registrations (signed manifests, as camera apps send them), then one verification of a 4-second
clip (answered within the request). Every non-2xx answer and transport error counts as an error.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from frames.samples import sample_clip
from harness.accounts import admin_headers, enrol_device
from harness.manifests import signed_form
from harness.topology import api_key, topology
from provenance import fingerprint as fp
from provenance.core.config import DecodeLimits

REGISTRATIONS_PER_VERIFICATION = 4
# The bench measures throughput, not the per-key limits: each client stays far below them anyway.
ENV = {"PROVENANCE_RATE_LIMIT_DEFAULT": "1000/second;60000/minute", "PROVENANCE_ANCHOR_INTERVAL_S": "2"}


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"register": [], "verify": []})
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def ok(self) -> int:
        return sum(len(v) for v in self.latencies.values())


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Client:
    """One simulated client: a camera device and key, and a newsroom key."""

    def __init__(self, url: str, admin: dict[str, str], fpr: fp.Fingerprint) -> None:
        self.url = url
        self.fpr = fpr
        with httpx.Client(base_url=url, timeout=30) as http:
            device = enrol_device(http, admin, "load")
        self.key, self.device_id = device.key, device.id
        self.camera = api_key(url, admin, "camera")
        self.newsroom = api_key(url, admin, "newsroom")

    def form(self) -> dict[str, tuple[None, str]]:
        """A fresh capture's registration, as multipart fields."""
        return {
            name: (None, value) for name, value in signed_form(self.fpr, self.key, self.device_id).items()
        }


async def run_clients(
    urls: list[str], clients: list[Client], clip: bytes, duration: float, stats: Stats
) -> None:
    deadline = time.monotonic() + duration

    async def one(i: int, client: Client) -> None:
        url = urls[i % len(urls)]
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            step = 0
            while time.monotonic() < deadline:
                verify = step % (REGISTRATIONS_PER_VERIFICATION + 1) == REGISTRATIONS_PER_VERIFICATION
                step += 1
                started = time.perf_counter()
                try:
                    if verify:
                        r = await http.post(
                            "/v1/verifications",
                            headers=client.newsroom,
                            files={"media": ("clip.mp4", clip, "video/mp4")},
                        )
                    else:
                        r = await http.post("/v1/registrations", headers=client.camera, files=client.form())
                except httpx.HTTPError as exc:
                    stats.errors.append(type(exc).__name__)
                    continue
                took = time.perf_counter() - started
                if r.status_code in (200, 201, 202):
                    stats.latencies["verify" if verify else "register"].append(took)
                else:
                    stats.errors.append(f"{r.status_code} {r.text[:120]}")

    started = time.monotonic()
    await asyncio.gather(*(one(i, c) for i, c in enumerate(clients)))
    stats.elapsed = time.monotonic() - started


@contextmanager
def single_process(root: Path) -> Iterator[list[str]]:
    """One `serve --role all` process on PostgreSQL and anvil: today's single process."""
    from harness.server import running_server
    from harness.topology import fresh_database
    from provenance.chain.anvil import AnvilProcess

    root.mkdir(parents=True, exist_ok=True)
    with AnvilProcess() as anvil, fresh_database() as database_url:
        env = {**ENV, "PROVENANCE_CHAIN_RPC": anvil.rpc_url}
        with running_server(root / "var", database_url=database_url, extra_env=env) as server:
            yield [server.url]


def measure(urls: list[str], admin: dict[str, str], args: argparse.Namespace) -> Stats:
    clip_path = sample_clip("carphone_pristine.mp4")
    fpr = fp.compute_fingerprint(clip_path, limits=DecodeLimits())
    clients = [Client(urls[i % len(urls)], admin, fpr) for i in range(args.clients)]
    # The clip is registered, so verifications match it and do the whole flow (alignment, evidence).
    httpx.post(
        f"{urls[0]}/v1/registrations", headers=clients[0].camera, files=clients[0].form(), timeout=60
    ).raise_for_status()
    time.sleep(2)  # other API processes pick the registration up
    stats = Stats()
    asyncio.run(run_clients(urls, clients, clip_path.read_bytes(), args.duration, stats))
    return stats


def report(label: str, stats: Stats) -> list[str]:
    reg, ver = stats.latencies["register"], stats.latencies["verify"]
    both = reg + ver
    return [
        label,
        f"{stats.ok()}",
        f"{len(stats.errors)}",
        f"{stats.ok() / stats.elapsed:.1f}",
        f"{len(reg) / stats.elapsed:.1f}",
        f"{len(ver) / stats.elapsed:.1f}",
        f"{statistics.median(both) * 1000:.0f}" if both else "-",
        f"{percentile(both, 0.99) * 1000:.0f}" if both else "-",
        f"{statistics.median(reg) * 1000:.0f}" if reg else "-",
        f"{percentile(reg, 0.99) * 1000:.0f}" if reg else "-",
        f"{statistics.median(ver) * 1000:.0f}" if ver else "-",
        f"{percentile(ver, 0.99) * 1000:.0f}" if ver else "-",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--apis", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-single", action="store_true", help="only the multi-process topology")
    args = parser.parse_args()

    rows = []
    errors: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        with topology(Path(tmp) / "multi", apis=args.apis, workers=args.workers, extra_env=ENV) as topo:
            urls = [p.url for p in topo.apis if p.url]
            stats = measure(urls, topo.admin_headers(), args)
        label = f"{args.apis} api + {args.workers} workers"
        rows.append(report(label, stats))
        errors[label] = stats.errors
        if not args.skip_single:
            with single_process(Path(tmp) / "single") as urls:
                stats = measure(urls, admin_headers(Path(tmp) / "single" / "var"), args)
            rows.append(report("1 process (role all)", stats))
            errors["1 process (role all)"] = stats.errors

    header = [
        "setup",
        "requests",
        "errors",
        "req/s",
        "reg/s",
        "verify/s",
        "p50 ms",
        "p99 ms",
        "reg p50",
        "reg p99",
        "ver p50",
        "ver p99",
    ]
    print(
        f"{args.clients} clients for {args.duration:.0f} s; "
        f"{REGISTRATIONS_PER_VERIFICATION} registrations per verification"
    )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    for label, errs in errors.items():
        if errs:
            print(f"errors ({label}): {sorted(set(errs))[:5]}")


if __name__ == "__main__":
    main()
