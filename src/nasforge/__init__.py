"""nasforge: neural architecture search, with search spaces, estimators and strategies side by side."""

from nasforge.errors import NasforgeError

__version__ = "0.1.0"

__all__ = ["NasforgeError", "__version__"]
