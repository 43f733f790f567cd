"""Verification of submitted clips against registered originals: align, compare, decide.

Modules: `index` (the registered frames, searchable), `thumbs` (what the grid descriptors hold of
a frame), `align` (which part of which
original a clip shows), `compare` (segment comparers behind one Protocol), `verdict` (the
verification flow and its result, mirroring the `provenance.verification/v1` JSON contract).

Import from the modules themselves; this package imports nothing, so that `index`, which uses
`thumbs`, and `verdict`, which uses the index, never import each other in a cycle.
"""
