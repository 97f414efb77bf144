"""The eight operator contracts, in their canonical order. Importing registers them."""

from backends.ops import (  # noqa: F401
    micro_mlp,
    gated_update,
    logspace_matvec,
    parallel_scan,
    banked_attention,
    stack_step,
    nsm_route,
    elman_scan,
)
