"""Registrations per second through the API with batched anchoring, and gas per registration,
against anchoring each registration in its own transaction — side by side in one run.

    python -m bench.anchoring [--registrations 3000] [--concurrency 32] [--per-item 200]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provenance import fingerprint as fp
from provenance.chain.anvil import DEV_ACCOUNTS, AnvilProcess
from provenance.chain.contract import ChainClient
from provenance.core.config import DecodeLimits
from provenance.core.timeutil import utcnow
from provenance.signing import build_manifest, device_id_for, raw_public_key, sign_manifest
from tests.e2e.server import running_server
from tests.samples import sample_clip


def signed_manifests(n: int, key: Ed25519PrivateKey) -> list[dict[str, str]]:
    fpr = fp.compute_fingerprint(sample_clip("carphone_pristine.mp4"), limits=DecodeLimits())
    device_id = device_id_for(raw_public_key(key.public_key()))
    forms = []
    for _ in range(n):
        manifest = build_manifest(
            kind="video",
            content_sha256=secrets.token_hex(32),
            fingerprint_version=fpr.version,
            fingerprint_bytes=fpr.encode(),
            fingerprint_digest=fpr.digest(),
            captured_at=utcnow(),
            device_id=device_id,
        ).to_json()
        forms.append({"manifest": json.dumps(manifest), "signature": sign_manifest(manifest, key)})
    return forms


async def post_all(
    url: str, headers: dict[str, str], forms: list[dict[str, str]], concurrency: int
) -> list[str]:
    queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    for form in forms:
        queue.put_nowait(form)
    ids: list[str] = []

    async def worker(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            form = queue.get_nowait()
            # Multipart, as camera apps send it: URL-encoding 30 kB of base64 costs more than the request.
            r = await http.post("/v1/registrations", files={k: (None, v) for k, v in form.items()})
            if r.status_code != 201:
                raise RuntimeError(r.text)
            ids.append(r.json()["id"])

    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return ids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--registrations", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--per-item", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, AnvilProcess() as anvil:
        # Batches close only at 1,000 leaves, so the gas figure is the one for batches of 1,000.
        env = {
            "PROVENANCE_CHAIN_RPC": anvil.rpc_url,
            "PROVENANCE_ANCHOR_MAX_LEAVES": "1000",
            "PROVENANCE_ANCHOR_INTERVAL_S": "3600",
        }
        with running_server(Path(tmp) / "var", extra_env=env) as server:
            admin = {"Authorization": f"Bearer {(server.data_dir / 'admin.key').read_text().strip()}"}
            key = Ed25519PrivateKey.generate()
            raw = raw_public_key(key.public_key())
            httpx.post(
                f"{server.url}/v1/devices",
                headers=admin,
                json={"name": "bench", "public_key": base64.b64encode(raw).decode()},
            ).raise_for_status()
            r = httpx.post(
                f"{server.url}/v1/clients", headers=admin, json={"name": "bench", "scope": "camera"}
            )
            camera = {"Authorization": f"Bearer {r.json()['api_key']}"}
            forms = signed_manifests(args.registrations, key)

            started = time.perf_counter()
            ids = asyncio.run(post_all(server.url, camera, forms, args.concurrency))
            accepted = time.perf_counter() - started
            full = (len(ids) + 1) // 1000 * 1000  # +1: the device enrolment is a leaf too
            contract = httpx.get(f"{server.url}/health").json()["chain"]["contract"]
            reader = ChainClient(anvil.rpc_url, None, contract_address=contract)
            while reader.latest_tree_size() < full:
                time.sleep(0.2)
            anchored = time.perf_counter() - started

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

    print(f"registrations: {len(ids)} at concurrency {args.concurrency}")
    print(f"{'':32}{'value':>14}")
    print(f"{'accepted per second (API)':32}{len(ids) / accepted:>14.1f}")
    print(f"{'anchored per second (end to end)':32}{full / anchored:>14.1f}")
    print(f"{'anchor transactions':32}{len(events):>14d}")
    print(f"{'gas per registration, batched':32}{batched_per_reg:>14.1f}")
    print(f"{'gas per registration, per item':32}{per_item:>14.1f}")
    print(f"ratio per-item / batched gas: {per_item / batched_per_reg:.0f}x")


if __name__ == "__main__":
    main()
