"""Op shape sweeps: WHAT `arsenal ops`, pytest-benchmark and asv time.

``SUITES[suite][op]`` is a list of cases, each the case dict that
``backends.OPS[op].make_inputs`` accepts (sizes plus options such as ``bound`` or
``activation``). One extra key is understood by the harness and ignored by the
contracts: ``only_on`` names the one device type a case is meant for (a size that only
a GPU holds or finishes in reasonable time). This file is data only: how the harness
reads it (filtering, labels) is bench/ops/cases.py.

Suites:
- ``quick``: one modest case per op (elman_scan: linear and log space); torch,
  torch_compile and numba_cpu over all eight ops in forward and forward_backward take a
  few minutes on a 2-core CPU.
- ``full``: the target sizes of the Numba CPU issue (micro_mlp on x [4096, 512] for each
  activation, scans at B*T*D = 2^24, logspace_matvec M = K = 2048, B = 16,
  banked_attention B=4 T=2048 H=4 N=4 Dk=Dv=32, stack_step and nsm_route at sizes where
  bandwidth or the matrix-multiply rate binds, elman_scan at the rung 0-3 forms of
  B=4 T=1024 D=64) and the GPU sizes of the public peers
  (accelerated-scan's (batch 8, dim 1536, seqlen up to 65536), chunked gated linear
  attention with N = 1).
- ``stable``: a few small, low-noise cases (each call a few milliseconds, no
  transcendental-heavy sequential loops) for the CI regression check.
"""

from __future__ import annotations

SUITES: dict[str, dict[str, list[dict]]] = {
    "quick": {
        "micro_mlp": [dict(N=1024, D=64, activation="relu")],
        # T = 64: the longest bounded loop torch.compile unrolls (backends/torch/gated_update.py
        # TRACE_MAX_T; longer loops run eagerly inside the compiled code)
        "gated_update": [dict(B=8, T=64, D=512, bound=1.0)],
        "logspace_matvec": [dict(B=4, M=256, K=256)],
        "parallel_scan": [dict(B=4, T=1024, D=256)],
        "banked_attention": [dict(B=2, T=256, H=2, N=4, Dk=16, Dv=16)],
        "stack_step": [dict(B=64, K=32, D=128)],
        "nsm_route": [dict(B=4, T=512, D=128, S=16)],
        # short T as gated_update: torch.compile unrolls the torch backend's step loop
        # (T = 64: torch.compile of the T = 256 loop took 50-150 s here, too long for make run)
        "elman_scan": [dict(B=4, T=64, D=64, gate=False),  # rung 0: the shape of torch.nn.RNN's peer
                       dict(B=4, T=64, D=64, log_space=True)],  # rung 3
    },
    "full": {
        "micro_mlp": [dict(N=4096, D=512, activation=act) for act in ("relu", "sin", "log_relu")],
        "gated_update": [
            dict(B=16, T=1024, D=1024, bound=1.0),  # B*T*D = 2^24, the bounded (sequential) form
            dict(B=16, T=1024, D=1024),  # unbounded: the form fla's HGRN scan computes
            dict(B=8, T=4096, D=1024, only_on="cuda"),
        ],
        "logspace_matvec": [dict(B=16, M=2048, K=2048)],
        "parallel_scan": [
            dict(B=4, T=4096, D=1024),  # B*T*D = 2^24: bandwidth-bound
            dict(B=8, T=4096, D=1536, only_on="cuda"),
            dict(B=8, T=65536, D=1536, only_on="cuda"),  # accelerated-scan's largest benchmark
        ],
        "banked_attention": [
            dict(B=4, T=2048, H=4, N=4, Dk=32, Dv=32),
            dict(B=4, T=2048, H=4, N=1, Dk=32, Dv=32),  # N = 1: gated linear attention (fla)
            dict(B=4, T=2048, H=4, N=4, Dk=32, Dv=32, token_decay=True),  # decay predicted per token (stackformer)
            dict(B=8, T=4096, H=16, N=1, Dk=64, Dv=64, only_on="cuda"),
            dict(B=8, T=4096, H=16, N=4, Dk=64, Dv=64, only_on="cuda"),
        ],
        "stack_step": [
            dict(B=256, K=64, D=512),  # 8M slot elements: bandwidth-bound
            dict(B=4096, K=64, D=1024, only_on="cuda"),
        ],
        "nsm_route": [
            dict(B=8, T=2048, D=512, S=8),  # few states: bandwidth-bound
            dict(B=8, T=2048, D=512, S=256, top_k=4),  # many states: the logits matmul binds
            dict(B=32, T=4096, D=1024, S=256, only_on="cuda"),
        ],
        "elman_scan": [
            dict(B=4, T=1024, D=64, gate=False),  # rung 0, the target against torch.nn.RNN
            dict(B=4, T=1024, D=64),  # rungs 1-2: the delta gate
            dict(B=4, T=1024, D=64, log_space=True),  # rung 3
            dict(B=64, T=4096, D=128, gate=False, only_on="cuda"),  # one program per row, R on chip
            dict(B=64, T=4096, D=128, log_space=True, only_on="cuda"),
        ],
    },
    "stable": {
        "micro_mlp": [dict(N=512, D=64, activation="relu")],
        "logspace_matvec": [dict(B=4, M=256, K=256)],
        "parallel_scan": [dict(B=2, T=512, D=256)],
        "stack_step": [dict(B=64, K=32, D=128)],
    },
}

DEFAULT_MODES = ("forward", "forward_backward")  # what arsenal run, pytest-benchmark and asv time by default
