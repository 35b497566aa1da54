"""deepc's version: one place, below every layer (bundles and the CLI record it)."""

__version__ = "0.1.0"
