"""The eager PyTorch backend: vectorised tensor code, autograd for the backward.

It runs wherever torch does (CPU, CUDA) and takes float64, float32 and bfloat16
(bf16 loads, float32 arithmetic and state). It is the baseline every speedup is
measured against, and ``torch.compile`` of it is the peer ``torch_compile``.
"""

import torch

from backends.registry import Backend, register_backend


def _devices():
    return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)


def _synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


BACKEND = register_backend(Backend(
    name="torch",
    devices=_devices,
    probe=lambda: None,
    synchronize=_synchronize,
    description="eager PyTorch",
))
