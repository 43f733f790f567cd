"""Continuous evaluation: the generator's fakes and benign variants through the real verification flow.

Every run registers the evaluation originals (once, with an evaluation device), makes each attack
and each benign variant of each original, submits them to the same `Verifier` newsrooms use, and
stores per attack the detection rate and localisation IoU, and per variant the false-positive
rate. A metric under its configured floor turns `/health` to `degraded`, with the reason.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import tempfile
import threading
from collections.abc import Callable, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, func, select

import generator
from frames.regions import box_iou, time_iou
from frames.samples import sample_dir
from generator import attacks as catalogue
from generator import tampers
from generator.weights import SWAP_WEIGHTS as DEFAULT_SWAP_WEIGHTS
from provenance import clients, devices, registry
from provenance import fingerprint as fp
from provenance.core.db import session_scope
from provenance.core.errors import DomainError
from provenance.core.locks import SCHEDULE_LOCK, LeaderLock
from provenance.core.outage import DATABASE, is_database_outage
from provenance.core.security import Scope, new_id
from provenance.core.timeutil import utcnow
from provenance.models import ApiClient, Device, EvaluationRun, Registration
from provenance.signing import (
    device_id_for,
    fingerprint_manifest,
    load_private_key,
    raw_public_key,
    sign_manifest,
    write_key_files,
)

logger = logging.getLogger(__name__)

Attack = catalogue.Attack
Kind = catalogue.Kind
Truth = catalogue.Truth

DEFAULT_ORIGINALS = ("bikes.mp4", "carphone_pristine.mp4")
PASTE_BOX = (0.55, 0.2, 0.3, 0.45)
# A cut (zero-length truth) counts as found when flagged within this many seconds of it.
CUT_TOLERANCE_S = 0.5


def where(duration: float) -> catalogue.Where:
    """Where a tamper goes: a third of the way in, for two seconds or a quarter of the clip."""
    length = min(2.0, duration / 4)
    return catalogue.Where(
        clip=duration, start=round(duration / 3, 2), duration=round(length, 2), box=PASTE_BOX
    )


# What each run makes, from the generator's catalogue (`generator.attacks`), face swaps added below.
ATTACKS: tuple[Attack, ...] = catalogue.pick(
    (
        "paste_region",
        "replace_range",
        "remove_range",
        "insert_frames",
        "inpaint",
        "recolour",
        "reencode",
        "downscale",
        "letterbox",
        "crop",
        "colour",
        "subclip",
        "change_fps",
    )
)


def register_attack(attack: Attack) -> None:
    """Let later generators (face swaps, evasive swaps) join the evaluation."""
    global ATTACKS
    ATTACKS = (*tuple(a for a in ATTACKS if a.name != attack.name), attack)


# The shipped face-swap weights (`make swap-weights`); an evaluation run never trains the swap.
SWAP_WEIGHTS: Path = DEFAULT_SWAP_WEIGHTS
# Steps of the evasive swap's fine-tuning against each original's PDQ hashes: the attack itself.
EVADE_STEPS: int = 100


def _swap(evade: bool) -> catalogue.Make:
    """A face swap of the original by the shipped weights (globals read per call: tests move them).

    The evasion attacks, and both swaps are measured by, the shipped learned comparer
    (`detector.attack.shipped_target`, None without its weights): the generator never imports
    the detector, so the evaluation hands it over. `generator.campaign` and the detector (torch)
    are imported on first use, not when the service starts.
    """

    def make(src: Path, other: Path, dst: Path, at: catalogue.Where) -> Truth:
        from detector.attack import shipped_target
        from generator import campaign

        return campaign.face_swap(
            src,
            dst,
            weights=SWAP_WEIGHTS,
            evade_steps=EVADE_STEPS if evade else 0,
            target=shipped_target(),
        )

    return make


register_attack(Attack("face_swap", "tamper", _swap(False)))
register_attack(Attack("evasive_face_swap", "tamper", _swap(True)))


def generator_version() -> str:
    """The generator's code version and the first 12 hex digits of the swap weights it uses."""
    digest = weights_digest()
    return f"{generator.__version__}+swap.{digest[:12] if digest else 'none'}"


def weights_digest() -> str | None:
    """SHA-256 of the swap weights the evaluation uses, None when there are none."""
    return hashlib.sha256(SWAP_WEIGHTS.read_bytes()).hexdigest() if SWAP_WEIGHTS.is_file() else None


