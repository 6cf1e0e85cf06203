#!/usr/bin/python3
"""PyTorch side of the inference-latency benchmark: the convnet of `train_fashion_mnist --model
cnn` in eval() mode under torch.inference_mode(), timed per call like dlb_bench_predict_latency.

Conv(1->32, 3x3, pad 1)-BatchNorm-ReLU-MaxPool 2 -> Conv(32->64, 3x3, pad 1)-BatchNorm-ReLU-MaxPool 2
-> Flatten -> Linear(3136->128)-ReLU-Dropout(0.3) -> Linear(128->10). Prints one JSON line:
microseconds per call, median, 10th and 90th percentiles.

    /usr/bin/python3 bench/pytorch_predict_latency.py --batch 1 --threads 1 --calls 200 --warmup 20
"""

import argparse
import json
import statistics
import time

import torch
from torch import nn


def model():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    net = model().eval()
    x = torch.randn(args.batch, 1, 28, 28)
    with torch.inference_mode():
        for _ in range(args.warmup):
            net(x)
        us = []
        for _ in range(args.calls):
            start = time.perf_counter()
            net(x)
            us.append((time.perf_counter() - start) * 1e6)
    us.sort()
    at = lambda q: us[int(q * (len(us) - 1))]
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "batch": args.batch,
                      "threads": args.threads, "predict_us_median": round(statistics.median(us), 1),
                      "predict_us_p10": round(at(0.1), 1), "predict_us_p90": round(at(0.9), 1)}))


if __name__ == "__main__":
    main()
