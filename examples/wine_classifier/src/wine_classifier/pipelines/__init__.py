"""Modular pipelines of the Wine Classifier project."""
