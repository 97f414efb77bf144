"""``arsenal report``: one self-contained HTML file from results files (reports/)."""

from __future__ import annotations

import sys

NAME = "report"
HELP = "an HTML report of results files (one file, no network at view time)"
TIMING = False


def add_arguments(parser) -> None:
    parser.add_argument("results", nargs="*", default=["out/results.jsonl"],
                        help="results files (default: out/results.jsonl)")
    parser.add_argument("-o", "--out", default="out/report.html", help="the HTML file to write")
    parser.add_argument("--baseline", help="an older results file: faster/slower/unchanged/ambiguous counts")
    parser.add_argument("--screenshot", metavar="PNG", help="also save the report's first screen (headless Chromium)")


def run(args, console) -> int:
    from reports import browser, page
    from reports.data import NoRecords

    try:
        report = page.build(args.results, args.baseline)
    except FileNotFoundError as exc:
        print(f"arsenal report: {exc}", file=sys.stderr)
        return 2
    except NoRecords as exc:
        print(f"arsenal report: {exc}", file=sys.stderr)
        return 1
    for note in report.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    out = page.write(report, args.out)
    size = out.stat().st_size
    over = f", over its budget of {page.BUDGET_BYTES / 1e6:.0f} MB" if size > page.BUDGET_BYTES else ""
    console.print(f"report: {out} ({len(report.figure_ids)} figures, {size / 1e6:.1f} MB{over})",
                  markup=False, highlight=False)
    if args.screenshot:
        reason = browser.missing()
        if reason:
            print(f"arsenal report: no screenshot: {reason}", file=sys.stderr)
            return 1
        shot = browser.screenshot(out, args.screenshot)
        console.print(f"screenshot: {args.screenshot} ({shot.rendered} of {shot.figures} figures rendered)",
                      markup=False, highlight=False)
        for error in shot.errors:
            console.print(f"script error: {error}", markup=False, highlight=False)
        if shot.errors or shot.rendered < shot.figures:
            return 1
    return 0
