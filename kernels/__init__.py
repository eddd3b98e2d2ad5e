"""Kernels: reference (torch) and Triton implementations, dispatched per call (DESIGN.md §5)."""

__all__: list[str] = []
