"""The correctness gate over each op's test cases (``backends.check.check_pair``) for every
planned (op, candidate, dtype), as a printed table: what ``arsenal check`` and ``arsenal
run`` show before anything is timed."""

from __future__ import annotations


def rows(sel, items=None):
    """One row per planned (op, candidate, dtype): check_pair over the op's test cases,
    or a "skipped" row with the reason when the candidate cannot run here. ``items``:
    ``plan.checks(sel)`` already planned."""
    import backends
    from backends.check import check_pair
    from bench.ops import candidates, plan
    from bench.ops.dtypes import name as dtype_name

    for item in (plan.checks(sel) if items is None else items):
        if item.reason is not None:
            yield {"op": item.op, "backend": item.name, "dtype": "-", "status": "skipped", "reason": item.reason}
            continue
        fn = candidates.checked_callable(item.op, item.name)
        res = [check_pair(item.op, item.name, case, item.dtype, item.device, grad=item.grad, fn=fn)
               for case in backends.OPS[item.op].test_cases]
        fwd = [r.forward_error for r in res if r.forward_error == r.forward_error]
        grads = [r.grad_error for r in res if r.grad_error is not None]
        yield {"op": item.op, "backend": item.name, "dtype": dtype_name(item.dtype), "results": res, "grad": item.grad,
               "status": "ok" if all(r.ok for r in res) else "FAIL",
               "passed": f"{sum(r.ok for r in res)}/{len(res)}",
               "forward_error": max(fwd) if fwd else None, "grad_error": max(grads) if grads else None,
               "seconds": sum(r.seconds for r in res),
               "problems": [f"{r.case}: {p}" for r in res for p in r.problems]}


def check(sel, console) -> tuple[int, list[dict]]:
    """Print the gate's table; returns the exit status and every row checked."""
    from rich.table import Table

    from bench.ops import plan
    from bench.ops.summary import num
    from bench.progress import ProgressLines

    table = Table(title="Correctness gate (error = worst |got - ref| / tolerance; <= 1 passes)")
    for col in ("op", "backend", "dtype", "status", "cases", "forward err", "grad err", "seconds"):
        table.add_column(col)
    checked, problems, skipped = [], [], {}
    items = list(plan.checks(sel))
    lines = ProgressLines(console, "check", len(items))  # the first Numba compilations take minutes
    for row in rows(sel, items):
        lines.step(f"{row['op']} {row['backend']} {row['dtype']}")
        if row["status"] == "skipped":
            skipped.setdefault((row["backend"], row["reason"]), []).append(row["op"])
            continue
        checked.append(row)
        problems += [f"{row['op']}[{row['backend']}] {row['dtype']}: {p}" for p in row["problems"]]
        style = "green" if row["status"] == "ok" else "bold red"
        table.add_row(row["op"], row["backend"], row["dtype"], f"[{style}]{row['status']}[/]", row["passed"],
                      num(row["forward_error"], ".2g"), num(row["grad_error"], ".2g"), f"{row['seconds']:.1f}")
    console.print(table)
    for (name, reason), skipped_ops in skipped.items():
        console.print(f"skipped {name} ({', '.join(skipped_ops)}): {reason}", markup=False, highlight=False)
    for p in problems[:50]:
        console.print(p, markup=False, highlight=False)
    failed = sum(row["status"] != "ok" for row in checked)
    console.print(f"{failed} failing pair(s)" if failed else "all checked pairs pass")
    return (1 if failed else 0), checked
