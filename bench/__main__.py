"""``python -m bench``: the ``arsenal`` command."""

from bench.cli import main

raise SystemExit(main())
