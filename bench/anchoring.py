"""Registrations per second through the API with batched anchoring, and gas per registration,
against anchoring each registration in its own transaction — side by side in one run.

    python -m bench.anchoring [--registrations 3000] [--concurrency 32] [--per-item 200] [--apis N]
                              [--body json|multipart] [--batch 50]

The headline is one registration per request (`--body json`: the manifest as a JSON body, what a
camera app sends without media; `multipart`: the form a camera app sends with media). The bulk
row (`--batch N`, N per request to POST /v1/registrations/batch) is a separate figure.

With `--apis N` (N > 1) the registrations go round-robin to N API processes (`serve --role api`)
with one worker (`serve --role worker`) anchoring, on a fresh PostgreSQL database; otherwise to
one `serve` process with the embedded defaults (SQLite).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from frames.samples import sample_clip
from harness.accounts import admin_headers, enrol_device, make_key
from harness.server import running_server
from harness.topology import Camera, registration_form, topology
from provenance import fingerprint as fp
from provenance.chain.anvil import DEV_ACCOUNTS, AnvilProcess
from provenance.chain.contract import ChainClient
from provenance.core.config import DecodeLimits
from provenance.signing import device_id_for, raw_public_key


def signed_manifests(n: int, key: Ed25519PrivateKey) -> list[dict[str, str]]:
    """Form fields: the manifest's JSON text and its signature."""
    fpr = fp.compute_fingerprint(sample_clip("carphone_pristine.mp4"), limits=DecodeLimits())
    camera = Camera(key=key, device_id=device_id_for(raw_public_key(key.public_key())), headers={})
    return [registration_form(camera, fpr) for _ in range(n)]


def json_body(form: dict[str, str]) -> bytes:
    """The JSON body of one registration: the manifest as an object (no media goes with it)."""
    return json.dumps({"manifest": json.loads(form["manifest"]), "signature": form["signature"]}).encode()


