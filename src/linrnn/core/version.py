"""The package's version, at the bottom layer so that every layer can name it (signatures, provenance)."""

__version__ = "0.1.0"
