"""The sound through the service that ships: a real video with espeak-ng speech, registered with its
audio channel (fingerprint version 3), verified over HTTP after the edits people make to sound.

The original is bikes.mp4 (10 s) with three sentences spoken by one voice, its sound encoded as
128 kbit/s AAC; its version 3 fingerprint is computed once for the module. Each test registers it
with a fresh service and verifies one copy.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from sqlmodel import Session, func, select

from frames.regions import time_iou
from frames.samples import sample_clip
from generator import speech
from harness.manifests import signed_form
from provenance import fingerprint as fp
from provenance.core.config import DecodeLimits, Settings
from provenance.models import Registration, Verification
from provenance.service import Service
from tests.conftest import chainless_settings
from tests.provenance.conftest import Stack

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")

BIKES = sample_clip("bikes.mp4")
EDIT = (3.0, 5.0)


@dataclass(frozen=True)
class Footage:
    original: Path
    fingerprint: fp.Fingerprint
    track: speech.SpeechTrack
    other: speech.SpeechTrack
    folder: Path

    def copy(self, name: str, track: speech.SpeechTrack, **options: Any) -> Path:
        return speech.mux(BIKES, self.folder / name, track.samples, track.rate, **options)


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> Footage:
    folder = tmp_path_factory.mktemp("audio")
    track = speech.speech_track(speech.TEXTS["validation"], "en-us+m3", 10.0, seed=3)
    other = speech.speech_track(speech.TEXTS["heldout"], "en+f3", 10.0, seed=4)
    original = speech.mux(BIKES, folder / "original.mp4", track.samples, codec="aac", bitrate=128_000)
    fingerprint = fp.compute_fingerprint(original, limits=DecodeLimits(), version=3)
    return Footage(original, fingerprint, track, other, folder)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """No chain: anchoring is not what these tests are about."""
    return chainless_settings(tmp_path, database_url)


@pytest.fixture
def newsroom(stack: Stack, footage: Footage) -> dict[str, str]:
    """The original registered (its signed version 3 fingerprint, no upload); a newsroom key."""
    form = signed_form(footage.fingerprint, stack.device.key, stack.device.id)
    response = stack.http.post("/v1/registrations", data=form, headers=stack.camera)
    assert response.status_code == 201, response.text
    return stack.key("newsroom")


def _audio(result: dict[str, Any], *kinds: str) -> list[dict[str, Any]]:
    return [f for f in result["findings"] if f["track"] == "audio" and (not kinds or f["kind"] in kinds)]


TAMPER = ("audio_replaced", "audio_removed", "audio_inserted")


def test_a_reencoded_copy_is_authentic(stack: Stack, newsroom: dict[str, str], footage: Footage) -> None:
    copy = footage.copy("reencode.mp4", footage.track, codec="aac", bitrate=64_000, video_crf=28, channels=2)
    result = stack.verify(newsroom, copy).json()
    assert result["verdict"] == "authentic", result
    assert not _audio(result, *TAMPER), result["findings"]
    assert result["match"]["audio"]["offset"] is not None
    assert abs(result["match"]["audio"]["offset"]) < 0.1


def test_a_voice_replaced_for_two_seconds_is_tampered_with_those_seconds(
    stack: Stack, service: Service, newsroom: dict[str, str], footage: Footage
) -> None:
    edited, _ = speech.replace_range(footage.track, footage.other, EDIT[0], EDIT[1] - EDIT[0])
    result = stack.verify(newsroom, footage.copy("replaced.mp4", edited, bitrate=64_000)).json()
    assert result["verdict"] == "tampered", result
    found = _audio(result, *TAMPER)
    assert {f["kind"] for f in found} == {"audio_replaced"}, found
    assert time_iou([f["query_range"] for f in found], [EDIT]) >= 0.7, found
    # The picture is intact: only the sound is flagged.
    assert not [f for f in result["findings"] if f["track"] == "video"], result["findings"]
    assert time_iou(result["match"]["tampered_ranges"], [EDIT]) >= 0.7
    # The report draws the sound's timeline under the picture's, its changed range shaded.
    report = service.settings.data_dir / "reports" / result["id"]
    meta = json.loads((report / "report.json").read_text())
    assert meta["audio_timeline"]["tampered_ranges"] == [found[0]["query_range"]]
    html = stack.http.get(result["report_url"], headers=newsroom).text
    assert html.index('id="timeline"') < html.index('id="audio-timeline"')
    assert "differs from the original: other sound than the original" in html


def test_a_dub_is_tampered(stack: Stack, newsroom: dict[str, str], footage: Footage) -> None:
    dubbed, _ = speech.dub(footage.track, footage.other)
    result = stack.verify(newsroom, footage.copy("dub.mp4", dubbed, codec="opus", bitrate=32_000)).json()
    assert result["verdict"] == "tampered", result
    found = _audio(result, *TAMPER)
    assert time_iou([f["query_range"] for f in found], [(0.0, 10.0)]) >= 0.8, found


def test_two_seconds_muted_are_tampered(stack: Stack, newsroom: dict[str, str], footage: Footage) -> None:
    muted, edit = speech.mute(footage.track, EDIT[0], EDIT[1] - EDIT[0])
    result = stack.verify(newsroom, footage.copy("muted.mp4", muted, bitrate=64_000)).json()
    assert result["verdict"] == "tampered", result
    found = _audio(result, *TAMPER)
    assert {f["kind"] for f in found} == {"audio_removed"}, found
    # Scored against the speech that was muted (the sentences inside the two seconds).
    assert time_iou([f["query_range"] for f in found], edit.ranges) >= 0.7, (found, edit)


def test_sound_shifted_300_ms_is_authentic_with_an_offset_finding(
    stack: Stack, newsroom: dict[str, str], footage: Footage
) -> None:
    shifted, _ = speech.shift(footage.track, 0.3)
    result = stack.verify(newsroom, footage.copy("shifted.mp4", shifted, bitrate=64_000)).json()
    assert result["verdict"] == "authentic", result
    assert not _audio(result, *TAMPER), result["findings"]
    [offset] = _audio(result, "audio_offset")
    assert abs(result["match"]["audio"]["offset"] - 0.3) <= 0.05, result["match"]["audio"]["offset"]
    assert "0.30 s late" in offset["detail"], offset


def test_a_copy_without_sound_is_authentic_with_a_note(
    stack: Stack, newsroom: dict[str, str], footage: Footage
) -> None:
    silent = speech.mux(BIKES, footage.folder / "no-sound.mp4", None)
    result = stack.verify(newsroom, silent).json()
    assert result["verdict"] == "authentic", result
    assert [f["kind"] for f in _audio(result)] == ["audio_missing"], result["findings"]


def _counts(service: Service) -> tuple[int, int]:
    with Session(service.engine) as session:
        return (
            session.exec(select(func.count()).select_from(Registration)).one(),
            session.exec(select(func.count()).select_from(Verification)).one(),
        )


def corrupt_sound(src: Path, dst: Path) -> Path:
    """`src` with the payload of every sound packet after the first second overwritten by noise."""
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(0)
    with av.open(str(src)) as container:
        sound = container.streams.audio[0]
        for packet in container.demux(sound):
            if packet.pos is not None and packet.size and packet.pts is not None and packet.pts > sound.rate:
                data[packet.pos : packet.pos + packet.size] = rng.integers(
                    0, 256, packet.size, np.uint8
                ).tobytes()
    dst.write_bytes(bytes(data))
    return dst


def test_corrupt_sound_is_refused_with_nothing_written(
    service: Service,
    newsroom: dict[str, str],
    stack: Stack,
    footage: Footage,
) -> None:
    """Both where sound is decoded: verifying a clip (a version 3 original is registered) and
    registering an upload whose claimed fingerprint has an audio channel."""
    broken = corrupt_sound(footage.original, footage.folder / "corrupt.mp4")
    before = _counts(service)
    response = stack.verify(newsroom, broken)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "audio_undecodable"
    upload = stack.upload(broken, footage.fingerprint)
    assert upload.status_code == 422, upload.text
    assert upload.json()["code"] == "audio_undecodable"
    assert _counts(service) == before


@pytest.mark.slow
def test_an_upload_is_registered_when_its_sound_agrees_and_refused_when_it_does_not(
    stack: Stack, footage: Footage
) -> None:
    """The server recomputes the version 3 fingerprint (sound included) from the uploaded bytes."""
    claimed = footage.fingerprint
    audio = claimed.audio_channel()
    assert audio is not None and audio.present and audio.frames > 300
    forged = replace(claimed, audio=speech_of(footage.other, footage.folder).encode())
    refused = stack.upload(footage.original, forged)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "fingerprint_mismatch"
    assert "audio" in refused.json()["detail"]
    accepted = stack.upload(footage.original, claimed)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["content_sha256"] == hashlib.sha256(footage.original.read_bytes()).hexdigest()


def speech_of(track: speech.SpeechTrack, folder: Path) -> Any:
    """The audio channel another sound would give the same picture."""
    other = speech.mux(BIKES, folder / "other-sound.mp4", track.samples, codec="aac", bitrate=128_000)
    audio = fp.compute_fingerprint(other, limits=DecodeLimits(), version=3).audio_channel()
    assert audio is not None
    return audio
