"""``arsenal generate``: text from a training checkpoint (models.generate).

    arsenal generate --checkpoint out/ckpt/elman.pt --prompt "The " --max-new-tokens 200
    arsenal generate --checkpoint out/ckpt/tf.pt --prompt-ids 3,17,5 --temperature 0 --mix numba_cpu

The model is rebuilt from the checkpoint's model config under the run's mix (or --mix)
and loads its weights; a schedule-free run's averaged weights (``model_eval``) are used
when the checkpoint has them. A damaged or foreign checkpoint is refused by name (exit
status 2; bench/train/checkpoint.py). The prompt is UTF-8 bytes for a byte vocabulary; other
vocabularies take --prompt-ids.
"""

from __future__ import annotations

NAME = "generate"
HELP = "sample text from a training checkpoint (greedy, temperature, top-k, confidence stop)"
TIMING = False


def add_arguments(parser) -> None:
    a = parser.add_argument
    a("--checkpoint", required=True, help="a checkpoint written by arsenal train")
    prompt = parser.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", help="text (UTF-8 bytes; byte vocabularies)")
    prompt.add_argument("--prompt-ids", help="token ids, comma-separated")
    a("--max-new-tokens", type=int, default=200, help="the length limit (default 200)")
    a("--temperature", type=float, default=0.8, help="0: greedy (default 0.8)")
    a("--top-k", type=int, default=40, help="sample among the k most probable (default 40; 0: all)")
    a("--confidence", type=float, default=0.15, help="a token is unsure below this top probability")
    a("--patience", type=int, default=3,
      help="stop after this many unsure tokens in a row (default 3, seed 004's confidence stop)")
    a("--no-stop", action="store_true", help="no confidence stop: generate to --max-new-tokens (or --eos)")
    a("--eos", help="the end token: an id, or one character of a byte vocabulary (\\n allowed)")
    a("--seed", type=int, default=0)
    a("--mix", help="backend mix id, e.g. numba_cpu or torch+parallel_scan=numba_cpu (default: the run's mix)")
    a("--device", help="cpu or cuda[:N] (default: cuda when present)")


def run(args, console) -> int:
    import torch

    from backends.mix import parse_mix
    from bench.cli import UsageError
    from bench.train import checkpoint, decode
    from bench.train.options import eos_id
    from models.generate import Sampling, generate

    try:
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = checkpoint.load_model(args.checkpoint, parse_mix(args.mix) if args.mix else None, device)
        cfg = model.config
        if args.prompt is not None:
            ids = list(args.prompt.encode())
            if cfg.vocab_size < 256:
                raise ValueError(f"--prompt: text needs a byte vocabulary (256), the model has vocab_size="
                                 f"{cfg.vocab_size}; give --prompt-ids")
        else:
            ids = [int(x) for x in args.prompt_ids.split(",") if x.strip()]
        if not ids or not all(0 <= i < cfg.vocab_size for i in ids):
            raise ValueError(f"prompt: expected token ids in [0, {cfg.vocab_size}), got {ids}")
        sampling = Sampling(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                            top_k=args.top_k or None, confidence=args.confidence,
                            patience=0 if args.no_stop else args.patience,
                            eos_id=None if args.eos is None else eos_id(args.eos), seed=args.seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out = generate(model, torch.tensor(ids, device=device), sampling)
    task = type("Bytes", (), {})()  # decode: bytes as UTF-8, or the ids
    console.print(decode(task, ids) + decode(task, out.tokens[0]), markup=False, highlight=False)
    console.print(f"[{len(out.tokens[0])} tokens, stopped: {out.stop_reasons[0]}]", markup=False, highlight=False)
    return 0
