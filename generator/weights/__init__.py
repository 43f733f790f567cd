"""Trained weights shipped with the generator (a package so that setuptools packages them).

Paths only, no torch: the service names the weights without paying for importing the model.
"""

from pathlib import Path

# Trained by `make swap-weights` (`python -m generator.train`): carphone (A) ← astronaut (B).
SWAP_WEIGHTS = Path(__file__).resolve().parent / "swap.pt"
