"""``arsenal ops``: plan, gate, prepare, time interleaved and append every group of the
selection (bench.ops.plan, bench.ops.runner), then print the summary with its warnings."""

from __future__ import annotations

from bench.commands import _args

NAME = "ops"
HELP = "time ops interleaved, append results, print a summary"
TIMING = True


def add_arguments(sp) -> None:
    _args.add_selection(sp, modes=True, suite=True, threads=True)
    sp.add_argument("--case", help="time this case instead of the suite's (KEY=VALUE,...)")
    sp.add_argument("--out", default="out/results.jsonl", help="results file (appended)")
    sp.add_argument("--budget", type=float, help="seconds of timing per group")
    sp.add_argument("--target", type=float, help="stop at this relative IQR")
    sp.add_argument("--settle-ms", type=float, help="sleep before each block, longer than OpenMP's spin (default 20)")
    sp.add_argument("--block-ms", type=float, help="aim of one block of repetitions (0: one call per block)")
    sp.add_argument("--fixed-order", action="store_true", help="do not alternate the order of the candidates")
    sp.add_argument("--refresh-roofline", action="store_true", help="measure the ceilings again first")
    sp.add_argument("--strict-gate", action="store_true",
                    help="benchmark-case gradients against the float64 reference, not the torch oracle "
                         "(slow for long sequences)")


def config(args):
    from bench.ops.time_ops import OpsConfig

    return OpsConfig(selection=_args.selection(args), out=args.out, threads=args.threads,
                     timing=_args.timing_config(args), refresh_roofline=args.refresh_roofline,
                     strict_gate=args.strict_gate)


def run(args, console) -> int:
    from bench.ops import summary
    from bench.ops.time_ops import time_ops

    return summary.exit_status(console, time_ops(config(args), console))
