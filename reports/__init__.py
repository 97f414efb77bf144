"""The HTML performance report (``arsenal report``), built from results files alone.

    import reports
    reports.write_report(["out/results.jsonl"], "out/report.html", baseline=None)  # -> Path

Code here reads results files through ``bench.results`` (every record validated once
against the schema there, what fails named in the header) and compares result sets
(``bench.compare``); it never imports backends, models or suites. Generated reports go
to out/ (ignored by git). Modules: data (read and split by kind), sections/ (one module
per section), blocks and figures (the pieces), page and template (the file), browser
(headless Chromium: render check and screenshot).
"""

from __future__ import annotations


def write_report(paths, out="out/report.html", baseline=None):
    """Write one self-contained HTML report of the results files ``paths``; returns its
    path. Raises FileNotFoundError, or reports.data.NoRecords when no file has a record."""
    from reports.page import write_report as write

    return write(paths, out, baseline)
