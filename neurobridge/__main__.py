"""``python -m neurobridge``: the same as the ``neurobridge`` command."""

from neurobridge.cli import main

raise SystemExit(main())
