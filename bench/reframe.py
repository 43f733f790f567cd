"""What the reframe search costs: verifications through two server processes, with it and without.

Run from the repository root: ``python -m bench.reframe [--repeat N]``.

Two `provenance serve` processes run side by side on their own data directories, one with
`PROVENANCE_REFRAMES=true` (the default) and one with it off; bigbuckbunny, bikes and carphone are
registered in both (fingerprints only, not timed). Each clip below is then submitted to both
(`POST /v1/verifications`, interleaved, each server first in every other round, median of
`--repeat`), and decoded once more in this
process with the settings verification uses (`bench.fingerprint.decode_only`, no frame
converted): the reference the 2x-decode target is stated against.

- the standard clip (bigbuckbunny re-encoded, x264 medium crf 28, as in `bench.verify`): the plain
  search finds it, the reframe search never runs; what "with" costs here is keeping the small
  frames (`ClipPixels`);
- reposts of it (`generator.reposts`): a vertical crop, a mirror, a mirrored crop, a blurred
  fill, a screen recording, a picture in picture over bikes, a 3.5 degree rotation. Without the
  search they come back `unknown` at once; with it, found: the difference is the search's cost,
  by the view that found them.

Also printed: in this process, what keeping the small frames adds to fingerprinting the standard
clip (the only cost the search puts on a clip it never runs for), interleaved, median of
`--plain-repeat`; and what the index keeps for the strip search (codes per frame beside PDQ and
the centre hash), on the three originals.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.fingerprint import decode_only, default_clip
from frames.samples import sample_clip
from generator import reposts
from generator.reposts import Reframe
from generator.variants import reencode
from harness.manifests import signed_form
from harness.server import RunningServer, running_server
from provenance.core.config import DecodeLimits
from provenance.fingerprint import Fingerprint, compute_fingerprint
from provenance.signing import device_id_for, raw_public_key
from provenance.verify import thumbs
from provenance.verify.index import FrameIndex
from provenance.verify.reframe import ClipPixels

LIMITS = DecodeLimits()
REPO = Path(__file__).resolve().parent.parent
FORMS: dict[str, Reframe] = {
    "vertical crop": Reframe(window=(0.3, 0.0, 0.42, 1.0)),
    "mirror": Reframe(mirror=True),
    "mirrored crop": Reframe(mirror=True, window=(0.05, 0.0, 0.5, 1.0)),
    "blurred fill": Reframe(canvas=9 / 16, picture=(0.04, 0.36, 0.92, 0.29), fill="blurred"),
    "screen recording": Reframe(canvas=16 / 9, picture=(0.3, 0.16, 0.62, 0.62), fill="player", seed=2),
    "picture in picture": Reframe(canvas=16 / 9, picture=(0.08, 0.3, 0.6, 0.6), fill="video"),
    "rotation 3.5 deg": Reframe(degrees=3.5),
}


def _register(server: RunningServer, prints: dict[str, Fingerprint]) -> None:
    admin = {"Authorization": f"Bearer {(server.data_dir / 'admin.key').read_text().strip()}"}
    key = Ed25519PrivateKey.generate()
    raw = raw_public_key(key.public_key())
    httpx.post(
        f"{server.url}/v1/devices",
        headers=admin,
        json={"name": "bench", "public_key": base64.b64encode(raw).decode()},
        timeout=30,
    ).raise_for_status()
    camera = _key(server, admin, "camera")
    for fpr in prints.values():
        response = httpx.post(
            f"{server.url}/v1/registrations",
            headers=camera,
            data=signed_form(fpr, key, device_id_for(raw)),
            timeout=120,
        )
        response.raise_for_status()


def _key(server: RunningServer, admin: dict[str, str], scope: str) -> dict[str, str]:
    response = httpx.post(
        f"{server.url}/v1/clients", headers=admin, json={"name": scope, "scope": scope}, timeout=30
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['api_key']}"}


def _verify(server: RunningServer, headers: dict[str, str], clip: Path) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    response = httpx.post(
        f"{server.url}/v1/verifications",
        headers=headers,
        files={"media": (clip.name, clip.read_bytes(), "video/mp4")},
        timeout=300,
    )
    seconds = time.perf_counter() - start
    response.raise_for_status()
    return seconds, response.json()


def _summary(result: dict[str, Any]) -> str:
    notes = ",".join(sorted({f["kind"] for f in result.get("findings", [])})) or "-"
    return f"{result['verdict']} ({notes})"


def _index_cost(prints: dict[str, Fingerprint]) -> str:
    index = FrameIndex()
    for name, fpr in prints.items():
        index.add(name, fpr)
    frames = index.frame_count
    per_code = 32 + 4 + 4  # the code, its owner and its frame
    return (
        f"index: {frames} frames of the 3 originals; PDQ and centre hash {2 * per_code} bytes a frame, "
        f"strips {thumbs.STRIP_COUNT} x {per_code} = {thumbs.STRIP_COUNT * per_code} bytes a frame "
        f"({index.strip_count} strip codes), i.e. x{1 + thumbs.STRIP_COUNT / 2:.1f} the codes "
        f"(plus the multi-index tables, 4 bytes a code a table once hashed)"
    )


def _pixels_overhead(clip: Path, repeat: int) -> str:
    """Fingerprinting the clip with and without keeping its small frames, interleaved, in this process."""
    plain: list[float] = []
    kept: list[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        compute_fingerprint(clip, limits=LIMITS, version=1)
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        compute_fingerprint(clip, limits=LIMITS, version=1, sinks=[ClipPixels()])
        kept.append(time.perf_counter() - start)
    a, b = statistics.median(plain), statistics.median(kept)
    return (
        f"in process, the standard clip's fingerprint: {a:.3f} s, keeping the small frames too {b:.3f} s "
        f"(x{b / a:.2f}; median of {repeat})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--plain-repeat", type=int, default=9, help="runs of the in-process overhead")
    args = parser.parse_args()
    original = default_clip()
    data = original.parent
    prints = {
        "bunny": compute_fingerprint(original, limits=LIMITS),
        "bikes": compute_fingerprint(data / "bikes.mp4", limits=LIMITS),
        "carphone": compute_fingerprint(data / "carphone_pristine.mp4", limits=LIMITS),
    }
    env = {"PROVENANCE_CHAIN_MODE": "off", "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clips = {"standard clip": root / "standard.mp4"}
        reencode(original, clips["standard clip"], crf=28, preset="medium")
        for name, reframe in FORMS.items():
            clips[name] = root / f"{name.replace(' ', '-')}.mp4"
            reposts.repost(original, clips[name], reframe, sample_clip("bikes.mp4"))
        (root / "with").mkdir()
        (root / "without").mkdir()
        with (
            running_server(root / "with" / "var", extra_env={**env, "PROVENANCE_REFRAMES": "true"}) as with_,
            running_server(
                root / "without" / "var", extra_env={**env, "PROVENANCE_REFRAMES": "false"}
            ) as without,
        ):
            servers = {"with": with_, "without": without}
            keys = {}
            for label, server in servers.items():
                _register(server, prints)
                admin = {"Authorization": f"Bearer {(server.data_dir / 'admin.key').read_text().strip()}"}
                keys[label] = _key(server, admin, "newsroom")
            times: dict[tuple[str, str], list[float]] = {}
            results: dict[tuple[str, str], dict[str, Any]] = {}
            decode: dict[str, list[float]] = {}
            for clip in clips.values():  # warm both servers and the file cache, untimed
                for label, server in servers.items():
                    _verify(server, keys[label], clip)
                decode_only(clip)
            for round_ in range(args.repeat):
                # The two servers take turns at going first: neither gains from the order.
                order = list(servers.items())[:: 1 if round_ % 2 == 0 else -1]
                for name, clip in clips.items():
                    start = time.perf_counter()
                    decode_only(clip)
                    decode.setdefault(name, []).append(time.perf_counter() - start)
                    for label, server in order:
                        seconds, result = _verify(server, keys[label], clip)
                        times.setdefault((name, label), []).append(seconds)
                        results[(name, label)] = result
        overhead = _pixels_overhead(clips["standard clip"], args.plain_repeat)
    print(f"clips made of {original.name}; median of {args.repeat} runs each, both servers interleaved")
    print(
        f"{'clip':<20} {'decode s':>8} {'without s':>9} {'with s':>8} {'with/without':>12} "
        f"{'with/decode':>11}   without -> with"
    )
    for name in clips:
        d = statistics.median(decode[name])
        off = statistics.median(times[(name, "without")])
        on = statistics.median(times[(name, "with")])
        print(
            f"{name:<20} {d:8.3f} {off:9.3f} {on:8.3f} {on / off:12.2f} {on / d:11.2f}   "
            f"{_summary(results[(name, 'without')])} -> {_summary(results[(name, 'with')])}"
        )
    print("(a verification request's seconds, through the server: upload, decode, hashes, search,")
    print(" comparison, report; the 2x-decode target is bench.verify's in-process measure; here")
    print(" with/without is the point)")
    print(_index_cost(prints))
    print(overhead)


if __name__ == "__main__":
    main()
