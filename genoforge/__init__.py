"""genoforge: train transformer gene finders that read DNA and write GFF3."""

__version__ = "0.1.0"
