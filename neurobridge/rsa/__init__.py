"""Representational similarity analysis."""

from . import _inference
from ._inference import *  # noqa: F403

__all__: list[str] = [*_inference.__all__]
