"""The package version, apart from the package root (which opens the facade)."""

__version__ = "0.1.0"
