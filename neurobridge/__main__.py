"""``python -m neurobridge``: the same as the ``neurobridge`` command."""

from neurobridge.cli import main

if __name__ == "__main__":  # importing this module (doctest collection, pkgutil) must not run the CLI
    raise SystemExit(main())
