"""Run in a fresh process: Triton (TRITON_INTERPRET=1, CPU) vs the torch reference of pool_stats.

Prints one JSON object per case with the max differences. The environment variable must be set before triton
is imported, which is why this runs as a script and not inside the pytest process.
"""

import os

os.environ["TRITON_INTERPRET"] = "1"

import json  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402

from neurobridge.kernels.pool_stats import reference as ref  # noqa: E402
from neurobridge.kernels.pool_stats import triton as tri  # noqa: E402

CASES = [
    # (batch, tokens, units, dtype, mask kind, pooling, int8, layout)
    (3, 37, 70, "float32", "random", "mean", True, "contiguous"),
    (3, 37, 70, "float32", "random", "max", True, "contiguous"),
    (2, 5, 33, "float32", "left_pad", "first", False, "contiguous"),
    (2, 5, 33, "float32", "left_pad", "last", True, "contiguous"),
    (4, 1, 130, "float32", "none", "mean", True, "contiguous"),
    (2, 49, 24, "float32", "none", "max", False, "channels_first"),
    (3, 20, 40, "bfloat16", "random", "mean", True, "contiguous"),
    (3, 20, 40, "bfloat16", "right_pad", "last", False, "contiguous"),
    (3, 20, 40, "float16", "random", "none", False, "contiguous"),
    (1, 64, 16, "float32", "empty_row", "mean", True, "contiguous"),
]


def make(case, seed):
    b, t, u, dtype, mask_kind, pooling, int8, layout = case
    g = torch.Generator().manual_seed(seed)
    if layout == "channels_first":  # a conv map (B, C, H, W) viewed as (B, HW, C) without a copy
        x = torch.randn(b, u, t, generator=g).transpose(1, 2)
    else:
        x = torch.randn(b, t, u, generator=g) * 3
    x[0, 0, :3] = 0.0  # exact zeros
    x[-1, t // 2, -1] = 50.0  # a massive activation
    x = x.to(getattr(torch, dtype))
    mask = None
    if mask_kind == "random":
        mask = (torch.rand(b, t, generator=g) > 0.3).to(torch.int64)
        mask[:, 0] = 1
    elif mask_kind == "left_pad":
        mask = torch.ones(b, t, dtype=torch.int64)
        mask[0, :2] = 0
    elif mask_kind == "right_pad":
        mask = torch.ones(b, t, dtype=torch.bool)
        mask[1, t // 2:] = False
    elif mask_kind == "empty_row":
        mask = torch.zeros(b, t, dtype=torch.int64)
    return x, mask, pooling, int8


def compare(a, b):
    out = {}
    for field in a._fields:
        va, vb = getattr(a, field), getattr(b, field)
        if va is None or vb is None:
            out[field] = None if (va is None and vb is None) else "missing"
            continue
        if va.dtype in (torch.int8, torch.int64):
            out[field] = int((va.long() - vb.long()).abs().max()) if va.numel() else 0
            if va.dtype == torch.int8:
                out[field + "_frac_equal"] = float((va == vb).float().mean()) if va.numel() else 1.0
        else:
            d = (va.float() - vb.float()).abs()
            scale = va.float().abs().max().clamp_min(1.0)
            out[field] = float(d.max() / scale) if va.numel() else 0.0
        out[field + "_dtype"] = str(vb.dtype) == str(va.dtype)
    return out


def main():
    results = []
    for i, case in enumerate(CASES):
        x, mask, pooling, int8 = make(case, i)
        a = ref.pool_stats(x, mask, pooling=pooling, int8=int8)
        b = tri.pool_stats(x, mask, pooling=pooling, int8=int8)
        results.append({"case": i, **compare(a, b)})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
