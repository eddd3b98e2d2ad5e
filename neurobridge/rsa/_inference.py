"""RSA inference: model evaluation with bootstrap CIs, permutation tests and noise ceilings."""

from __future__ import annotations

__all__: list[str] = []