async def post_all(
    urls: list[str],
    headers: dict[str, str],
    forms: list[dict[str, str]],
    concurrency: int,
    body: str = "json",
    batch: int = 1,
) -> list[str]:
    """POST every registration, `concurrency` at a time: one per request (JSON or multipart), or
    `batch` per request to /v1/registrations/batch. Any refusal stops the run."""
    requests: list[object]
    if batch > 1:
        requests = [
            json.dumps({"items": [json.loads(json_body(f)) for f in forms[i : i + batch]]}).encode()
            for i in range(0, len(forms), batch)
        ]
    elif body == "json":
        # Encoded before the clock starts, as a camera app holds its signed manifests ready.
        requests = [json_body(form) for form in forms]
    else:
        requests = list(forms)
    queue: asyncio.Queue[object] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    ids: list[str] = []
    json_headers = {**headers, "Content-Type": "application/json"}

    async def worker(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as http:
            await work(http)

    async def work(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            request = queue.get_nowait()
            if batch > 1:
                assert isinstance(request, bytes)
                r = await http.post("/v1/registrations/batch", content=request, headers=json_headers)
                if r.status_code != 200 or r.json()["refused"]:
                    raise RuntimeError(r.text)
                ids.extend(item["registration"]["id"] for item in r.json()["items"])
                continue
            if isinstance(request, bytes):
                r = await http.post("/v1/registrations", content=request, headers=json_headers)
            else:
                assert isinstance(request, dict)
                # Multipart, as camera apps send it with media: URL-encoding 30 kB of base64 costs
                # more than the request.
                r = await http.post("/v1/registrations", files={k: (None, v) for k, v in request.items()})
            if r.status_code != 201:
                raise RuntimeError(r.text)
            ids.append(r.json()["id"])

    await asyncio.gather(*(worker(urls[i % len(urls)]) for i in range(concurrency)))
    return ids


@contextmanager
def servers(root: Path, env: dict[str, str], apis: int) -> Iterator[tuple[list[str], dict[str, str]]]:
    """The API URLs and the admin headers: one embedded process, or `apis` API processes + a worker."""
    if apis <= 1:
        with running_server(root / "var", extra_env=env) as server:
            yield [server.url], admin_headers(server.data_dir)
        return
    # The topology starts its own anvil; point it at ours so the gas figures read one chain.
    with topology(root / "multi", apis=apis, workers=1, extra_env=env) as topo:
        yield [p.url for p in topo.apis if p.url], topo.admin_headers()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--registrations", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--per-item", type=int, default=200)
    parser.add_argument("--apis", type=int, default=1, help="API processes (>1: PostgreSQL + a worker)")
    parser.add_argument(
        "--rate-limit-storage",
        default="auto",
        help="auto (the database with PostgreSQL: one counter row per key that every request updates) "
        "or memory (per process)",
    )
    parser.add_argument(
        "--body",
        choices=("json", "multipart"),
        default="json",
        help="single registrations as JSON bodies (no media) or as multipart forms",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=50,
        help="then the same number again through POST /v1/registrations/batch, this many per request "
        "(0: skip); reported on a row of its own, never as the headline",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, AnvilProcess() as anvil:
        # Batches close only at 1,000 leaves, so the gas figure is the one for batches of 1,000.
        env = {
            "PROVENANCE_CHAIN_RPC": anvil.rpc_url,
            "PROVENANCE_ANCHOR_MAX_LEAVES": "1000",
            "PROVENANCE_ANCHOR_INTERVAL_S": "3600",
            # Throughput, not the per-key limits, is measured here.
            "PROVENANCE_RATE_LIMIT_DEFAULT": "100000/second;6000000/minute",
            "PROVENANCE_RATE_LIMIT_STORAGE": args.rate_limit_storage,
        }
        with servers(Path(tmp), env, args.apis) as (urls, admin):
            url = urls[0]
            with httpx.Client(base_url=url) as http:
                device = enrol_device(http, admin, "bench")
                camera = make_key(http, admin, "camera", "bench")
            forms = signed_manifests(args.registrations, device.key)

            started = time.perf_counter()
            ids = asyncio.run(post_all(urls, camera, forms, args.concurrency, args.body))
            accepted = time.perf_counter() - started
            leaves = len(ids) + 1  # the device enrolment is a leaf too
            contract = httpx.get(f"{url}/health").json()["chain"]["contract"]
            reader = ChainClient(anvil.rpc_url, None, contract_address=contract)
            # Batches close at 1,000 waiting leaves only, so the last (< 1,000) stay unanchored here.
            while leaves - reader.latest_tree_size() >= 1000:
                time.sleep(0.2)
            full = reader.latest_tree_size()
            anchored = time.perf_counter() - started

            bulk_rate: float | None = None
            if args.batch > 1:
                # A camera app syncing offline captures: many signed manifests per request.
                more = signed_manifests(args.registrations, device.key)
                started = time.perf_counter()
                bulk_ids = asyncio.run(
                    post_all(urls, camera, more, max(1, min(args.concurrency, 8)), batch=args.batch)
                )
                bulk_rate = len(bulk_ids) / (time.perf_counter() - started)

        events = reader.contract.events.Anchored().get_logs(from_block=0)
        batch_gas = sum(
            int(reader.w3.eth.get_transaction_receipt(e["transactionHash"])["gasUsed"]) for e in events
        )
        batched_per_reg = batch_gas / max(int(e["args"]["treeSize"]) for e in events)

        # Baseline: every registration in its own transaction, on a fresh registry.
        writer = ChainClient(anvil.rpc_url, DEV_ACCOUNTS[1].private_key)
        writer.deploy()
        gas = [
            writer.anchor(hashlib.sha256(os.urandom(32)).digest(), i + 1).gas_used
            for i in range(args.per_item)
        ]
        per_item = statistics.mean(gas)

    where = (
        "1 process (embedded, SQLite)"
        if args.apis <= 1
        else f"{args.apis} API processes + 1 worker (PostgreSQL)"
    )
    print(
        f"registrations: {len(ids)} at concurrency {args.concurrency} through {where}, "
        f"one per request ({args.body} body)"
    )
    print(f"{'':32}{'value':>14}")
    print(f"{'accepted per second (API)':32}{len(ids) / accepted:>14.1f}")
    if bulk_rate is not None:
        print(f"{f'  bulk: {args.batch} per request':32}{bulk_rate:>14.1f}  (POST /v1/registrations/batch)")
    print(f"{'anchored per second (end to end)':32}{full / anchored:>14.1f}")
    print(f"{'anchor transactions':32}{len(events):>14d}")
    print(f"{'gas per registration, batched':32}{batched_per_reg:>14.1f}")
    print(f"{'gas per registration, per item':32}{per_item:>14.1f}")
    print(f"ratio per-item / batched gas: {per_item / batched_per_reg:.0f}x")


if __name__ == "__main__":
    main()
