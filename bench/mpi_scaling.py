#!/usr/bin/env python3
"""Data-parallel scaling of a training epoch on this machine: ranks against threads.

Runs dlb_bench_mpi (build with -DDLB_MPI=ON -DCMAKE_BUILD_TYPE=Release) in three
configurations per global batch size, interleaved over --rounds rounds (each keeps its
fastest round, since the VM's times drift from minute to minute):

  1 process x 1 thread       the baseline T1
  1 process x 2 threads      the library's own threads
  2 ranks x 1 thread         mpirun -np 2 ... --distributed (sharded batch, gradient allreduce)

and prints per configuration the training pass's seconds per epoch, the speedup T1 / T and
the scaling efficiency T1 / (cores x T), where cores = ranks x threads, plus the bytes each
rank allreduces per step and the time per step spent in the allreduce. Then the cost model
for N machines: a ring allreduce sends and receives 2 (N-1)/N x bytes per step on every link.

  /usr/bin/python3 bench/mpi_scaling.py [--build build-bench] [--batches 64,256,1024]
                                        [--rounds 3] [--data data/fashion-mnist]
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def find_program(build):
    path = os.path.join(build, "bench", "dlb_bench_mpi")
    if not os.path.exists(path):
        sys.exit(f"mpi_scaling.py: no {path}; configure with -DDLB_MPI=ON "
                 "-DCMAKE_BUILD_TYPE=Release and build the target dlb_bench_mpi")
    return path


def mpirun_prefix(ranks):
    prefix = ["mpirun", "-np", str(ranks)]
    if os.geteuid() == 0:
        prefix += ["--allow-run-as-root"]
    return prefix + ["--oversubscribe", "--bind-to", "none"]


def run(program, ranks, threads, batch, args):
    command = [program, "--threads", str(threads), "--batch", str(batch),
               "--epochs", str(args.epochs), "--warmup", "1", "--hidden", args.hidden,
               "--optimizer", args.optimizer, "--data", args.data]
    if ranks > 1:
        command = mpirun_prefix(ranks) + command + ["--distributed"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"mpi_scaling.py: {' '.join(command)} failed ({result.returncode}):\n"
                 f"{result.stdout}\n{result.stderr}")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    parser.add_argument("--data", default=os.path.join(ROOT, "data", "fashion-mnist"))
    parser.add_argument("--batches", default="64,256,1024", help="global batch sizes")
    parser.add_argument("--hidden", default="350,250,150,50")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per run (median)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    program = find_program(args.build)
    configs = [(1, 1), (1, 2), (2, 1)]  # (ranks, threads)
    batches = [int(b) for b in args.batches.split(",")]
    best = {}
    for round_index in range(args.rounds):
        for batch in batches:
            for ranks, threads in configs:
                result = run(program, ranks, threads, batch, args)
                key = (batch, ranks, threads)
                print(f"round {round_index + 1}: batch {batch}, {ranks} rank(s) x {threads} "
                      f"thread(s): {result['epoch_seconds_median']:.3f} s/epoch", flush=True)
                if key not in best or result["epoch_seconds_median"] < best[key]["epoch_seconds_median"]:
                    best[key] = result

    first = best[(batches[0], 1, 1)]
    print(f"\n{os.path.basename(program)}: model {first['model']} ({first['parameters']} "
          f"parameters), {first['optimizer']}, training pass only, best of {args.rounds} rounds"
          f" of the median of {args.epochs} epochs\n")
    print("| batch | configuration | s/epoch | speedup | efficiency | allreduce MB/step | "
          "allreduce ms/step | allreduce share |")
    print("|---|---|---|---|---|---|---|---|")
    for batch in batches:
        t1 = best[(batch, 1, 1)]["epoch_seconds_median"]
        for ranks, threads in configs:
            r = best[(batch, ranks, threads)]
            t = r["epoch_seconds_median"]
            cores = ranks * threads
            if ranks > 1:
                per_step = r["allreduce_seconds_per_step"]
                share = per_step * r["steps_per_epoch"] / t
                comm = (f"{r['bytes_per_step'] / 1e6:.2f} | {per_step * 1e3:.2f} | "
                        f"{100 * share:.0f}%")
            else:
                comm = "- | - | -"
            print(f"| {batch} | {ranks} rank(s) x {threads} thread(s) | {t:.3f} | "
                  f"{t1 / t:.2f} | {t1 / (cores * t):.2f} | {comm} |")

    # Cost model: per step every link carries 2 (N-1)/N x bytes of a ring allreduce.
    print("\nCost model (ring allreduce, no overlap with compute): per step each rank sends and "
          "receives 2 (N-1)/N x bytes; at 10 Gbit/s (1.25 GB/s):")
    print("| batch | N machines | compute s/epoch (T1 / N) | allreduce s/epoch | "
          "predicted efficiency |")
    print("|---|---|---|---|---|")
    for batch in batches:
        r = best[(batch, 2, 1)]
        t1 = best[(batch, 1, 1)]["epoch_seconds_median"]
        steps = r["steps_per_epoch"]
        for n in (2, 4, 8, 16):
            compute = t1 / n
            comm = 2 * (n - 1) / n * r["bytes_per_step"] * steps / 1.25e9
            print(f"| {batch} | {n} | {compute:.3f} | {comm:.3f} | "
                  f"{compute / (compute + comm):.2f} |")


if __name__ == "__main__":
    main()
