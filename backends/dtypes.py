"""The dtypes ops take, and their names in records and on the command line."""

import torch

FLOAT_DTYPES = (torch.float64, torch.float32, torch.bfloat16)
DTYPE_NAMES = {torch.float64: "float64", torch.float32: "float32", torch.bfloat16: "bfloat16"}
DTYPES_BY_NAME = {v: k for k, v in DTYPE_NAMES.items()}
