"""The in-house generator: fakes and variants that keep testing the comparer (never imports provenance)."""

__version__ = "0.1.0"
