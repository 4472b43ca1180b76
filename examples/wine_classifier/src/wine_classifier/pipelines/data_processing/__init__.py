"""Load, clean and split the wine data."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
