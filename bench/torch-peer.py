"""PyTorch CPU computing the six SAE metric values idiomatically, for bench/peers.ts.

Usage: python3 torch-peer.py SPEC.json. The spec names raw float32 files (learned, source,
decoded, row-major) of a large and a small batch with their shapes, and the repetitions. Prints
one JSON line: the torch version, per thread count the seconds of each timed repetition, and the
values (over one large batch) for the bench to check.
"""
import json
import sys
import time

import numpy as np
import torch


def load(batch):
    def t(name, cols):
        return torch.from_numpy(np.fromfile(batch[name], dtype=np.float32).reshape(batch["rows"], cols))

    return t("learned", batch["learned_features"]), t("source", batch["source_features"]), t("decoded", batch["source_features"])


def statistics(x, s, d):
    """What the metric set needs from a batch, as a torch user writes it."""
    return x.abs().sum(-1).sum(), (x != 0).sum(-1).sum(), (x > 0).sum(0), ((d - s) ** 2).mean(-1).sum()


def timed(batch, threads):
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    for _ in range(batch["count"]):
        statistics(*batch["tensors"])
    return time.perf_counter() - t0


def main():
    spec = json.load(open(sys.argv[1]))
    batches = {k: dict(v, tensors=load(v)) for k, v in spec["batches"].items()}
    result = {"torch": torch.__version__, "times": {}}
    for r in range(spec["repeats"] + 1):  # interleaved, as the other rows; the first round warms up
        for name, batch in batches.items():
            for threads in spec["threads"]:
                seconds = timed(batch, threads)
                if r > 0:
                    result["times"].setdefault(f"{name}/{threads}", []).append(seconds)
    x, s, d = batches["large"]["tensors"]
    abs_sum, non_zero, fired, mse = statistics(x, s, d)
    result["values"] = {"abs": float(abs_sum), "nonZero": int(non_zero), "fired": fired.tolist(), "mse": float(mse)}
    print(json.dumps(result))


main()
