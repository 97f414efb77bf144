"""``arsenal train``: a thin layer over bench.train.TrainConfig.

    arsenal train --family transformer --model d_model=64,n_layers=2,causal=False \\
        --task listops --task-args max_length=512 --steps 2000 --batch-size 32
    arsenal train --family elman --model rung=4 --mix default=numba_cpu,parallel_scan=torch \\
        --task ptb_char --seq-len 128 --bf16 --checkpoint out/ckpt/elman.pt --checkpoint-every 200
    arsenal train ... --checkpoint out/ckpt/elman.pt --resume     # continue where it stopped
    arsenal train ... --nproc 2          # DDP: torchrun --nproc_per_node 2 -m bench.train ...

Every option left out keeps TrainConfig's default (bench/train.py documents each field).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import subprocess
import sys

from bench.commands import _args

NAME = "train"
HELP = "train a model on a task (AdamW or schedule-free, TBPTT, bf16, DDP, checkpoints)"
TIMING = False

# option -> TrainConfig field, for the options that are plain values
FIELDS = ("family", "task", "steps", "batch_size", "accum", "optimizer", "lr", "warmup", "min_lr", "weight_decay",
          "clip_to", "seq_len", "eval_every", "eval_batches", "test_batches", "eval_batch_size", "sample_tokens",
          "seed", "device", "threads", "checkpoint", "checkpoint_every")


def parse_pairs(text: str | None, option: str) -> dict:
    """"d_model=64,causal=False" -> {"d_model": 64, "causal": False}."""
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        key, sep, given = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{option}: expected KEY=VALUE pairs separated by commas, got {text!r}")
        out[key.strip()] = _args.value(given.strip())
    return out


def parse_mix(text: str | None) -> dict | None:
    """"numba_cpu" -> {"default": "numba_cpu"}; "default=numba_cpu,parallel_scan=torch" -> that dict."""
    if not text:
        return None
    if "=" not in text:
        return {"default": text.strip()}
    return {k: str(v) for k, v in parse_pairs(text, "--mix").items()}


def add_arguments(parser) -> None:
    from bench.train_config import TrainConfig

    d = TrainConfig()
    a = parser.add_argument
    a("--family", help=f"model family (default {d.family})")
    a("--model", help="family config overrides, KEY=VALUE,... (d_model=64,n_layers=2,causal=False)")
    a("--mix", help="backend per op: a backend name or default=numba_cpu,parallel_scan=torch (default torch)")
    a("--task", help=f"task of suites.tasks (default {d.task})")
    a("--task-args", help="task config overrides, KEY=VALUE,... (max_length=512)")
    a("--steps", type=int, help=f"optimizer steps (default {d.steps})")
    a("--batch-size", type=int, help=f"global batch over processes and micro-batches (default {d.batch_size})")
    a("--accum", type=int, help="micro-batches per step, gradient accumulation (default 1)")
    a("--optimizer", choices=("adamw", "schedulefree"), help="default adamw")
    a("--lr", type=float, help=f"peak learning rate (default {d.lr})")
    a("--warmup", type=int, help=f"linear warmup steps (default {d.warmup})")
    a("--min-lr", type=float, help=f"end of the cosine as a fraction of lr (default {d.min_lr})")
    a("--weight-decay", type=float, help=f"decoupled weight decay (default {d.weight_decay})")
    a("--clip", choices=("norm", "value", "none"), help="global norm, each element to [-c, c], or none (default norm)")
    a("--clip-to", type=float, help="the clipping bound c (default 1.0)")
    a("--bf16", action="store_true", help="bfloat16 autocast")
    a("--seq-len", type=int, help="TBPTT chunk length on LM streams (default: the task's)")
    carry = parser.add_mutually_exclusive_group()
    carry.add_argument("--carry", dest="carry", action="store_const", const=True,
                       help="carry the state between chunks (default: every family but the transformer)")
    carry.add_argument("--no-carry", dest="carry", action="store_const", const=False, help="reset it every chunk")
    a("--eval-every", type=int, help=f"steps between evaluations (default {d.eval_every})")
    a("--eval-batches", type=int, help=f"validation batches per evaluation (default {d.eval_batches})")
    a("--test-batches", type=int, help="test batches of the final test (default: all)")
    a("--eval-batch-size", type=int, help="rows of an evaluation batch (default: batch size)")
    a("--sample-tokens", type=int, help=f"LM streams: tokens sampled at the end (default {d.sample_tokens})")
    a("--seed", type=int, help="data order and weights (default 0)")
    a("--device", help="cpu or cuda[:N] (default: cuda when present)")
    a("--threads", type=int, help="torch CPU threads")
    a("--out", help=f"results file, appended (default {d.out}; 'none': no file)")
    a("--checkpoint", help="checkpoint file (default: none)")
    a("--checkpoint-every", type=int, help="steps between checkpoints (default: only at the end)")
    a("--resume", action="store_true", help="continue from --checkpoint")
    a("--quiet", action="store_true", help="no progress bar or evaluation lines")
    a("--nproc", type=int, default=1, help="processes (DDP through torchrun; gloo on CPU, nccl on GPU)")


def config_from_args(args):
    """The TrainConfig the options describe (ValueError on a bad value)."""
    from bench.train_config import TrainConfig

    values = {f: getattr(args, f) for f in FIELDS if getattr(args, f, None) is not None}
    values["model"] = parse_pairs(args.model, "--model")
    values["task_args"] = parse_pairs(args.task_args, "--task-args")
    mix = parse_mix(args.mix)
    if mix is not None:
        values["mix"] = mix
    if args.clip is not None:
        values["clip"] = None if args.clip == "none" else args.clip
    if args.out is not None:
        values["out"] = None if args.out.lower() == "none" else args.out
    values.update(bf16=args.bf16, resume=args.resume, progress=not args.quiet, carry=args.carry)
    return TrainConfig(**values)


def torchrun_command(cfg, nproc: int) -> list[str]:
    """The torchrun line that runs ``cfg`` in ``nproc`` processes on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", "bench.train", "--config-json", json.dumps(dataclasses.asdict(cfg))]


def run(args, console) -> int:
    from bench.cli import UsageError

    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.nproc < 1:
        raise UsageError(f"--nproc expected an int >= 1, got {args.nproc}")
    if args.nproc > 1:
        cmd = torchrun_command(cfg, args.nproc)
        console.print(" ".join(shlex.quote(c) for c in cmd), markup=False, highlight=False)
        return subprocess.call(cmd)
    from bench.train import train

    try:
        train(cfg, console=console)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return 0
