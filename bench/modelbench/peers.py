"""The whole-model peers: names that stand beside the backend mixes in a model grid.

    torch_compile         torch.compile of the all-torch model: of its step, compiled
                          once, for the families that loop over time in Python; of the
                          whole loss for the others (bench/modelbench/bench.py)
    torch_compile_model   torch.compile of the all-torch model's whole loss, loop or not:
                          dynamo unrolls a loop-bound family's Python loop where it can
                          trace it (compile time and memory grow with T) and breaks the
                          graph where it cannot (the stackformer's early stop reads the
                          host each step: compiled piece by piece). Not in the grids: the
                          reference a compiled step is judged against, asked for by name
                          (``arsenal models --peers torch_compile,torch_compile_model``)

A peer's name is a mix id of its own (``backends.mix.mix_id`` passes it through); it is
never resolved as a backend mix. The grids (suites/model_runs.py) name the peers they run.
"""

MODEL_PEERS: tuple[str, ...] = ("torch_compile", "torch_compile_model")
GRID_PEERS: tuple[str, ...] = ("torch_compile",)  # what a grid row runs unless told otherwise
