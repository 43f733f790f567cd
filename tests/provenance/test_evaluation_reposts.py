"""The repost evaluation's scoring: right original and verdict per group, rates per split and form."""

from __future__ import annotations

from typing import Any

from generator import attacks
from generator.tampers import TamperTruth
from generator.variants import VariantTruth
from provenance import evaluation_reposts as ev


def _result(verdict: str, registration: str | None, kinds: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "verdict": verdict,
        "confidence": 0.8,
        "match": {"registration_id": registration} if registration else None,
        "findings": [{"kind": k} for k in kinds],
    }


def test_rows_are_right_only_for_the_right_original_and_verdict() -> None:
    benign = VariantTruth((0.0, 4.0), "mirror")
    row = ev.score("benign", "mirror", benign, _result("authentic", "reg_a", ("mirrored",)), "reg_a")
    assert row["correct"] and row["noted"] and row["right_original"]
    row = ev.score("benign", "mirror", benign, _result("authentic", "reg_b"), "reg_a")
    assert not row["correct"] and not row["noted"]
    tamper = TamperTruth(ranges=[(1.0, 2.0)], kind="paste")
    assert ev.score("tamper", "mirror_paste", tamper, _result("tampered", "reg_a"), "reg_a")["correct"]
    assert not ev.score("tamper", "mirror_paste", tamper, _result("authentic", "reg_a"), "reg_a")["correct"]
    # A copy of footage nobody registered is right only when unknown.
    assert ev.score("benign", "mirror", benign, _result("unknown", None), None)["correct"]
    assert not ev.score("benign", "mirror", benign, _result("authentic", "reg_a"), None)["correct"]


def test_summaries_are_per_split_and_form() -> None:
    def row(split: str, form: str, group: str, verdict: str, correct: bool) -> dict[str, Any]:
        return {
            "split": split,
            "form": form,
            "group": group,
            "verdict": verdict,
            "correct": correct,
            "right_original": correct,
            "seconds": 1.0,
        }

    rows = [
        row("validation", "mirror", "repost", "authentic", True),
        row("validation", "mirror", "repost", "unknown", False),
        row("validation", "reencode", "control", "tampered", False),
        row("validation", "mirror_paste", "tamper", "tampered", True),
        row("validation", "mirror", "unregistered", "unknown", True),
        row("heldout", "mirror", "repost", "authentic", True),
    ]
    summary = ev.summarise(rows)
    overall = summary["validation"]["overall"]
    assert overall["reposts_authentic_right_original"] == 0.5 and overall["reposts_unknown"] == 0.5
    assert overall["tampers_detected"] == 1.0
    assert overall["benign_false_positive_rate"] == round(1 / 3, 4)
    assert overall["unregistered_false_match_rate"] == 0.0
    assert set(summary["validation"]["forms"]) == {
        "mirror",
        "reencode",
        "mirror_paste",
        "unregistered mirror",
    }
    assert summary["heldout"]["overall"]["reposts_n"] == 1


def test_the_sources_split_by_footage_and_cover_real_and_made_clips() -> None:
    for split in ev.SPLITS:
        mine = [s for s in ev.SOURCES if s.split == split]
        assert any(s.real for s in mine) and any(not s.real for s in mine)
        assert any(not s.registered for s in mine)
    assert len({s.name for s in ev.SOURCES}) == len(ev.SOURCES)
    assert set(ev.NOTES) == set(attacks.REPOSTS)
