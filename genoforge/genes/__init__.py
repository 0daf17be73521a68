"""The gene-structure domain layer: per-base classes, their labels and the gene-structure model.

Every stage may import this package; it imports no stage (only ``genoforge.errors``).
"""
