"""neurobridge.stats."""

__all__: list[str] = []
