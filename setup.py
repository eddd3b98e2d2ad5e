"""Package discovery for the three source roots mapped into the ``neurobridge`` namespace.

``neurobridge/`` is the library; ``kernels/`` and ``datasets/`` sit at the top level (DESIGN.md §2)
and install as ``neurobridge.kernels`` and ``neurobridge.datasets``. Everything else lives in
pyproject.toml.
"""

from setuptools import find_packages, setup


def _mapped(root: str, prefix: str) -> list[str]:
    return [prefix] + [f"{prefix}.{name}" for name in find_packages(root)]


setup(
    packages=find_packages(include=["neurobridge", "neurobridge.*"])
    + _mapped("kernels", "neurobridge.kernels")
    + _mapped("datasets", "neurobridge.datasets"),
)
