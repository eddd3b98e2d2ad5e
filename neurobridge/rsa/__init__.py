"""neurobridge.rsa."""

__all__: list[str] = []
