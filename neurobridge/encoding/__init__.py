"""neurobridge.encoding."""

__all__: list[str] = []
