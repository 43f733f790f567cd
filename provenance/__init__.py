"""Media provenance and verification service."""

__version__ = "0.1.0"
