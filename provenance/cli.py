"""The `provenance` command: the server, the admin's tools and the camera app's client side."""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from provenance import fingerprint as fp
from provenance.client import DEFAULT_SERVER, Api, ClientError, resolve_api_key
from provenance.core.config import get_settings
from provenance.core.errors import DomainError
from provenance.core.secrets import InsecureSecret
from provenance.core.storage import sha256_file
from provenance.core.timeutil import utcnow

if TYPE_CHECKING:
    from provenance.service import Service

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
generate_app = typer.Typer(help="The in-house generator: fakes that test detection.", no_args_is_help=True)
app.add_typer(generate_app, name="generate")

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

ServerOpt = Annotated[str, typer.Option("--server", envvar="PROVENANCE_SERVER", help="server URL")]
ApiKeyOpt = Annotated[str | None, typer.Option("--api-key", envvar="PROVENANCE_API_KEY", help="API key")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
VersionOpt = Annotated[
    int | None,
    typer.Option(
        "--fingerprint-version",
        help="1, 2 or 3 (3 adds the face and audio channels); default 2 (1 unless sampling at 4 fps)",
    ),
]
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
    except InsecureSecret as exc:
        fail(str(exc), 2)
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), 2)


def api(server: str, api_key: str | None) -> Api:
    return Api(server, resolve_api_key(api_key))


