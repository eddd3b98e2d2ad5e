"""Subprocess worker for the store tests.

Usage: python _extract_store_worker.py MODE STORE N [ARGS]
  MODE "store": stream WideMLP activations to STORE and print the peak RSS as JSON;
  MODE "memory": the same, kept in memory (the naive reference);
  MODE "kill": stream to STORE (64 units, 2 layers, batches of 10) and SIGKILL this very process at one exact
       point of batch ARGS[1] (0-based), ARGS[0] being where:
         "mid_batch"    right after layer 0's rows of that batch are written, before layer 1's;
         "after_arrays" right after the last array write of that batch, before its commit record;
         "after_commit" right after the commit record of that batch replaced the previous one.
       The points are found from the outside (zarr array writes, the os.replace of the commit record file), not
       from hooks in the writer, so a writer that commits before writing is caught by "after_commit".
"""

import json
import os
import resource
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from _extract_helpers import WideMLP, mlp_inputs  # noqa: E402

import neurobridge as nb  # noqa: E402

WIDTH, LAYERS, BATCH = 4096, 1, 100
KILL_WIDTH, KILL_LAYERS, KILL_BATCH = 64, 2, 10


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def arm_kill(point: str, batch: int) -> None:
    import zarr

    from neurobridge.extract._store import _PROGRESS

    row0 = batch * KILL_BATCH
    last_array = "layers.0/activations" if point == "mid_batch" else f"layers.{KILL_LAYERS - 1}/activations"
    setitem = zarr.Array.__setitem__
    replace = os.replace

    def killing_setitem(self, selection, value):
        setitem(self, selection, value)
        if point in ("mid_batch", "after_arrays") and str(self.store_path).endswith(last_array) \
                and isinstance(selection, slice) and selection.start == row0:
            _die()

    def killing_replace(src, dst, *args, **kwargs):
        replace(src, dst, *args, **kwargs)
        if point == "after_commit" and str(dst).endswith(_PROGRESS):
            from neurobridge.extract._store import _read_progress

            if int(_read_progress(Path(dst).parent)["meta"]["committed"]) == row0 + KILL_BATCH:
                _die()

    if point not in ("mid_batch", "after_arrays", "after_commit"):
        raise SystemExit(f"unknown kill point {point!r}")
    zarr.Array.__setitem__ = killing_setitem
    os.replace = killing_replace


def main():
    mode, store, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(1)
    if mode == "kill":
        arm_kill(sys.argv[4], int(sys.argv[5]))
        width, batch, n_layers = KILL_WIDTH, KILL_BATCH, KILL_LAYERS
    else:
        width, batch, n_layers = WIDTH, BATCH, LAYERS
    net = WideMLP(width=width, n_layers=n_layers)
    x = mlp_inputs(n)
    tree = nb.extract.activations(net, x, "layers.*", batch_size=batch, progress=False,
                                  store=store if mode != "memory" else None)
    rows = int(tree["layers.0"]["activations"].shape[0])
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_mb": peak_kb / 1024, "rows": rows, "data_mb": n * width * n_layers * 4 / 2**20}))


if __name__ == "__main__":
    main()
