"""Detector tests run on one thread: other work shares the two cores."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