def score(attack: Attack, truth: Truth, result: dict[str, Any], registration_id: str) -> dict[str, float]:
    """One sample's outcome: detected / false positive, and how well it was localised."""
    match = result.get("match") or {}
    right_original = match.get("registration_id") == registration_id
    if attack.kind == "benign":
        return {"false_positive": float(not (result.get("verdict") == "authentic" and right_original))}
    assert isinstance(truth, tampers.TamperTruth)
    detected = result.get("verdict") == "tampered" and right_original
    sample = {"detected": float(detected), "authentic": float(result.get("verdict") == "authentic")}
    sample.update(truth.measures)
    if detected:
        sample["time_iou"] = time_iou(match.get("tampered_ranges", []), truth.ranges, CUT_TOLERANCE_S)
        if truth.regions:
            flagged = [
                r for s in match.get("segments", []) if s.get("tampered") for r in s.get("regions", [])
            ]
            sample["region_iou"] = box_iou(flagged, truth.regions)
    return sample


def summarise(
    samples: dict[str, list[dict[str, float]]],
    kinds: dict[str, Kind],
    skipped: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Per attack and overall rates; `skipped` (attack → reasons) is kept beside them.

    Tamper rows also carry `authentic_rate` (passed as authentic: the worst miss) and the means
    of the generator's own measures (PDQ pass rates and learned-embedding distances of face
    swaps); `evasion` sums up the evasive swap: how often it passes a PDQ-only match, how close
    its fingerprints came to the original's (after, and before the fine-tuning), and how often
    verification still flags it.
    """
    skipped = skipped or {}

    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    attacks: dict[str, Any] = {}
    detected: list[float] = []
    false_positives: list[float] = []
    for name, rows in samples.items():
        if kinds[name] == "tamper":
            attacks[name] = {
                "kind": "tamper",
                "n": len(rows),
                "detection_rate": mean([r["detected"] for r in rows]),
                "time_iou": mean([r["time_iou"] for r in rows if "time_iou" in r]),
                "region_iou": mean([r["region_iou"] for r in rows if "region_iou" in r]),
                "authentic_rate": mean([r["authentic"] for r in rows if "authentic" in r]),
            }
            for measure in sorted({k for r in rows for k in r if k.startswith(("pdq_", "embedding_"))}):
                key = "pdq_clip_pass_rate" if measure == "pdq_clip_pass" else measure
                attacks[name][key] = mean([r[measure] for r in rows if measure in r])
            detected += [r["detected"] for r in rows]
        else:
            attacks[name] = {
                "kind": "benign",
                "n": len(rows),
                "false_positive_rate": mean([r["false_positive"] for r in rows]),
            }
            false_positives += [r["false_positive"] for r in rows]
        if skipped.get(name):
            attacks[name]["skipped"] = skipped[name]
    metrics: dict[str, Any] = {
        "attacks": attacks,
        "overall": {
            "tamper_detection_rate": mean(detected),
            "benign_false_positive_rate": mean(false_positives),
            "benign_true_negative_rate": None
            if not false_positives
            else round(1 - sum(false_positives) / len(false_positives), 4),
        },
    }
    if skipped:
        metrics["skipped"] = {name: reasons for name, reasons in skipped.items() if reasons}
    evasive, plain = attacks.get("evasive_face_swap"), attacks.get("face_swap")
    if evasive and evasive["n"]:
        metrics["evasion"] = {
            "n": evasive["n"],
            "pdq_frame_pass_rate": evasive.get("pdq_frame_pass_rate"),
            "pdq_clip_pass_rate": evasive.get("pdq_clip_pass_rate"),
            "pdq_mean_distance": evasive.get("pdq_mean_distance"),
            "pdq_mean_distance_before": evasive.get("pdq_mean_distance_before"),
            "embedding_mean_score": evasive.get("embedding_mean_score"),
            "embedding_mean_score_before": evasive.get("embedding_mean_score_before"),
            "embedding_flagged_rate": evasive.get("embedding_flagged_rate"),
            "flagged_rate": evasive["detection_rate"],
            "passed_as_authentic_rate": evasive["authentic_rate"],
            "plain_swap_pdq_frame_pass_rate": plain.get("pdq_frame_pass_rate") if plain else None,
            "plain_swap_flagged_rate": plain["detection_rate"] if plain else None,
        }
    return metrics


def degraded_reasons(metrics: dict[str, Any], floors: dict[str, float]) -> list[str]:
    """Floors name a metric as `overall.NAME` or `ATTACK.NAME`; every metric here is better higher,
    except false-positive rates, whose floors are put on `benign_true_negative_rate`."""
    reasons = []
    for key, floor in sorted(floors.items()):
        scope, _, name = key.partition(".")
        value = (
            metrics.get("overall", {}) if scope == "overall" else metrics.get("attacks", {}).get(scope, {})
        ).get(name)
        if value is None:
            reasons.append(f"{key}: no value in the latest evaluation run")
        elif value < floor:
            reasons.append(f"{key} = {value:.3f} is below its floor {floor:.3f}")
    return reasons


class Evaluator:
    """Runs evaluations on a service: on demand, and on a schedule from the worker."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.settings = service.settings
        self.engine = service.engine
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- identity used for the evaluation's registrations and verifications ---

    def device_key(self) -> Any:
        directory = self.settings.data_dir / "eval"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "device.key"
        key = load_private_key(path) if path.exists() else write_key_files(path)
        raw = raw_public_key(key.public_key())
        with session_scope(self.engine) as session:
            if session.get(Device, device_id_for(raw)) is None:
                devices.enroll_device(session, "evaluation camera", base64.b64encode(raw).decode())
        return key

    def client_id(self) -> str:
        with session_scope(self.engine) as session:
            client = session.exec(select(ApiClient).where(ApiClient.name == "continuous evaluation")).first()
            if client is None:
                client, _ = clients.create_client(session, "continuous evaluation", Scope.factchecker)
            return client.id

    def register(self, original: Path, version: int | None = None) -> str:
        """The id of `original`'s registration by the evaluation device, registering it first when
        there is none (of fingerprint `version`, when given; else of the version the sampling allows)."""
        digest = hashlib.sha256(original.read_bytes()).hexdigest()
        with session_scope(self.engine) as session:
            for existing in session.exec(select(Registration).where(Registration.content_sha256 == digest)):
                if version is None or fp.Fingerprint.decode(existing.fingerprint).version == version:
                    return existing.id
        key = self.device_key()
        fingerprint = fp.compute_fingerprint(
            original, limits=self.settings.limits, sample_fps=self.settings.sample_fps, version=version
        )
        manifest = fingerprint_manifest(
            fingerprint,
            content_sha256=digest,
            device_id=device_id_for(raw_public_key(key.public_key())),
            app={"name": "continuous evaluation"},
        ).to_json()
        registration = registry.register(
            self.engine,
            self.settings,
            json.dumps(manifest),
            sign_manifest(manifest, key),
            registry.Upload(path=original, suffix=original.suffix),
        )
        self.service.registered(registration)
        return registration.id

    # --- runs ---

    def run(
        self,
        originals: Sequence[Path] | None = None,
        attacks: Sequence[str] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> EvaluationRun:
        chosen = [a for a in ATTACKS if attacks is None or a.name in attacks]
        if originals is None:
            source = sample_dir()
            if source is None:
                raise DomainError("eval_no_originals", "no evaluation originals: pass some", 422)
            originals = [source / name for name in DEFAULT_ORIGINALS]
        if len(originals) < 2:
            raise DomainError("eval_no_originals", "splices need at least two evaluation originals", 422)
        comparer = self.service.matcher.comparer
        run = EvaluationRun(
            id=new_id("eval"),
            started_at=utcnow(),
            status="running",
            comparer=f"{comparer.name}-{comparer.version}",
            generator=generator_version(),
        )
        with self._lock:
            with session_scope(self.engine) as session:
                session.add(run)
            try:
                metrics = self._measure(list(originals), chosen, progress)
                # What the verifications used (the policy may pick the learned comparer per original).
                if metrics["comparers"]:
                    run.comparer = "+".join(sorted(metrics["comparers"]))[:100]
                run.metrics = json.dumps(metrics)
                run.status = "done"
            except Exception as exc:
                logger.exception("evaluation run %s failed", run.id)
                run.status = "failed"
                run.error = f"{type(exc).__name__}: {exc}"
            run.finished_at = utcnow()
            with session_scope(self.engine) as session:
                session.merge(run)
        return run

    def _measure(
        self, originals: list[Path], chosen: list[Attack], progress: Callable[[str], None] | None
    ) -> dict[str, Any]:
        client_id = self.client_id()
        registrations = [self.register(o) for o in originals]
        samples: dict[str, list[dict[str, float]]] = {a.name: [] for a in chosen}
        skipped: dict[str, list[str]] = {}
        comparers: dict[str, int] = {}
        with tempfile.TemporaryDirectory(dir=self.settings.data_dir) as tmp:
            for i, (original, registration_id) in enumerate(zip(originals, registrations, strict=True)):
                other = originals[(i + 1) % len(originals)]
                duration = fp.compute_fingerprint(
                    original, limits=self.settings.limits, sample_fps=1.0
                ).duration
                for attack in chosen:
                    out = Path(tmp) / f"{attack.name}-{i}{original.suffix}"
                    try:
                        truth = attack.make(original, other, out, where(duration))
                    except tampers.NotApplicable as exc:
                        skipped.setdefault(attack.name, []).append(str(exc))
                        if progress:
                            progress(f"{attack.name} on {original.name}: skipped, {exc}")
                        continue
                    sha = hashlib.sha256(out.read_bytes()).hexdigest()
                    verification = self.service.verifier.submit(client_id, out, out.name, sha)
                    result = json.loads(verification.result or "{}")
                    samples[attack.name].append(score(attack, truth, result, registration_id))
                    used = result.get("comparer")
                    if used:
                        label = f"{used['name']}-{used['version']}"
                        comparers[label] = comparers.get(label, 0) + 1
                    if progress:
                        progress(f"{attack.name} on {original.name}: {result.get('verdict')}")
        metrics = summarise(samples, {a.name: a.kind for a in chosen}, skipped)
        metrics["swap_weights"] = weights_digest()
        metrics["comparers"] = comparers  # label -> verifications judged by it
        return metrics

    # --- history and health ---

    def history(self, limit: int = 100) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            runs = session.exec(
                select(EvaluationRun).order_by(col(EvaluationRun.started_at).desc()).limit(limit)
            ).all()
        return [public_run(r) for r in runs]

    def status(self) -> dict[str, Any]:
        latest = next((r for r in self.history(20) if r["status"] == "done"), None)
        if latest is None:
            return {"status": "no_runs"}
        reasons = degraded_reasons(latest["metrics"], self.settings.eval_floors)
        return {"status": "degraded" if reasons else "ok", "run": latest["id"], "reasons": reasons}

    def plot_png(self) -> bytes:
        """History of the overall metrics, oldest first (matplotlib, no display needed)."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        runs = [r for r in reversed(self.history(200)) if r["status"] == "done"]
        fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
        xs = list(range(1, len(runs) + 1))
        for metric, label in (
            ("tamper_detection_rate", "tamper detection rate"),
            ("benign_true_negative_rate", "benign true-negative rate"),
        ):
            ax.plot(xs, [r["metrics"]["overall"].get(metric) for r in runs], marker="o", label=label)
        for key, floor in self.settings.eval_floors.items():
            ax.axhline(floor, linestyle="--", linewidth=0.8, color="grey")
            ax.annotate(f"floor {key}", (xs[0] if xs else 0, floor), fontsize=7, color="grey")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("evaluation run")
        ax.set_ylabel("rate")
        ax.legend(loc="lower left", fontsize=8)
        ax.set_title("Continuous evaluation")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        return buffer.getvalue()

    # --- schedule ---

    def start(self) -> None:
        role = self.settings.role
        if self.settings.eval_interval_s > 0 and role != "api":
            target = self._loop if role == "all" else self._queue_loop
            self._thread = threading.Thread(target=target, name="evaluation", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def start_run(self) -> None:
        """A run on demand: on the shared queue beyond one machine, else in a thread of this process."""
        queue = self.service.queue
        if queue is not None:
            queue.defer_evaluation()
        else:
            threading.Thread(target=self.run, name="evaluation-on-demand", daemon=True).start()

    def _queue_loop(self) -> None:
        """Workers: the one holding the schedule's leader lock puts a run on the queue when one is due
        (due from the stored history, so a new leader keeps the old one's rhythm)."""

        leader = LeaderLock(self.engine, SCHEDULE_LOCK)
        interval = self.settings.eval_interval_s
        while not self._stop.wait(min(interval, 5.0)):
            try:
                if not leader.held():
                    continue
                with Session(self.engine) as session:
                    latest = session.exec(select(func.max(EvaluationRun.started_at))).one()
                age = None if latest is None else utcnow() - latest.replace(tzinfo=latest.tzinfo or UTC)
                if age is None or age.total_seconds() >= interval:
                    self.service.queue.defer_evaluation()
            except Exception as exc:  # the database may be restarting; the schedule goes on
                if is_database_outage(exc):
                    DATABASE.failed(exc, "evaluation schedule")
                else:
                    logger.warning("evaluation schedule could not check or defer a run", exc_info=True)
        leader.release()

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.eval_interval_s):
            try:
                self.run()
            except Exception:  # a failed scheduled run is stored as failed; the schedule goes on
                logger.exception("scheduled evaluation failed")


def public_run(run: EvaluationRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "status": run.status,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "comparer": run.comparer,
        "generator": run.generator,
        "metrics": json.loads(run.metrics) if run.metrics else None,
        "error": run.error,
    }
