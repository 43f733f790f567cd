"""Trained weights shipped with the generator (a package so that setuptools packages them)."""
