"""The whole-model peers: names that stand beside the backend mixes in a model grid.

    torch_compile   torch.compile of the all-torch model (loop-bound families: of their
                    step, compiled once; bench/modelbench/bench.py)

A peer's name is a mix id of its own (``backends.mix.mix_id`` passes it through); it is
never resolved as a backend mix. The grids (suites/model_runs.py) name the peers they run.
"""

MODEL_PEERS: tuple[str, ...] = ("torch_compile",)
