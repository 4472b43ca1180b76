"""Wine Classifier: an example Kedro project built on scikit-learn's bundled wine data."""

__version__ = "0.1.0"
