"""``arsenal train``: a thin layer over bench.train.TrainConfig.

    arsenal train --family transformer --model d_model=64,n_layers=2,causal=False \\
        --task listops --task-args max_length=512 --steps 2000 --batch-size 32
    arsenal train --family elman --model rung=4 --mix default=numba_cpu,parallel_scan=torch \\
        --task ptb_char --seq-len 128 --bf16 --checkpoint out/ckpt/elman.pt --checkpoint-every 200
    arsenal train ... --checkpoint out/ckpt/elman.pt --resume     # continue where it stopped
    arsenal train ... --nproc 2          # DDP: torchrun --nproc_per_node 2 -m bench.train ...

Every option left out keeps TrainConfig's default (bench/train/run.py documents each field).
"""

from __future__ import annotations

import shlex
import subprocess

NAME = "train"
HELP = "train a model on a task (AdamW or schedule-free, TBPTT, bf16, DDP, checkpoints)"
TIMING = False


def add_arguments(parser) -> None:
    from bench.train import options

    options.add_arguments(parser)


def run(args, console) -> int:
    from bench.cli import UsageError

    from backends.mix import alias_note
    from bench.train import options

    try:
        cfg = options.config_from_args(args)
        note = alias_note(args.mix) if args.mix else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if note:
        console.print(note, markup=False, highlight=False)
    if args.nproc < 1:
        raise UsageError(f"--nproc expected an int >= 1, got {args.nproc}")
    if args.nproc > 1:
        cmd = options.torchrun_command(cfg, args.nproc)
        console.print(" ".join(shlex.quote(c) for c in cmd), markup=False, highlight=False)
        return subprocess.call(cmd)
    from bench.train import train

    try:
        train(cfg, console=console)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return 0
