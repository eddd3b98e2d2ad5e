"""Model registry (name -> loader) and built-in architectures for offline weights."""

from ._base import LoadedModel

__all__ = ["LoadedModel"]
