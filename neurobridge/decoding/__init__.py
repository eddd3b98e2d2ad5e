"""neurobridge.decoding."""

__all__: list[str] = []
