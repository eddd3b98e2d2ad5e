"""neurobridge.benchmark."""

__all__: list[str] = []
