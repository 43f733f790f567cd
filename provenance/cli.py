"""The `provenance` command: the server, the admin's tools and the camera app's client side."""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from provenance import fingerprint as fp
from provenance.client import DEFAULT_SERVER, Api, ClientError, resolve_api_key
from provenance.core.config import get_settings
from provenance.core.errors import DomainError
from provenance.core.timeutil import utcnow

app = typer.Typer(
    help="Media provenance: register originals, verify clips.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
client_app = typer.Typer(help="API clients (admin).", no_args_is_help=True)
device_app = typer.Typer(help="Device keys and enrolment.", no_args_is_help=True)
receipt_app = typer.Typer(
    help="Receipts: check them against the chain, without our server.", no_args_is_help=True
)
app.add_typer(client_app, name="client")
app.add_typer(device_app, name="device")
app.add_typer(receipt_app, name="receipt")
c2pa_app = typer.Typer(help="Content Credentials (C2PA).", no_args_is_help=True)
app.add_typer(c2pa_app, name="c2pa")
eval_app = typer.Typer(help="Continuous evaluation of detection.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

ServerOpt = Annotated[str, typer.Option("--server", envvar="PROVENANCE_SERVER", help="server URL")]
ApiKeyOpt = Annotated[str | None, typer.Option("--api-key", envvar="PROVENANCE_API_KEY", help="API key")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ReportOpt = Annotated[
    Path | None, typer.Option("--report", help="also save the match report, one self-contained HTML file")
]


def fail(reason: str, code: int = 1) -> NoReturn:
    err.print(f"error: {reason}", markup=False, highlight=False)
    raise typer.Exit(code)


@contextmanager
def one_line_errors() -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        fail(str(exc))
    except DomainError as exc:
        fail(f"{exc.code}: {exc.detail}", 2)
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), 2)


def api(server: str, api_key: str | None) -> Api:
    return Api(server, resolve_api_key(api_key))


def emit(data: Any, as_json: bool, text: Callable[[], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    else:
        text()


def fingerprint_with_progress(video: Path, quiet: bool) -> fp.Fingerprint:
    settings = get_settings()
    if quiet or not err.is_terminal:
        return fp.compute_fingerprint(video, limits=settings.limits, sample_fps=settings.sample_fps)
    with Progress(
        TextColumn("fingerprinting {task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(video.name, total=1.0)
        return fp.compute_fingerprint(
            video,
            limits=settings.limits,
            sample_fps=settings.sample_fps,
            progress=lambda f: progress.update(task, completed=f),
        )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- server ---


@app.command()
def serve() -> None:
    """Run the API with the embedded defaults (SQLite under ./var)."""
    import uvicorn

    from provenance.demo import seed_demo
    from provenance.service import open_service

    settings = get_settings()
    service = open_service(settings)
    demo = seed_demo(service) if settings.demo else None
    base = f"http://{settings.host}:{settings.port}"
    key_file = settings.data_dir / "admin.key"
    out.print(f"[bold]provenance[/] listening on {base}  (API docs: {base}/docs)")
    out.print(f"database: {settings.resolved_database_url}")
    if service.new_admin_key:
        out.print(f"first start: admin API key written to {key_file} (mode 0600)")
    out.print("next, in another terminal:")
    for line in (
        ".venv/bin/provenance device init --out camera.key",
        ".venv/bin/provenance device enroll --public-key-file camera.key.pub --name my-camera",
        ".venv/bin/provenance client create --name my-camera-app --scope camera",
        "PROVENANCE_API_KEY=<camera key> .venv/bin/provenance register CLIP --device-key camera.key --upload",
    ):
        out.print(f"  {line}", markup=False)
    if demo:
        out.print("demo seeded: the sample clips are registered; verify a re-encoded and a tampered copy:")
        for line in demo:
            out.print(f"  {line}", markup=False)
    uvicorn.run(service.app, host=settings.host, port=settings.port, log_level="info")


# --- clients ---


@client_app.command("create")
def client_create(
    name: Annotated[str, typer.Option("--name")],
    scope: Annotated[str, typer.Option("--scope", help="admin, camera, newsroom or factchecker")],
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make an API key (admin); it is printed once."""
    with one_line_errors():
        created = api(server, api_key).request("POST", "/v1/clients", json={"name": name, "scope": scope})
    emit(created, as_json, lambda: out.print(created["api_key"], markup=False))


# --- devices ---


@device_app.command("init")
def device_init(
    out_file: Annotated[
        Path, typer.Option("--out", help="private key file; the public key goes to FILE.pub")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Make an Ed25519 device key on this device."""
    from provenance.signing import device_id_for, raw_public_key, write_key_files

    if out_file.exists():
        fail(f"{out_file} exists; refusing to overwrite a device key", 2)
    with one_line_errors():
        key = write_key_files(out_file)
    raw = raw_public_key(key.public_key())
    info = {
        "device_id": device_id_for(raw),
        "public_key": base64.b64encode(raw).decode(),
        "private_key_file": str(out_file),
        "public_key_file": f"{out_file}.pub",
    }
    emit(
        info,
        as_json,
        lambda: out.print(f"{info['public_key']}\ndevice id: {info['device_id']}", markup=False),
    )


@device_app.command("enroll")
def device_enroll(
    public_key_file: Annotated[Path, typer.Option("--public-key-file")],
    name: Annotated[str, typer.Option("--name")],
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Enrol a device by its public key (admin)."""
    from provenance.signing import load_public_key, raw_public_key

    with one_line_errors():
        try:
            public = base64.b64encode(raw_public_key(load_public_key(public_key_file))).decode()
        except ValueError as exc:
            fail(f"{public_key_file}: {exc}", 2)
        device = api(server, api_key).request(
            "POST", "/v1/devices", json={"name": name, "public_key": public}
        )
    emit(device, as_json, lambda: out.print(f"enrolled {device['id']} ({device['name']})", markup=False))


@device_app.command("revoke")
def device_revoke(
    device_id: str, server: ServerOpt = DEFAULT_SERVER, api_key: ApiKeyOpt = None, as_json: JsonOpt = False
) -> None:
    """Revoke a device (admin): captures after now are refused."""
    with one_line_errors():
        device = api(server, api_key).request("POST", f"/v1/devices/{device_id}/revoke")
    emit(
        device, as_json, lambda: out.print(f"revoked {device['id']} at {device['revoked_at']}", markup=False)
    )


# --- fingerprint and register (what runs on the device) ---


@app.command()
def fingerprint(
    video: Path,
    out_file: Annotated[Path | None, typer.Option("--out", help="write the binary fingerprint here")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compute the fingerprint locally; no server needed."""
    with one_line_errors():
        result = fingerprint_with_progress(video, quiet=as_json)
        encoded = result.encode()
        if out_file is not None:
            out_file.write_bytes(encoded)
    info = {
        "version": result.version,
        "kind": result.kind,
        "digest": result.digest(),
        "width": result.width,
        "height": result.height,
        "duration": result.duration,
        "sample_fps": result.sample_fps,
        "frames": len(result.frames),
        "bytes": len(encoded),
    }
    emit(
        info,
        as_json,
        lambda: out.print(
            f"fingerprint v{result.version} {result.digest()}\n{info['frames']} frames of {result.kind}, "
            f"{result.width}x{result.height}, {result.duration:.2f} s, {len(encoded)} bytes",
            markup=False,
        ),
    )


@app.command()
def register(
    video: Path,
    device_key: Annotated[Path, typer.Option("--device-key", help="the device's private key file")],
    upload: Annotated[bool, typer.Option("--upload", help="also upload the media")] = False,
    wait: Annotated[
        float, typer.Option("--wait", help="seconds to wait for the receipt to be anchored")
    ] = 0.0,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fingerprint on this device, sign the capture manifest, register it."""
    from provenance.signing import (
        build_manifest,
        device_id_for,
        load_private_key,
        raw_public_key,
        sign_manifest,
    )

    with one_line_errors():
        try:
            key = load_private_key(device_key)
        except ValueError as exc:
            fail(f"{device_key}: {exc}", 2)
        result = fingerprint_with_progress(video, quiet=as_json)
        encoded = result.encode()
        manifest = build_manifest(
            kind="image" if result.kind == "image" else "video",
            content_sha256=sha256_file(video),
            fingerprint_version=result.version,
            fingerprint_bytes=encoded,
            fingerprint_digest=result.digest(),
            captured_at=utcnow(),
            device_id=device_id_for(raw_public_key(key.public_key())),
        ).to_json()
        data = {"manifest": json.dumps(manifest), "signature": sign_manifest(manifest, key)}
        files = {"media": video} if upload else {}
        client = api(server, api_key)
        registration = client.post_files("/v1/registrations", data, files)
        receipt_path = f"/v1/registrations/{registration['id']}/receipt"
        registration["receipt"] = client.request("GET", receipt_path)
        deadline = time.monotonic() + wait
        while registration["receipt"]["anchor"]["status"] != "anchored" and time.monotonic() < deadline:
            time.sleep(0.5)
            registration["receipt"] = client.request("GET", receipt_path)
        registration["anchor_status"] = registration["receipt"]["anchor"]["status"]
    emit(
        registration,
        as_json,
        lambda: out.print(
            f"registered {registration['id']}\ncontent sha256 {registration['content_sha256']}\n"
            f"captured at {registration['captured_at']}, anchoring: {registration['anchor_status']}",
            markup=False,
        ),
    )


def print_verification(result: dict[str, Any]) -> None:
    verdict = result.get("verdict", result.get("status"))
    colour = {"authentic": "green", "tampered": "red", "unknown": "yellow"}.get(str(verdict), "white")
    out.print(f"[bold {colour}]{str(verdict).upper()}[/]  confidence {result.get('confidence', 0):.2f}")
    match = result.get("match")
    if not match:
        out.print("no registered original matches this clip", markup=False)
        return
    q, o = match["query_range"], match["original_range"]
    out.print(
        f"matches {match['registration_id']} (device {match['device_id']}, captured {match['captured_at']})",
        markup=False,
    )
    out.print(
        f"clip {q[0]:.2f}-{q[1]:.2f} s = original {o[0]:.2f}-{o[1]:.2f} s, "
        f"similarity {match['similarity']:.2f}",
        markup=False,
    )
    for start, end in match.get("tampered_ranges", []):
        out.print(f"  tampered: {start:.2f}-{end:.2f} s of the clip", markup=False)
    out.print(
        f"device signature {'valid' if match.get('signature_valid') else 'INVALID'}; "
        f"anchor {match.get('anchor', {}).get('status')}",
        markup=False,
    )


@app.command()
def verify(
    video: Path,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
    report: ReportOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit a clip and print whether it is authentic, tampered or unknown."""
    with one_line_errors():
        client = api(server, api_key)
        with Progress(
            TextColumn("verifying {task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=as_json or not err.is_terminal,
        ) as progress:
            task = progress.add_task(video.name, total=None)
            result = client.post_files("/v1/verifications", {}, {"media": video})
            while result.get("status") in ("queued", "running"):
                time.sleep(0.5)
                result = client.request("GET", f"/v1/verifications/{result['id']}")
            progress.update(task, total=1, completed=1)
    if result.get("status") == "failed":
        error = result.get("error", {})
        fail(f"{error.get('code', 'verification_failed')}: {error.get('detail', '')}")
    if report is not None:
        with one_line_errors():
            save_report(client, result["id"], report)
    emit(result, as_json, lambda: print_verification(result))


def save_report(client: Api, verification_id: str, out_file: Path, attempts: int = 60) -> None:
    """Save the self-contained HTML report; the server may still be drawing it for a moment."""
    for attempt in range(attempts):
        try:
            html = client.raw(
                "GET", f"/v1/verifications/{verification_id}/report", params={"download": "1"}
            ).text
            break
        except ClientError as exc:
            if not str(exc).startswith("report_pending") or attempt == attempts - 1:
                raise
            time.sleep(1.0)
    out_file.write_text(html, encoding="utf-8")
    err.print(f"report written to {out_file}", markup=False, highlight=False)


@receipt_app.command("verify")
def receipt_verify(
    receipt_file: Annotated[Path, typer.Argument(metavar="RECEIPT.json")],
    rpc: Annotated[str, typer.Option("--rpc", help="JSON-RPC URL of the chain named in the receipt")],
    as_json: JsonOpt = False,
) -> None:
    """Check a receipt: signature, log leaf, inclusion proof, anchor on chain. Calls no endpoint of ours."""
    from provenance.receipts import verify_receipt

    try:
        receipt = json.loads(receipt_file.read_text())
    except (OSError, ValueError) as exc:
        fail(f"receipt_format: cannot read {receipt_file}: {exc}", 2)
    checks = verify_receipt(receipt, rpc)
    failed = next((c for c in checks if not c.ok), None)
    if as_json:
        emit(
            {"valid": failed is None, "checks": [{"name": c.name, "ok": c.ok} for c in checks]},
            True,
            lambda: None,
        )
    if failed is not None:
        fail(f"{failed.name}: {failed.reason}")
    if not as_json:
        out.print("valid: " + ", ".join(c.name for c in checks), markup=False)


@c2pa_app.command("sign")
def c2pa_sign(
    video: Path,
    out_file: Annotated[Path, typer.Option("--out", help="where to write the signed copy")],
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give a registered original a C2PA manifest signed by the service (soft binding + receipt)."""
    with one_line_errors():
        with video.open("rb") as fh:
            response = api(server, api_key).raw("POST", "/v1/c2pa/sign", files={"media": (video.name, fh)})
        out_file.write_bytes(response.content)
    info = {
        "manifest_id": response.headers.get("X-C2PA-Manifest-Id"),
        "registration_id": response.headers.get("X-Registration-Id"),
        "out": str(out_file),
    }
    emit(
        info,
        as_json,
        lambda: out.print(
            f"signed {out_file} (manifest {info['manifest_id']}, registration {info['registration_id']})",
            markup=False,
        ),
    )


@eval_app.command("run")
def eval_run(
    originals: Annotated[
        list[Path] | None, typer.Argument(help="evaluation originals (default: sample clips)")
    ] = None,
    attack: Annotated[list[str] | None, typer.Option("--attack", help="only these attacks")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make fakes and benign variants of the evaluation originals, verify each, store the metrics.

    Runs in this process on the data directory (PROVENANCE_DATA_DIR), like the server's worker."""
    from provenance.evaluation import public_run
    from provenance.service import open_service

    settings = get_settings()
    service = open_service(settings)
    service.matcher.rebuild()
    with one_line_errors():
        run = service.evaluator.run(
            originals or None,
            attack or None,
            progress=None if as_json else lambda line: err.print(line, markup=False),
        )
    body = public_run(run)
    body["health"] = service.evaluator.status()
    service.engine.dispose()
    if run.status != "done":
        fail(f"eval_failed: {run.error}")
    emit(body, as_json, lambda: print_evaluation(body))


def print_evaluation(body: dict[str, Any]) -> None:
    out.print(
        f"evaluation {body['id']} (comparer {body['comparer']}, generator {body['generator']})", markup=False
    )

    def num(value: float | None) -> str:
        return "  —" if value is None else f"{value:.2f}"

    for name, row in body["metrics"]["attacks"].items():
        if row["kind"] == "tamper":
            out.print(
                f"  {name:15} detected {num(row['detection_rate'])}  time IoU {num(row['time_iou'])}"
                f"  region IoU {num(row['region_iou'])}  (n={row['n']})",
                markup=False,
            )
        else:
            out.print(
                f"  {name:15} false positives {num(row['false_positive_rate'])}  (n={row['n']})", markup=False
            )
    health = body["health"]
    out.print(
        f"status: {health['status']}" + "".join(f"\n  {r}" for r in health.get("reasons", [])), markup=False
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
