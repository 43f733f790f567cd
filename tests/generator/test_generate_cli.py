"""`provenance generate swap` end to end through the real command: a fake video out, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from frames.samples import sample_clip
from generator.swap import DEFAULT_WEIGHTS, write_astronaut
from generator.variants import read_clip, write_clip
from provenance.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 20 frames of the carphone clip, as H.264."""
    clip = read_clip(sample_clip("carphone_pristine.mp4"))
    path = tmp_path_factory.mktemp("cli") / "carphone_20.mp4"
    write_clip(path, clip.frames[:20], clip.fps)
    return path


def test_generate_swap_writes_a_fake_with_the_shipped_weights(tmp_path: Path, short_clip: Path) -> None:
    assert DEFAULT_WEIGHTS.is_file(), "run make swap-weights"
    source = write_astronaut(tmp_path / "astronaut")
    fake = tmp_path / "fake.mp4"
    paths = ["--source", str(source), "--target", str(short_clip), "--out", str(fake)]
    result = runner.invoke(app, ["generate", "swap", *paths, "--steps", "0", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["trained"] is False and info["weights"] == str(DEFAULT_WEIGHTS)
    assert info["frames"] == 20 and info["frames_swapped"] >= 18
    written = read_clip(fake)
    original = read_clip(short_clip)
    assert len(written.frames) == 20 and written.size == original.size
    assert written.fps == original.fps
    (x, y, w, h) = info["truth"]["regions"][0]
    assert 0 <= x < x + w <= 1 and 0 <= y < y + h <= 1


@pytest.mark.slow
def test_generate_swap_trains_a_new_source_and_evades(tmp_path: Path, short_clip: Path) -> None:
    """A source no weights fit (a video this time) is trained for --steps; evasion reports PDQ."""
    fake = tmp_path / "fake.mp4"
    saved = tmp_path / "mine.pt"
    paths = ["--source", str(short_clip), "--target", str(short_clip), "--out", str(fake)]
    options = ["--steps", "2", "--evade-steps", "2", "--save-weights", str(saved), "--json"]
    result = runner.invoke(app, ["generate", "swap", *paths, *options])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["trained"] is True and info["training_steps"] == 2 and saved.is_file()
    assert info["evasion"]["steps"] == 2 and info["evasion"]["threshold"] == 31
    assert len(read_clip(fake).frames) == 20


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ("--source {missing} --target {clip} --out {out}", "not_found"),
        ("--source {astronaut} --target {clip} --out {tmp}/fake.gif", "generate_bad_input"),
        ("--source {astronaut} --target {astronaut} --out {out}", "generate_bad_input"),
        ("--source {astronaut} --target {text} --out {out}", "generate_bad_input"),
        ("--source {empty} --target {clip} --out {out} --steps 1", "generate_bad_input"),
        ("--source {clip} --target {clip} --out {out} --steps 0", "generate_bad_input"),
        ("--source {astronaut} --target {clip} --out {out} --steps -1", "generate_bad_input"),
    ],
)
def test_generate_swap_refuses_bad_input_in_one_line(
    tmp_path: Path, short_clip: Path, args: str, code: str
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not a video\n")
    names = {
        "missing": str(tmp_path / "nowhere"),
        "clip": str(short_clip),
        "out": str(tmp_path / "fake.mp4"),
        "tmp": str(tmp_path),
        "astronaut": str(write_astronaut(tmp_path / "astronaut")),
        "empty": str(tmp_path / "empty"),
        "text": str(tmp_path / "notes.txt"),
    }
    result = runner.invoke(app, ["generate", "swap", *(a.format(**names) for a in args.split())])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {code}: "), result.stderr
    assert not (tmp_path / "fake.mp4").exists()
