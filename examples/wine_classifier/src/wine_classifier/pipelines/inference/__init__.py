"""Score wines with the registry's champion model."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
