"""neurobridge.extract."""

__all__: list[str] = []
