"""The one version number of keras-graft (read by setuptools from this file, without importing it)."""

__version__ = "0.2.0"
