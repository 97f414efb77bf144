"""The trainer's command-line options: ``arsenal train`` and ``python -m bench.train`` both
build their parser here and turn it into a TrainConfig (light at import: the parser is
built before torch is imported)."""

from __future__ import annotations

import dataclasses
import json
import sys

from bench.values import parse_pairs

# option -> TrainConfig field, for the options that are plain values
FIELDS = ("family", "task", "steps", "minutes", "batch_size", "accum", "optimizer", "lr", "warmup", "min_lr", "weight_decay",
          "clip_to", "seq_len", "eval_every", "eval_batches", "test_batches", "eval_batch_size", "sample_tokens",
          "seed", "device", "threads", "checkpoint", "checkpoint_every")


def add_arguments(parser) -> None:
    from bench.train.config import TrainConfig

    d = TrainConfig()
    a = parser.add_argument
    a("--family", help=f"model family (default {d.family})")
    a("--model", help="family config overrides, KEY=VALUE,... (d_model=64,n_layers=2,causal=False)")
    a("--mix", help="backend mix id: torch, numba_cpu or torch+parallel_scan=numba_cpu (alias: default=torch,parallel_scan=numba_cpu)")
    a("--task", help=f"task of suites.tasks (default {d.task})")
    a("--task-args", help="task config overrides, KEY=VALUE,... (max_length=512)")
    a("--steps", type=int, help=f"optimizer steps (default {d.steps}; with --minutes: no cap unless given)")
    a("--minutes", type=float, help="training wall clock from the first step, evaluation excluded; the cosine "
                                    "follows whichever budget is nearer its end")
    a("--batch-size", type=int, help=f"global batch over processes and micro-batches (default {d.batch_size})")
    a("--accum", type=int, help="micro-batches per step, gradient accumulation (default 1)")
    a("--optimizer", choices=("adamw", "schedulefree"), help="default adamw")
    a("--lr", type=float, help=f"peak learning rate (default {d.lr})")
    a("--warmup", type=int, help=f"linear warmup steps (default {d.warmup})")
    a("--min-lr", type=float, help=f"end of the cosine as a fraction of lr (default {d.min_lr})")
    a("--weight-decay", type=float, help=f"decoupled weight decay (default {d.weight_decay})")
    a("--clip", choices=("norm", "value", "none"), help="global norm, each element to [-c, c] (value: seed 004's per-parameter clipping), or none (default norm)")
    a("--clip-to", type=float, help="the clipping bound c (default 1.0)")
    a("--bf16", action="store_true", help="bfloat16 autocast")
    a("--compile-step", action="store_true",
      help="compile the step of a loop-bound family once (stackformer, nsm, elman rungs 0-3; model.compile_step())")
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
    a("--no-sample-stop", action="store_true",
      help="sample to the full length (default: stop after 3 tokens below 0.15 confidence, at --eos, seed 004)")
    a("--eos", help="the sample's end token: an id, or one character of a byte vocabulary")
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
    from bench.train.config import TrainConfig

    from bench.train.config import MINUTES_ONLY_STEPS

    values = {f: getattr(args, f) for f in FIELDS if getattr(args, f, None) is not None}
    if args.minutes is not None and args.steps is None:
        values["steps"] = MINUTES_ONLY_STEPS
    if args.eos is not None:
        values["eos_id"] = eos_id(args.eos)
    values["model"] = parse_pairs(args.model, "--model")
    values["task_args"] = parse_pairs(args.task_args, "--task-args")
    if args.mix:
        from backends.mix import parse_mix

        values["mix"] = parse_mix(args.mix)
    if args.clip is not None:
        values["clip"] = None if args.clip == "none" else args.clip
    if args.out is not None:
        values["out"] = None if args.out.lower() == "none" else args.out
    values.update(bf16=args.bf16, compile_step=args.compile_step, resume=args.resume, progress=not args.quiet, carry=args.carry,
                  sample_stop=not args.no_sample_stop)
    return TrainConfig(**values)


def eos_id(text: str) -> int:
    """--eos as a token id: digits are an id, one character its UTF-8 byte (a byte vocabulary)."""
    if text.isdigit():
        return int(text)
    raw = text.encode().decode("unicode_escape") if text.startswith("\\") else text
    if len(raw.encode()) != 1:
        raise ValueError(f"--eos expected a token id or one single-byte character (\\n allowed), got {text!r}")
    return raw.encode()[0]


def torchrun_command(cfg, nproc: int) -> list[str]:
    """The torchrun line that runs ``cfg`` in ``nproc`` processes on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", "bench.train", "--config-json", json.dumps(dataclasses.asdict(cfg))]
