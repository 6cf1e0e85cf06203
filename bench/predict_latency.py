#!/usr/bin/python3
"""Inference latency of the CNN, ours against PyTorch, in one run: batch 1 and batch 64, in
interleaved rounds (ours, PyTorch, ours, ... so a change of the machine's load hits both).

  * ours     dlb_bench_predict_latency: Predictor::Predict (const, thread-safe, owned logits)
  * PyTorch  bench/pytorch_predict_latency.py: eval() under torch.inference_mode()

Each round runs each program once (--calls timed calls after --warmup); the table shows the
median over rounds of each round's median, the spread (lowest .. highest round median) and
ours / PyTorch. Goal: batch 1 at most 0.5x PyTorch.

    /usr/bin/python3 bench/predict_latency.py --build build-bench [--rounds 5] [--threads 1]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
GOAL = {1: 0.5}


def run(command):
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=os.path.join(HERE, os.pardir, "build-bench"),
                        help="build directory holding dlb_bench_predict_latency (Release)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batches", default="1,64")
    args = parser.parse_args()
    ours = os.path.join(args.build, "bench", "dlb_bench_predict_latency")
    theirs = [sys.executable, os.path.join(HERE, "pytorch_predict_latency.py")]
    batches = [int(b) for b in args.batches.split(",")]
    common = ["--threads", str(args.threads), "--calls", str(args.calls), "--warmup", str(args.warmup)]
    results = {(impl, b): [] for impl in ("dlb", "pytorch") for b in batches}
    forward = {b: [] for b in batches}
    info = {}
    for r in range(args.rounds):
        for b in batches:
            for impl, command in (("dlb", [ours]), ("pytorch", theirs)):
                result = run(command + ["--batch", str(b)] + common)
                results[(impl, b)].append(result["predict_us_median"])
                if impl == "dlb":
                    forward[b].append(result["forward_us_median"])
                    info["engine"] = result.get("engine_description", result.get("engine"))
                else:
                    info["torch"] = result["torch"]
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    print(f"CNN inference latency, {args.threads} thread(s), {args.rounds} interleaved rounds of "
          f"{args.calls} calls; ours: {info['engine']}; PyTorch {info['torch']}")
    print(f"{'batch':>5}  {'ours us (spread)':>26}  {'PyTorch us (spread)':>26}  {'ours/PyTorch':>12}  "
          f"{'Forward us':>10}  goal")
    for b in batches:
        line = f"{b:>5}"
        for impl in ("dlb", "pytorch"):
            values = results[(impl, b)]
            line += f"  {statistics.median(values):>9.1f} ({min(values):8.1f} .. {max(values):8.1f})"
        ratio = statistics.median(results[("dlb", b)]) / statistics.median(results[("pytorch", b)])
        goal = GOAL.get(b)
        verdict = "" if goal is None else (f"<= {goal}: " + ("met" if ratio <= goal else "NOT met"))
        line += f"  {ratio:>12.2f}  {statistics.median(forward[b]):>10.1f}  {verdict}"
        print(line)


if __name__ == "__main__":
    main()
