"""What gets run: op shape suites, the pytest-benchmark files (suites/pytest) and the
asv benchmark directory (suites/asv)."""
