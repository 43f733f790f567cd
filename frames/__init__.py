"""Frame-level primitives written once for `provenance`, `detector` and `generator`.

Letterbox stripping (`bars`), the v1 per-frame descriptor (`descriptor`), flagged-cell regions and
time/box overlap (`regions`) and the checked dlib face models (`faces`). This package imports none
of the three: they all build on it, so the fingerprint, the comparers and the fakes agree.
"""
