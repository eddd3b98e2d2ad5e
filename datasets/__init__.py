"""Dataset cards, loaders and simulators (DESIGN.md §6)."""

__all__: list[str] = []
