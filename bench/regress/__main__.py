"""``python -m bench.regress [--base HEAD~1] ...``: the regression check for CI (make
bench-ci), the same command as ``arsenal regress`` with the same flags. The check itself
is bench/regress/ (rule, method and modules in its docstring)."""

from __future__ import annotations

import sys


def main(argv=None) -> int:
    from bench import cli

    return cli.main(["regress", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
