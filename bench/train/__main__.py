"""``python -m bench.train`` (what ``arsenal train --nproc N`` runs under torchrun)."""

from __future__ import annotations

import json
import sys

from bench.train import options
from bench.train.config import TrainConfig
from bench.train.run import train


def main(argv=None) -> int:
    import argparse

    from rich.console import Console

    parser = argparse.ArgumentParser(prog="python -m bench.train", description="train a model on a task (DDP under torchrun)")
    parser.add_argument("--config-json", help="a whole TrainConfig as JSON (other options are then ignored)")
    options.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        if args.config_json:
            cfg = TrainConfig.from_dict(json.loads(args.config_json))
        else:
            if args.nproc > 1:
                raise ValueError("--nproc: python -m bench.train runs one process; start it with torchrun "
                                 "--nproc_per_node N, or use arsenal train --nproc N")
            cfg = options.config_from_args(args)
        train(cfg, console=Console(width=None if sys.stdout.isatty() else 200))
    except ValueError as exc:
        print(f"python -m bench.train: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
