"""neurobridge.io."""

__all__: list[str] = []
