"""neurobridge.sae."""

__all__: list[str] = []