def emit(data: Any, as_json: bool, text: Callable[[], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    else:
        text()


def revoke(collection: str, item_id: str, server: str, api_key: str | None, as_json: bool) -> None:
    """POST `/v1/{collection}/{item_id}/revoke` (a client or a device) and say when it took effect."""
    with one_line_errors():
        revoked = api(server, api_key).request("POST", f"/v1/{collection}/{item_id}/revoke")
    emit(
        revoked,
        as_json,
        lambda: out.print(f"revoked {revoked['id']} at {revoked['revoked_at']}", markup=False),
    )


def progress_bar(doing: str, *, disable: bool = False) -> Progress:
    """The progress line of a long command, on stderr: `doing NAME`, a bar and the time taken; it goes
    when the work is done."""
    return Progress(
        TextColumn(f"{doing} {{task.description}}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=disable,
    )


K = TypeVar("K")


def key_file(path: Path, load: Callable[[Path], K]) -> K:
    """`load(path)` of a key file the user named; one that cannot be read, or holds no such key, ends
    the command with exit 2 and one line naming the file."""
    with one_line_errors():
        try:
            return load(path)
        except ValueError as exc:
            fail(f"{path}: {exc}", 2)


def fingerprint_with_progress(video: Path, quiet: bool, version: int | None = None) -> fp.Fingerprint:
    settings = get_settings()
    if version is not None and version not in fp.VERSIONS:
        fail(f"fingerprint version {version} is not one of {', '.join(map(str, fp.VERSIONS))}", 2)
    if quiet or not err.is_terminal:
        return fp.compute_fingerprint(
            video, limits=settings.limits, sample_fps=settings.sample_fps, version=version
        )
    with progress_bar("fingerprinting") as progress:
        task = progress.add_task(video.name, total=1.0)
        return fp.compute_fingerprint(
            video,
            limits=settings.limits,
            sample_fps=settings.sample_fps,
            progress=lambda f: progress.update(task, completed=f),
            version=version,
        )


# --- server ---


def private_data_dir(data_dir: Path) -> None:
    """The database, media, reports, keys and chain state are the service's alone: everything this
    process and its children (anvil) create is 0600/0700, and a data directory made under a looser
    umask (or by an older version) is tightened before it is used."""
    from provenance.core.storage import restrict_umask, secure_tree

    restrict_umask()
    with one_line_errors():
        secure_tree(data_dir)


RoleOpt = Annotated[
    str | None,
    typer.Option(
        "--role",
        envvar="PROVENANCE_ROLE",
        help="all: one process with the embedded defaults; api: HTTP only, jobs to the shared queue; "
        "worker: batcher and queued jobs (api and worker need PostgreSQL and PROVENANCE_CHAIN_RPC)",
    ),
]


def _start_or_fail(service: Service) -> None:
    """Start the service's loops; a database that never came back ends `serve` with a one-line reason."""
    from provenance.core.outage import DatabaseUnavailable

    try:
        service.start()
    except DatabaseUnavailable as exc:
        service.stop()
        fail(str(exc), 1)


@app.command()
def serve(role: RoleOpt = None) -> None:
    """Run the API with the embedded defaults (SQLite under ./var), or one role of a scaled-out service."""
    from provenance.api.app import create_app
    from provenance.api.server import serve as serve_http
    from provenance.demo import seed_demo
    from provenance.service import open_service

    settings = get_settings()
    if role is not None:
        if role not in ("all", "api", "worker"):
            fail(f"--role must be all, api or worker, not {role!r}", 2)
        settings = settings.model_copy(update={"role": role})
    private_data_dir(settings.data_dir)
    from frames.faces import FaceModelError, face_models
    from provenance.core.outage import DatabaseUnavailable

    try:  # checked now, not at the first face: a damaged model must not skew or fail verifications
        face_models()
    except FaceModelError as exc:
        fail(str(exc), 1)

    try:
        service = open_service(settings)
    except ValueError as exc:
        fail(str(exc), 2)
    except DatabaseUnavailable as exc:  # waited `database_wait_s` for it: give up with the reason
        fail(str(exc), 1)
    if settings.role == "worker":
        import logging

        from provenance.jobs import WorkerTasks, run_worker

        # No uvicorn here to set up logging: warnings (outages, leadership) with their time.
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)  # one line per outage is ours to say

        out.print(f"[bold]provenance worker[/] taking jobs from {settings.resolved_database_url}")
        _start_or_fail(service)
        try:
            run_worker(
                WorkerTasks(
                    settings=service.settings,
                    engine=service.engine,
                    verify=lambda vid, path, final: service.verifier.run_job(vid, path, final=final),
                    evaluate=service.evaluator.run,
                )
            )
        finally:
            service.stop()
        return
    _start_or_fail(service)
    demo = seed_demo(service) if settings.demo and settings.role == "all" else None
    base = f"http://{settings.host}:{settings.port}"
    key_file = settings.data_dir / "admin.key"
    out.print(f"[bold]provenance[/] listening on {base}  (API docs: {base}/docs)")
    out.print(f"database: {settings.resolved_database_url}")
    chain = service.chain_status()
    if chain.get("rpc_url"):
        # Stable across restarts (remembered under the data directory): what `receipt verify --rpc` takes.
        out.print(
            f"chain RPC: {chain['rpc_url']}  (export PROVENANCE_CHAIN_RPC={chain['rpc_url']})", markup=False
        )
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
    serve_http(create_app(service), settings)


@app.command()
def health(
    server: ServerOpt = DEFAULT_SERVER,
    worker: Annotated[
        bool, typer.Option("--worker", help="check this host's worker (its heartbeat file) instead")
    ] = False,
    max_age: Annotated[
        float, typer.Option("--max-age", help="seconds a worker heartbeat stays fresh")
    ] = 30.0,
) -> None:
    """Exit 0 when the server (or this host's worker) is alive: for container health checks."""
    if worker:
        from provenance.jobs import worker_alive

        if not worker_alive(get_settings().data_dir, max_age):
            fail("no worker on this host has beaten recently")
        out.print("worker alive")
        return
    import httpx

    try:
        response = httpx.get(f"{server.rstrip('/')}/health", timeout=5)
    except httpx.HTTPError as exc:
        fail(f"{server} does not answer: {exc}")
    if response.status_code != 200:
        fail(f"{server}/health answered {response.status_code}")
    out.print(response.json().get("status", "?"), markup=False)


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

    def text() -> None:
        # The id on stderr, the key alone on stdout: `KEY=$(provenance client create ...)` still works.
        err.print(f"client {created['id']} ({created['scope']}); its API key, shown once:", markup=False)
        out.print(created["api_key"], markup=False)

    emit(created, as_json, text)


@client_app.command("rotate")
def client_rotate(
    client_id: str,
    grace: Annotated[
        float, typer.Option("--grace", help="seconds the old key keeps working (0: stops at once)")
    ] = 86400.0,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a new key for a client (admin); the new key is printed once."""
    with one_line_errors():
        rotated = api(server, api_key).request(
            "POST", f"/v1/clients/{client_id}/rotate", json={"grace_seconds": grace}
        )
    emit(rotated, as_json, lambda: out.print(rotated["api_key"], markup=False))


@client_app.command("revoke")
def client_revoke(
    client_id: str, server: ServerOpt = DEFAULT_SERVER, api_key: ApiKeyOpt = None, as_json: JsonOpt = False
) -> None:
    """Revoke a client (admin): all its keys stop working."""
    revoke("clients", client_id, server, api_key, as_json)


@app.command()
def audit(
    limit: Annotated[int, typer.Option("--limit")] = 50,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The audit log of admin actions, newest first (admin)."""
    with one_line_errors():
        page = api(server, api_key).request("GET", "/v1/audit", params={"limit": limit})

    def text() -> None:
        for event in page["events"]:
            out.print(
                f"{event['at']}  {event['action']:<14} {event['target_id']}  by {event['actor_id']}",
                markup=False,
            )

    emit(page, as_json, text)


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
    client: Annotated[
        str | None,
        typer.Option(
            "--client", help="bind to this camera client: only it may register the device's captures"
        ),
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Enrol a device by its public key (admin)."""
    from provenance.signing import load_public_key, raw_public_key

    public = base64.b64encode(raw_public_key(key_file(public_key_file, load_public_key))).decode()
    body: dict[str, Any] = {"name": name, "public_key": public}
    if client is not None:
        body["client_id"] = client
    with one_line_errors():
        device = api(server, api_key).request("POST", "/v1/devices", json=body)
    emit(device, as_json, lambda: out.print(f"enrolled {device['id']} ({device['name']})", markup=False))


@device_app.command("bind")
def device_bind(
    device_id: str,
    client: Annotated[
        str | None,
        typer.Option("--client", help="the only camera client that may register its captures"),
    ] = None,
    unbind: Annotated[bool, typer.Option("--unbind", help="any camera client may register again")] = False,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Bind a device to one camera client, or unbind it (admin)."""
    if (client is None) == (not unbind):
        fail("give either --client CLIENT_ID or --unbind", 2)
    with one_line_errors():
        device = api(server, api_key).request(
            "POST", f"/v1/devices/{device_id}/bind", json={"client_id": client}
        )
    emit(
        device,
        as_json,
        lambda: out.print(
            f"{device['id']} bound to {device['client_id'] or 'any camera client'}", markup=False
        ),
    )


@device_app.command("revoke")
def device_revoke(
    device_id: str, server: ServerOpt = DEFAULT_SERVER, api_key: ApiKeyOpt = None, as_json: JsonOpt = False
) -> None:
    """Revoke a device (admin): captures after now are refused."""
    revoke("devices", device_id, server, api_key, as_json)


@device_app.command("rotate")
def device_rotate(
    device_key: Annotated[Path, typer.Option("--device-key", help="the current private key file")],
    new_key: Annotated[
        Path, typer.Option("--new-key", help="the successor's private key file (device init)")
    ],
    effective_at: Annotated[
        str | None, typer.Option("--effective-at", help="ISO 8601; the current key is revoked from then")
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Hand a device over to a successor key, signed with its current key (camera scope)."""
    from provenance.core.timeutil import iso, parse_iso
    from provenance.devices import rotation_statement
    from provenance.signing import device_id_for, load_private_key, raw_public_key, sign_manifest

    with one_line_errors():
        try:
            current, successor = load_private_key(device_key), load_private_key(new_key)
            when = iso(parse_iso(effective_at) if effective_at else utcnow())
        except ValueError as exc:
            fail(str(exc), 2)
        device_id = device_id_for(raw_public_key(current.public_key()))
        new_public = base64.b64encode(raw_public_key(successor.public_key())).decode()
        signature = sign_manifest(rotation_statement(device_id, new_public, when), current)
        device = api(server, api_key).request(
            "POST",
            f"/v1/devices/{device_id}/rotate",
            json={"new_public_key": new_public, "effective_at": when, "signature": signature},
        )
    emit(
        device,
        as_json,
        lambda: out.print(f"rotated {device_id} -> {device['id']} from {when}", markup=False),
    )


# --- fingerprint and register (what runs on the device) ---


@app.command()
def fingerprint(
    video: Path,
    out_file: Annotated[Path | None, typer.Option("--out", help="write the binary fingerprint here")] = None,
    version: VersionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compute the fingerprint locally; no server needed."""
    with one_line_errors():
        result = fingerprint_with_progress(video, quiet=as_json, version=version)
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
        # Version 2: the learned comparer's per-window embeddings and the weights they came from.
        "segments": len(result.segments()[1]) if result.embeddings is not None else 0,
        "embedding_model": result.segments()[0] if result.embeddings is not None else None,
        # Version 3: the sound track's channel (25 ms sub-fingerprints), or that there is none.
        "audio": _audio_info(result),
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


def _audio_info(result: fp.Fingerprint) -> dict[str, Any] | None:
    audio = result.audio_channel()
    if audio is None:
        return None
    return {
        "present": audio.present,
        "frames": audio.frames,
        "source_rate": audio.source_rate,
        "source_channels": audio.source_channels,
    }


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
    version: VersionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fingerprint on this device, sign the capture manifest, register it."""
    from provenance.signing import (
        device_id_for,
        fingerprint_manifest,
        load_private_key,
        raw_public_key,
        sign_manifest,
    )

    key = key_file(device_key, load_private_key)
    with one_line_errors():
        result = fingerprint_with_progress(video, quiet=as_json, version=version)
        manifest = fingerprint_manifest(
            result,
            content_sha256=sha256_file(video),
            device_id=device_id_for(raw_public_key(key.public_key())),
        ).to_json()
        signature = sign_manifest(manifest, key)
        client = api(server, api_key)
        if upload:
            data = {"manifest": json.dumps(manifest), "signature": signature}
            registration = client.post_files("/v1/registrations", data, {"media": video})
        else:  # no media: a JSON body, which the server reads without form parsing
            registration = client.request(
                "POST", "/v1/registrations", json={"manifest": manifest, "signature": signature}
            )
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
    from provenance.reports.frames import describe_box
    from provenance.reports.render import confidence_words

    verdict = result.get("verdict", result.get("status"))
    colour = {"authentic": "green", "tampered": "red", "unknown": "yellow"}.get(str(verdict), "white")
    label = "closest" if verdict == "unknown" else "confidence"
    out.print(f"[bold {colour}]{str(verdict).upper()}[/]  {label}: {escape(confidence_words(result))}")
    match = result.get("match")
    if not match:
        out.print("no registered original matches this clip", markup=False)
        return
    q, o = match["query_range"], match["original_range"]
    out.print(
        f"matches {match['registration_id']} (device {match['device_id']}, captured {match['captured_at']})",
        markup=False,
    )
    for other in match.get("also_registered", []):
        out.print(
            f"also registered by device {other['device_id']} ({other['registration_id']}, captured "
            f"{other['captured_at']}), {other['order']}",
            markup=False,
        )
    photo = q[1] - q[0] <= 0 and o[1] - o[0] <= 0
    if match.get("exact_copy"):
        similarity = "the same file, byte for byte"
    else:
        similarity = f"similarity {100 * match['similarity']:.0f} %"
    if photo:
        out.print(f"the picture matches the original's; {similarity}", markup=False)
    else:
        out.print(
            f"clip {q[0]:.2f}-{q[1]:.2f} s = original {o[0]:.2f}-{o[1]:.2f} s, {similarity}", markup=False
        )
    segments = match.get("segments", [])
    for start, end in match.get("tampered_ranges", []):
        regions = [
            box
            for s in segments
            if s.get("tampered") and s["query_start"] < end + 1e-6 and s["query_end"] > start - 1e-6
            for box in s.get("regions", [])
        ]
        when = "the picture" if photo else f"{start:.2f}-{end:.2f} s of the clip"
        where = "; ".join(dict.fromkeys(describe_box(*(float(v) for v in box)) for box in regions))
        out.print(f"  tampered: {when}" + (f", at {where}" if where else ""), markup=False)
    anchor = match.get("anchor", {}).get("status")
    anchor_words = {
        "anchored": "anchored on chain",
        "pending": "not yet anchored on chain",
    }.get(str(anchor), f"anchoring {anchor}")
    out.print(
        f"device signature {'valid' if match.get('signature_valid') else 'INVALID'}; original {anchor_words}",
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
        with progress_bar("verifying", disable=as_json or not err.is_terminal) as progress:
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


@receipt_app.command("get")
def receipt_get(
    registration_id: Annotated[str, typer.Argument(metavar="REGISTRATION_ID")],
    out_file: Annotated[Path | None, typer.Option("--out", help="write the receipt to FILE")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
) -> None:
    """Fetch a registration's receipt (JSON): to stdout, or to FILE with --out."""
    with one_line_errors():
        receipt = api(server, api_key).request("GET", f"/v1/registrations/{registration_id}/receipt")
        text = json.dumps(receipt, indent=2, sort_keys=True) + "\n"
        if out_file is None:
            sys.stdout.write(text)
            return
        out_file.write_text(text, encoding="utf-8")
    status = receipt.get("anchor", {}).get("status")
    err.print(
        f"receipt for {registration_id} written to {out_file} ({status}); "
        f"check it with: provenance receipt verify {out_file}",
        markup=False,
        highlight=False,
    )


@receipt_app.command("verify")
def receipt_verify(
    receipt_file: Annotated[Path, typer.Argument(metavar="RECEIPT.json")],
    rpc: Annotated[
        str | None,
        typer.Option(
            "--rpc",
            help="JSON-RPC URL of the chain named in the receipt "
            "(default: PROVENANCE_CHAIN_RPC, then the receipt's rpc_hint)",
        ),
    ] = None,
    media: Annotated[
        Path | None, typer.Option("--media", help="also check that FILE is the one the device signed")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a receipt: signature, log leaf, inclusion proof, anchor on chain. Calls no endpoint of ours."""
    from provenance.receipts import Check, media_check, rpc_for, verify_receipt

    try:
        receipt = json.loads(receipt_file.read_text())
    except (OSError, ValueError) as exc:
        fail(f"receipt_format: cannot read {receipt_file}: {exc}", 2)
    rpc_url = rpc_for(receipt, rpc)
    if rpc_url is None:
        fail("chain_rpc_missing: give --rpc URL or set PROVENANCE_CHAIN_RPC (the receipt has no rpc_hint)", 2)
    checks: list[Check] = []
    if media is not None:
        try:
            checks.append(media_check(receipt, sha256_file(media)))
        except OSError as exc:
            fail(f"{exc.strerror or exc}: {media}", 2)
    checks += verify_receipt(receipt, rpc_url)
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
    private_data_dir(settings.data_dir)
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


@eval_app.command("reposts")
def eval_reposts(
    split: Annotated[
        list[str] | None, typer.Option("--split", help="validation or heldout (default: both)")
    ] = None,
    form: Annotated[
        list[str] | None, typer.Option("--form", help="only these forms (catalogue names)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Repost forms of several footage sources (crops, fills, screen recordings, rotations, mirrors),
    controls and tampers through the verifier; per split and form, writes DATA_DIR/eval/reposts.json.

    Runs in this process on the data directory (PROVENANCE_DATA_DIR), like `eval run`."""
    from provenance import evaluation_reposts as reposts
    from provenance.service import open_service

    splits = tuple(split or reposts.SPLITS)
    unknown = [s for s in splits if s not in reposts.SPLITS]
    if unknown:
        fail(f"no split called {unknown[0]} (validation, heldout)", 2)
    settings = get_settings()
    private_data_dir(settings.data_dir)
    service = open_service(settings)
    service.matcher.rebuild()
    with one_line_errors():
        try:
            report = reposts.run(
                service,
                splits=[s for s in reposts.SPLITS if s in splits],
                forms=form or None,
                progress=None if as_json else lambda line: err.print(line, markup=False, highlight=False),
            )
        except KeyError as exc:
            fail(str(exc.args[0]), 2)
    service.engine.dispose()
    emit(report, as_json, lambda: print_reposts(report))


def print_reposts(report: dict[str, Any]) -> None:
    def pct(value: float | None) -> str:
        return "   —" if value is None else f"{100 * value:3.0f}%"

    for split, body in report["splits"].items():
        overall = body["overall"]
        out.print(
            f"{split}: reposts authentic with the right original"
            f" {pct(overall['reposts_authentic_right_original'])}"
            f" (n={overall['reposts_n']}), tampers detected {pct(overall['tampers_detected'])}"
            f" (n={overall['tampers_n']}), FP on benign {pct(overall['benign_false_positive_rate'])}"
            f" (n={overall['benign_n']}), unregistered footage matched"
            f" {pct(overall['unregistered_false_match_rate'])}"
            f" (n={overall['unregistered_n']}), {overall['seconds_mean']:.2f} s per verification",
            markup=False,
        )
        for name, row in body["forms"].items():
            noted = f"  noted {pct(row['noted_rate'])}" if "noted_rate" in row else ""
            out.print(
                f"  {row['group']:7} {name:20} right {pct(row['correct_rate'])}"
                f"  authentic {pct(row['authentic_rate'])}"
                f"  tampered {pct(row['tampered_rate'])}  unknown {pct(row['unknown_rate'])}{noted}"
                f"  {row['seconds_mean']:.2f} s  (n={row['n']})",
                markup=False,
            )
    out.print(f"written to {report['path']}", markup=False)


@eval_app.command("faces")
def eval_faces(
    sources: Annotated[
        int,
        typer.Option("--sources", min=1, help="face sources per split (validation, held-out); + carphone"),
    ] = 8,
    media: Annotated[
        Path | None,
        typer.Option("--media", help="keep the made clips here and reuse them in later runs"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Face swaps (four methods) and benign copies of registered talking heads, through the verifier.

    Writes DATA_DIR/eval/faces.json; the verifications run on a fresh service of their own."""
    import torch

    from provenance.evaluation_faces import evaluate, isolated_service, table

    torch.set_num_threads(1)
    settings = get_settings()
    private_data_dir(settings.data_dir)
    with one_line_errors(), isolated_service(settings) as service:
        figures = evaluate(
            service.evaluator,
            sources,
            media,
            progress=None if as_json else lambda line: err.print(line, markup=False, highlight=False),
        )
    target = settings.data_dir / "eval" / "faces.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(figures, indent=2))

    def show() -> None:
        for line in table(figures):
            out.print(line, markup=False, highlight=False)

    emit(figures, as_json, show)


def print_evaluation(body: dict[str, Any]) -> None:
    out.print(
        f"evaluation {body['id']} (comparer {body['comparer']}, generator {body['generator']})", markup=False
    )

    def num(value: float | None) -> str:
        return "  —" if value is None else f"{value:.2f}"

    for name, row in body["metrics"]["attacks"].items():
        if row["kind"] == "tamper":
            pdq = f"  PDQ-only pass {num(row['pdq_frame_pass_rate'])}" if "pdq_frame_pass_rate" in row else ""
            out.print(
                f"  {name:17} detected {num(row['detection_rate'])}  time IoU {num(row['time_iou'])}"
                f"  region IoU {num(row['region_iou'])}{pdq}  (n={row['n']})",
                markup=False,
            )
        else:
            out.print(
                f"  {name:17} false positives {num(row['false_positive_rate'])}  (n={row['n']})", markup=False
            )
    for name, reasons in body["metrics"].get("skipped", {}).items():
        out.print(f"  skipped {name}: {'; '.join(reasons)}", markup=False)
    evasion = body["metrics"].get("evasion")
    if evasion:
        out.print(
            f"evasive face swaps: {num(evasion['pdq_frame_pass_rate'])} of frames pass a PDQ-only match "
            f"(plain swaps {num(evasion['plain_swap_pdq_frame_pass_rate'])}); "
            f"learned-embedding score {num(evasion.get('embedding_mean_score'))} "
            f"(before evasion {num(evasion.get('embedding_mean_score_before'))}); "
            f"verification flags {num(evasion['flagged_rate'])} of them (n={evasion['n']})",
            markup=False,
        )
    health = body["health"]
    out.print(
        f"status: {health['status']}" + "".join(f"\n  {r}" for r in health.get("reasons", [])), markup=False
    )


@eval_app.command("audio")
def eval_audio(as_json: JsonOpt = False) -> None:
    """Evaluate the audio channel: sound edits and re-encodes of speech over real video, through the
    verifier's path, on a validation and a held-out split; writes DATA_DIR/eval/audio.json."""
    from provenance.evaluation_audio import run

    settings = get_settings()
    with one_line_errors():
        body = run(
            settings.data_dir, progress=None if as_json else lambda line: err.print(line, markup=False)
        )
    emit(body, as_json, lambda: print_evaluation_audio(body))


def print_evaluation_audio(body: dict[str, Any]) -> None:
    out.print(
        f"audio evaluation (unmatched cost {body['threshold']}, time IoU >= {body['iou']})", markup=False
    )
    for split in ("validation", "heldout"):
        s = body[split]["summary"]
        out.print(
            f"  {split:10}  edits caught {s['caught']}/{s['edits']} ({s['catch_rate']:.1%}),"
            f" mean IoU {s['mean_iou']:.2f};  false positives {s['false_positives']}/{s['benign']};"
            f"  offsets reported {s['offsets_reported']}/{s['offset_copies']}",
            markup=False,
        )
        for name, row in s["by_copy"].items():
            value = row.get("caught", row.get("false_positives"))
            what = "caught" if "caught" in row else "false positives"
            out.print(f"      {name:22} {what} {value}/{row['n']}", markup=False)
    out.print("  validation sweep of the unmatched cost:", markup=False)
    for row in body["validation_sweep"]:
        out.print(
            f"      {row['threshold']:.2f}: caught {row['catch_rate']:.1%} (mean IoU {row['mean_iou']:.2f}),"
            f" false positives {row['false_positives']}/{row['benign']}",
            markup=False,
        )
    cost = body["cost"]
    out.print(
        f"  cost per second of sound: decoding it {cost['sound_decode_ms_per_audio_second']} ms, fingerprint"
        f" {cost['fingerprint_ms_per_audio_second']} ms, comparison {cost['compare_ms_per_audio_second']} ms"
        f" (whole verification, picture and sound: {cost['verify_ms_per_second']} ms)",
        markup=False,
    )


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")


@generate_app.command("swap")
def generate_swap(
    source: Annotated[
        Path,
        typer.Option("--source", help="the face to insert: a folder of face images, one image, or a video"),
    ],
    target: Annotated[Path, typer.Option("--target", help="the video whose face is replaced")],
    out_file: Annotated[Path, typer.Option("--out", help="where to write the fake (.mp4, .mov or .mkv)")],
    weights: Annotated[
        Path | None,
        typer.Option("--weights", help="swap weights (default: the shipped generator/weights/swap.pt)"),
    ] = None,
    steps: Annotated[
        int,
        typer.Option(
            "--steps",
            help="training steps when no weights fit the source (fine-tuning when they fit another target)",
        ),
    ] = 1000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    evade_steps: Annotated[
        int, typer.Option("--evade-steps", help="fine-tune so the fake keeps the target's PDQ hashes")
    ] = 0,
    save_weights: Annotated[
        Path | None, typer.Option("--save-weights", help="keep the weights trained for this source")
    ] = None,
    threads: Annotated[int, typer.Option("--threads", help="torch CPU threads")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Put the face of SOURCE into the TARGET video (the classic deepfake autoencoder, on CPU).

    Weights trained for this source are used as they are for their own target and fine-tuned for
    `--steps` on another; without fitting weights a model is trained for `--steps` steps."""
    for name, path in (("source", source), ("target", target)):
        if not path.exists():
            fail(f"not_found: the {name} {path} does not exist", 2)
    if not target.is_file():
        fail(f"generate_bad_input: the target {target} is not a video file", 2)
    if out_file.suffix.lower() not in VIDEO_SUFFIXES:
        fail(f"generate_bad_input: --out must end in {', '.join(VIDEO_SUFFIXES)}, not {out_file.name}", 2)
    if steps < 0 or evade_steps < 0 or threads < 1:
        fail("generate_bad_input: --steps and --evade-steps must be >= 0 and --threads >= 1", 2)
    if weights is not None and not weights.is_file():
        fail(f"not_found: the weights {weights} do not exist", 2)

    import torch

    from generator.swap import DEFAULT_WEIGHTS
    from generator.swap import generate_swap as make_swap

    torch.set_num_threads(threads)
    with one_line_errors():
        try:
            result = make_swap(
                source,
                target,
                out_file,
                weights or DEFAULT_WEIGHTS,
                steps,
                seed=seed,
                progress=not as_json and err.is_terminal,
                save_weights=save_weights,
                evade_steps=evade_steps,
            )
        except ValueError as exc:
            out_file.unlink(missing_ok=True)
            fail(f"generate_bad_input: {exc}", 2)
    if not any(result.changed):
        out_file.unlink(missing_ok=True)
        fail(f"generate_no_face: no face found in {target}", 2)
    info = {
        "out": str(result.path),
        "frames": result.frame_count,
        "frames_swapped": sum(result.changed),
        "fps": float(result.fps),
        "width": result.width,
        "height": result.height,
        "trained": result.trained,
        "training_steps": result.metrics.get("steps", 0),
        "weights": str(result.weights) if result.weights else None,
        "evasion": result.metrics.get("evasion"),
        "truth": {"ranges": result.truth().ranges, "regions": result.truth().regions},
    }

    def text() -> None:
        how = f"trained {info['training_steps']} steps" if result.trained else f"weights {info['weights']}"
        out.print(
            f"wrote {result.path}: {info['frames_swapped']} of {info['frames']} frames swapped, "
            f"{result.width}x{result.height} at {info['fps']:.2f} fps ({how})",
            markup=False,
        )
        evasion = info["evasion"]
        if evasion:
            out.print(
                f"PDQ evasion: {evasion['within_before']:.0%} -> {evasion['within_after']:.0%} of swapped "
                f"frames within distance {evasion['threshold']} of the original",
                markup=False,
            )

    emit(info, as_json, text)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
