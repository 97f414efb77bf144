"""``arsenal profile``: a torch.profiler trace and per-op table of one pair (bench.ops.profile)."""

from __future__ import annotations

from bench.cli import UsageError
from bench.commands import _args

NAME = "profile"
HELP = "a torch.profiler trace and per-op table of one pair"
TIMING = True


def add_arguments(sp) -> None:
    sp.add_argument("--op", required=True)
    sp.add_argument("--backend", required=True, help="a backend or a peer")
    sp.add_argument("--suite", default="quick")
    sp.add_argument("--case", help="KEY=VALUE,... (default: the suite's first case)")
    sp.add_argument("--dtype", default="float32")
    sp.add_argument("--mode", default="forward")
    sp.add_argument("--device", help=_args.DEVICE_HELP)
    sp.add_argument("--steps", type=int, default=10)
    sp.add_argument("--out-dir", default="out/profile")
    sp.add_argument("--threads", type=int)


def run(args, console) -> int:
    from bench import env
    from bench.ops import profile, plan

    sel = _args.selection(args)
    if len(sel.ops) != 1 or len(sel.names or ()) != 1 or len(sel.modes) != 1 or len(sel.dtypes or ()) != 1:
        raise UsageError("profile takes one --op, one --backend, one --dtype and one --mode")
    found = plan.items(sel)
    if not found:
        raise UsageError(f"suite {sel.suite!r} has no case of {args.op} for {sel.device}; give --case")
    item = found[0]
    if item.reason is not None:
        raise UsageError(f"{item.op}[{item.name}] cannot run here: {item.reason}")
    env.pin_process(args.threads)
    res = profile.run(item.op, item.name, item.case, item.dtype, item.device, item.mode, args.steps, args.out_dir)
    console.print(res.table, markup=False, highlight=False)
    console.print(f"trace: {res.trace}\ntable: {res.table_path}", markup=False, highlight=False)
    return 0
