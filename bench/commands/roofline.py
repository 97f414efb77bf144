"""``arsenal roofline``: the machine's measured ceilings (bench.roofline), cached."""

from __future__ import annotations

from bench.commands import _args

NAME = "roofline"
HELP = "print the machine's ceilings (measured once, cached)"
TIMING = True


def add_arguments(sp) -> None:
    sp.add_argument("--refresh", action="store_true")
    sp.add_argument("--device", help=_args.DEVICE_HELP)
    sp.add_argument("--threads", type=int)


def run(args, console) -> int:
    from rich.table import Table

    from bench import env, roofline

    from bench.ops import summary

    _args.check_device(args.device)
    env.pin_process(args.threads)
    ceil = roofline.ceilings(args.device, refresh=args.refresh)
    table = Table(title=f"Ceilings of {ceil['env']['gpu'] or ceil['env']['cpu']} "
                        f"({ceil['env']['threads']['torch']} threads; measured {ceil['measured_at']})")
    table.add_column("ceiling")
    table.add_column("value", justify="right")
    table.add_row("copy bandwidth (largest set)", f"{ceil['copy_gbps']:.1f} GB/s")
    for p in ceil["copy"]:
        table.add_row(f"  copy, {p['bytes'] / 2**20:g} MiB moved ({p.get('threads') or 'GPU'} thread(s) best)",
                      f"{p['gbps']:.1f} GB/s")
    for dtype, rate in ceil["matmul_gflops"].items():
        table.add_row(f"matmul {dtype} (best of sizes and thread counts)", f"{rate:.1f} GFLOP/s")
    for m in ceil.get("matmul", ()):
        table.add_row(f"  {m['dtype']} n={m['n']}, {m['threads'] or 'GPU'} thread(s)", f"{m['gflops']:.1f} GFLOP/s")
    console.print(table)
    console.print(f"cache: {roofline.cache_path(args.device)}; load average then: {ceil.get('loadavg')}",
                  markup=False, highlight=False)
    summary.warn_busy_ceilings(console, ceil)
    return 0
