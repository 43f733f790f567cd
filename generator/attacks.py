"""The attack catalogue: every copy the generator makes of an original, by name, in one place.

`ATTACKS` lists the file-level attacks (`generator.tampers` and `generator.variants` writing a
new H.264 file, with the truth to score against): the continuous evaluation
(`provenance.evaluation`) and the detector's held-out evaluation (`detector.evaluate`) each run a
selection of it by name. `SEGMENT_TAMPERS` lists the tampers the detector makes in memory on the
frames of one segment (`detector.data`, training and evaluation), with the same array-level
edits (`generator.tampers.paste`, `inpaint`, `recolour`, `blend`); `Attack.segment` names the
in-memory tamper each file-level one corresponds to. Face swaps are made by `generator.campaign`
and join the evaluation there (they need a face and the swap weights).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from generator import reposts, tampers, variants

Kind = Literal["tamper", "benign"]
Truth = tampers.TamperTruth | variants.VariantTruth


@dataclass(frozen=True)
class Where:
    """Where a tamper goes in an original of `clip` seconds: [start, start + duration), `box`."""

    clip: float
    start: float
    duration: float
    box: tampers.Box = (0.3, 0.3, 0.3, 0.35)
    # Draws a repost's parameters (`generator.reposts.form`): one seed per original.
    seed: int = 0


# (original, another original for foreign frames, output, where) -> the truth of the output.
Make = Callable[[Path, Path, Path, Where], Truth]


@dataclass(frozen=True)
class Attack:
    name: str
    kind: Kind
    make: Make
    # The in-memory tamper of a segment that makes the same edit (`SEGMENT_TAMPERS`), if any.
    segment: str | None = None


# Tampers made in memory on one segment's frames (`detector.data.tamper_segment`); the order is
# the order the detector's samplers cycle through them (it fixes the shipped evaluation slice).
SEGMENT_TAMPERS = ("paste", "object", "copy_move", "inpaint", "recolour", "splice", "insert")

ATTACKS: tuple[Attack, ...] = (
    Attack(
        "paste_region",
        "tamper",
        lambda s, o, d, w: tampers.paste_region(s, d, w.start, w.duration, box=w.box),
        "paste",
    ),
    Attack(
        "paste_solid",
        "tamper",
        lambda s, o, d, w: tampers.paste_region(s, d, w.start, w.duration, w.box, patch="solid"),
        "paste",
    ),
    Attack(
        "copy_move",
        "tamper",
        lambda s, o, d, w: tampers.paste_region(s, d, w.start, w.duration, w.box, patch="frame"),
        "copy_move",
    ),
    Attack(
        "replace_range",
        "tamper",
        lambda s, o, d, w: tampers.replace_range(s, o, d, w.start, w.duration),
        "splice",
    ),
    Attack("remove_range", "tamper", lambda s, o, d, w: tampers.remove_range(s, d, w.start, w.duration)),
    Attack(
        "insert_frames",
        "tamper",
        lambda s, o, d, w: tampers.insert_frames(s, o, d, w.start, w.duration),
        "insert",
    ),
    Attack(
        "inpaint",
        "tamper",
        lambda s, o, d, w: tampers.inpaint_region(s, d, w.start, w.duration, box=w.box),
        "inpaint",
    ),
    Attack(
        "recolour",
        "tamper",
        lambda s, o, d, w: tampers.recolour_region(s, d, w.start, w.duration, box=w.box),
        "recolour",
    ),
    Attack("reencode", "benign", lambda s, o, d, w: variants.reencode(s, d, bitrate=150_000)),
    Attack("reencode_300k", "benign", lambda s, o, d, w: variants.reencode(s, d, bitrate=300_000)),
    Attack("reencode_crf32", "benign", lambda s, o, d, w: variants.reencode(s, d, crf=32)),
    Attack("downscale", "benign", lambda s, o, d, w: variants.downscale(s, d, 0.5)),
    Attack("letterbox", "benign", lambda s, o, d, w: variants.letterbox(s, d)),
    Attack("pillarbox", "benign", lambda s, o, d, w: variants.pillarbox(s, d)),
    Attack("crop", "benign", lambda s, o, d, w: variants.crop(s, d, 0.10)),
    Attack("colour", "benign", lambda s, o, d, w: variants.colour(s, d)),
    Attack("subclip", "benign", lambda s, o, d, w: variants.subclip(s, d, w.clip / 4, 3 * w.clip / 4)),
    Attack("change_fps", "benign", lambda s, o, d, w: variants.change_fps(s, d, 15.0)),
)


def _repost(name: str) -> Make:
    return lambda s, o, d, w: reposts.make(name, s, o, d, w.seed)


def _reposted_paste(name: str) -> Make:
    """A pasted patch, then reposted as form `name`; the patch lies inside what the repost shows."""

    def make(src: Path, other: Path, dst: Path, at: Where) -> Truth:
        reframe = reposts.form(name, at.seed, reposts.aspect_of(src))
        x, _, width, _ = reframe.window
        box = (x + 0.3 * width, 0.3, 0.4 * width, 0.35) if width < 1 else at.box
        return reposts.reposted_tamper(
            lambda edited: tampers.paste_region(src, edited, at.start, at.duration, box=box),
            src,
            dst,
            reframe,
            other,
        )

    return make


# The repost forms (`generator.reposts.FORMS`): benign, each must be found and called authentic.
REPOSTS: tuple[str, ...] = reposts.FORMS
# Real edits inside reposted copies: still tampered.
REPOSTED_TAMPERS: tuple[str, ...] = ("crop_centre_paste", "mirror_paste", "fill_blurred_paste")

ATTACKS = (
    *ATTACKS,
    *(Attack(name, "benign", _repost(name)) for name in REPOSTS),
    *(
        Attack(name, "tamper", _reposted_paste(name.removesuffix("_paste")), "paste")
        for name in REPOSTED_TAMPERS
    ),
)

_BY_NAME = {a.name: a for a in ATTACKS}


def pick(names: Sequence[str]) -> tuple[Attack, ...]:
    """The catalogue's attacks called `names`, in that order (KeyError names an unknown one)."""
    unknown = [n for n in names if n not in _BY_NAME]
    if unknown:
        raise KeyError(f"no attack called {', '.join(unknown)} (the catalogue: {', '.join(_BY_NAME)})")
    return tuple(_BY_NAME[n] for n in names)
