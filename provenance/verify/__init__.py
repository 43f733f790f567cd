"""Verification of submitted clips against registered originals: align, compare, decide.

Modules: `thumbs` (what the grid descriptors hold of a frame), `align` (which part of which
original a clip shows), `compare` (segment comparers behind one Protocol), `verdict` (the
verification flow and its result, mirroring the `provenance.verification/v1` JSON contract).

Import from the modules themselves; this package imports nothing, so that `provenance.index`,
which uses `thumbs`, and `verdict`, which uses the index, never import each other in a cycle.
"""
