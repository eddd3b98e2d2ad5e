"""Subprocess worker for the store tests: extract WideMLP activations and report the peak RSS as JSON.

Usage: python _extract_store_worker.py MODE STORE N [SLEEP]
  MODE "store": stream to STORE; "memory": keep everything in memory (the naive reference).
"""

import json
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from _extract_helpers import WideMLP, mlp_inputs  # noqa: E402

import neurobridge as nb  # noqa: E402

WIDTH, LAYERS, BATCH = 4096, 1, 100


def main():
    mode, store, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sleep = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    torch.set_num_threads(1)
    width = WIDTH if not sleep else 64
    batch = BATCH if not sleep else 10
    n_layers = LAYERS if not sleep else 2
    net = WideMLP(width=width, n_layers=n_layers, sleep=sleep)
    x = mlp_inputs(n)
    tree = nb.extract.activations(net, x, "layers.*", batch_size=batch, progress=False,
                                  store=store if mode == "store" else None)
    rows = int(tree["layers.0"]["activations"].shape[0])
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_mb": peak_kb / 1024, "rows": rows, "data_mb": n * width * n_layers * 4 / 2**20}))


if __name__ == "__main__":
    main()
