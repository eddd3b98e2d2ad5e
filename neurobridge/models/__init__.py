"""neurobridge.models."""

__all__: list[str] = []
