#!/usr/bin/python3
"""The MLP epoch at 1 and 2 threads on a machine whose cores other processes keep busy.

Issue 17: with other processes on the machine, our 2-thread epoch went from 0.59 s to 8.1 s
(PyTorch: 3.3 s). This benchmark starts one busy-looping process per CPU this process may use
("spinners", nice 0 unless --spinner-nice), then runs, interleaved round after round:
  * ours      dlb_bench_epoch --threads 1 and --threads 2 (and any --variant binaries)
  * PyTorch   bench/pytorch_epoch.py in the torch x OpenBLAS thread configurations of
              --pytorch (default 1x1, 1x2, 2x2)
and, with --quiet, the same runs again with the spinners stopped. Each program's median epoch
is taken per run; the report gives, per program and condition, the median over the rounds and
the spread (min-max), then the goals:
  * under load, ours at 2 threads <= ours at 1 thread, and <= PyTorch's best 2-thread
    configuration under the same load;
  * quiet, the 2-thread / 1-thread ratio (compare with bench/compare.py's table).

A shared machine has other load besides the spinners. --isolate (root) puts this whole run,
spinners included, into a session of its own whose scheduler autogroup has nice -20: other
sessions' jobs then get little CPU, while inside the session the spinners compete with the
measured program task against task, as other processes on a machine do. The report gives, for
every run, the CPU share taken by processes outside the run and its spinners ("other").

Run with the system interpreter (it has torch):
  /usr/bin/python3 bench/contention.py --build build-bench --isolate --rounds 3 --quiet
  /usr/bin/python3 bench/contention.py --variant omp=/tmp/old_dlb_bench_epoch --pytorch 1x2
"""

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "MKL_NUM_THREADS",
               "BLIS_NUM_THREADS", "DLB_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
DATA_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default=os.path.join(REPO, "build-bench"),
                   help="CMake build directory with bench/dlb_bench_epoch (default: build-bench)")
    p.add_argument("--no-build", action="store_true", help="do not bring dlb_bench_epoch up to date first")
    p.add_argument("--data", default=os.path.join(REPO, "data", "fashion-mnist"),
                   help="Fashion-MNIST directory; synthetic data of the same shapes when absent")
    p.add_argument("--threads", default="1,2", help="our thread counts (default 1,2)")
    p.add_argument("--variant", action="append", default=[], metavar="LABEL=PATH[,VAR=VALUE...]",
                   help="another dlb_bench_epoch binary to measure at the same thread counts, with "
                        "optional environment variables (repeatable); e.g. omp-passive=/tmp/old,OMP_WAIT_POLICY=passive")
    p.add_argument("--variant-threads", default=None,
                   help="thread counts for the --variant binaries (default: --threads)")
    p.add_argument("--pytorch", default="1x1,1x2,2x2",
                   help="torch x OpenBLAS thread configurations, comma separated; '' for none")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per run (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed epochs per run (default 1)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--spinners", type=int, default=None,
                   help="busy processes (default: one per CPU this process may use)")
    p.add_argument("--spinner-nice", type=int, default=0, help="their nice value (default 0)")
    p.add_argument("--float-spinners", action="store_true",
                   help="let the scheduler move the spinners (default: spinner i stays on the i-th CPU "
                        "of this process's affinity mask, so every CPU has one; the measured program is never pinned)")
    p.add_argument("--quiet", action="store_true", help="also measure every run without the spinners")
    p.add_argument("--no-load", action="store_true", help="only the runs without spinners (A/B on a quiet machine)")
    p.add_argument("--pytorch-epochs", type=int, default=None,
                   help="timed epochs of the PyTorch runs (default: --epochs; PyTorch at 2 threads under load "
                        "can take a minute per epoch)")
    p.add_argument("--isolate", action="store_true",
                   help="(root) run everything in a session of its own with autogroup nice -20")
    p.add_argument("--timeout", type=float, default=600, help="seconds per run before it is killed")
    p.add_argument("--json-out", default=None, help="write every run as JSON here")
    p.add_argument("--markdown-out", default=None, help="write the report here too")
    args = p.parse_args()
    args.threads = [int(t) for t in args.threads.split(",") if t.strip()]
    args.variant_threads = ([int(t) for t in args.variant_threads.split(",") if t.strip()]
                            if args.variant_threads else args.threads)
    args.pytorch_configs = []
    for item in filter(None, (s.strip() for s in args.pytorch.split(","))):
        torch_threads, _, blas_threads = item.partition("x")
        args.pytorch_configs.append((int(torch_threads), int(blas_threads or torch_threads)))
    args.variants = []
    for spec in args.variant:
        label, _, rest = spec.partition("=")
        path, *assignments = rest.split(",")
        env = dict(a.split("=", 1) for a in assignments)
        args.variants.append((label, path, env))
    if args.isolate and os.geteuid() != 0:
        p.error("--isolate needs root (it lowers the nice value of this session)")
    if args.spinners is None:
        args.spinners = len(os.sched_getaffinity(0))
    args.have_data = all(os.path.exists(os.path.join(args.data, f)) for f in DATA_FILES)
    return args


def isolate():
    """Moves this process into a new session (hence a new scheduler autogroup) with nice -20.
    Everything started afterwards (spinners, measured programs) inherits both."""
    os.setsid()
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write("-20")
    except OSError:
        pass  # kernels without autogroups: the nice value of the processes still counts
    os.nice(-20)


def cpu_jiffies():
    """Busy jiffies over all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields[:8]) - fields[3] - fields[4]


def process_jiffies(pid):
    """utime + stime of a process, in jiffies."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


class Spinners:
    """`count` busy-looping processes while running (`with Spinners(n, nice, pin):`); with `pin`,
    the i-th stays on the i-th CPU of this process's affinity mask."""

    def __init__(self, count, nice, pin):
        self.count, self.nice, self.pin, self.procs = count, nice, pin, []

    def __enter__(self):
        cpus = sorted(os.sched_getaffinity(0))
        for i in range(self.count):
            code = (f"import os\nos.nice({self.nice})\n"
                    + (f"os.sched_setaffinity(0, {{{cpus[i % len(cpus)]}}})\n" if self.pin else "")
                    + "while True: pass")
            self.procs.append(subprocess.Popen([sys.executable, "-c", code]))
        time.sleep(0.5)  # let them start spinning
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.wait()
        self.procs = []

    def jiffies(self):
        return sum(process_jiffies(proc.pid) for proc in self.procs)


def run(argv, env_extra, args, spinners, label, condition, records):
    """Runs one measurement; returns its record (median epoch in 'seconds', or 'error')."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update(env_extra)
    record = {"program": label, "condition": condition,
              "command": " ".join(f"{k}={v}" for k, v in env_extra.items()) + (" " if env_extra else "") + shlex.join(argv)}
    records.append(record)
    log(f"  [{condition}] $ {record['command']}")
    hz = os.sysconf("SC_CLK_TCK")
    ncpu = os.cpu_count() or 1
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0, spin0, wall0 = cpu_jiffies(), spinners.jiffies() if spinners else 0, time.monotonic()
    try:
        proc = subprocess.run(argv, cwd=tempfile.gettempdir(), env=env, capture_output=True, text=True,
                              timeout=args.timeout)
    except subprocess.TimeoutExpired:
        record["error"] = f"timeout after {args.timeout:.0f} s"
        log(f"    [fail] {record['error']}")
        return record
    except OSError as error:
        record["error"] = str(error)
        log(f"    [fail] {record['error']}")
        return record
    wall = time.monotonic() - wall0
    busy1, spin1 = cpu_jiffies(), spinners.jiffies() if spinners else 0
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    other = ((busy1 - busy0) - (spin1 - spin0)) / hz - child
    record["other_cpu_fraction"] = max(0.0, other / (wall * ncpu))
    record["program_cpu_seconds"] = child
    record["spinner_cpu_fraction"] = (spin1 - spin0) / hz / (wall * ncpu)
    if proc.returncode != 0:
        record["error"] = f"exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-300:]}"
        log(f"    [fail] {record['error']}")
        return record
    result = next((json.loads(line) for line in reversed(proc.stdout.splitlines()) if line.startswith("{")), None)
    if result is None:
        record["error"] = "no JSON line"
        return record
    record["seconds"] = result["epoch_seconds_median"]
    record["epochs"] = result.get("epoch_seconds_all") or [result.get("epoch_seconds_min"), result.get("epoch_seconds_max")]
    log(f"    {record['seconds']:.3f} s/epoch {record['epochs']} (program CPU {child:.1f} s in {wall:.1f} s, "
        f"spinners {record['spinner_cpu_fraction']:.0%}, other {record['other_cpu_fraction']:.0%})")
    return record


def main():
    args = parse_args()
    if args.isolate:
        isolate()
    ours = os.path.join(args.build, "bench", "dlb_bench_epoch")
    if not args.no_build and os.path.isfile(os.path.join(args.build, "CMakeCache.txt")):
        cmd = ["cmake", "--build", args.build, "--target", "dlb_bench_epoch"]
        log(f"$ {shlex.join(cmd)}")
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    data = ["--data", args.data] if args.have_data else ["--synthetic"]
    common = ["--epochs", str(args.epochs), "--warmup", str(args.warmup), "--json"]
    pytorch_common = ["--epochs", str(args.pytorch_epochs or args.epochs), "--warmup", str(args.warmup), "--json"]
    programs = []  # (label, threads, argv, env)
    for label, path, env in [("ours", ours, {})] + args.variants:
        for threads in (args.variant_threads if env or path != ours else args.threads):
            programs.append((label, threads, [path, "--threads", str(threads)] + data + common, env))
    script = os.path.join(REPO, "bench", "pytorch_epoch.py")
    for torch_threads, blas_threads in args.pytorch_configs:
        programs.append((f"pytorch {torch_threads}x{blas_threads}", max(torch_threads, blas_threads),
                         [sys.executable, script, "--threads", str(torch_threads), "--blas-threads",
                          str(blas_threads)] + data + pytorch_common, {}))

    records = []
    conditions = ([] if args.no_load else ["load"]) + (["quiet"] if args.quiet or args.no_load else [])
    log(f"{len(programs)} programs x {len(conditions)} conditions x {args.rounds} rounds; "
        f"{args.spinners} {'floating' if args.float_spinners else 'pinned'} spinners at nice {args.spinner_nice}; isolate={args.isolate}")
    for round_index in range(args.rounds):
        order = programs[round_index % len(programs):] + programs[:round_index % len(programs)]
        for condition in conditions:
            log(f"round {round_index + 1}/{args.rounds}, {condition}")
            if condition == "load":
                with Spinners(args.spinners, args.spinner_nice, not args.float_spinners) as spinners:
                    for label, threads, argv, env in order:
                        run(argv, env, args, spinners, f"{label} {threads}t" if not label.startswith("pytorch") else label,
                            condition, records)
            else:
                for label, threads, argv, env in order:
                    run(argv, env, args, None, f"{label} {threads}t" if not label.startswith("pytorch") else label,
                        condition, records)

    # The report
    lines = [f"# Epoch under contention ({args.spinners} {'floating' if args.float_spinners else 'pinned'} "
             f"spinners at nice {args.spinner_nice}, "
             f"{os.cpu_count()} CPUs, {args.rounds} rounds, {args.epochs} epochs per run, "
             f"{'isolated session' if args.isolate else 'not isolated'}, "
             f"{'Fashion-MNIST' if args.have_data else 'synthetic data'})", "",
             "| program | condition | median s/epoch | min - max | runs | other load (max) |",
             "|---|---|---|---|---|---|"]
    summary = {}
    for label in dict.fromkeys(r["program"] for r in records):
        for condition in conditions:
            rs = [r for r in records if r["program"] == label and r["condition"] == condition]
            ok = [r["seconds"] for r in rs if "seconds" in r]
            if not ok:
                lines.append(f"| {label} | {condition} | failed | | {len(rs)} | |")
                continue
            summary[(label, condition)] = statistics.median(ok)
            other = max(r.get("other_cpu_fraction", 0) for r in rs)
            lines.append(f"| {label} | {condition} | {statistics.median(ok):.3f} | {min(ok):.3f} - {max(ok):.3f} | "
                         f"{len(ok)}/{len(rs)} | {other:.0%} |")
    lines.append("")
    one, two = summary.get(("ours 1t", "load")), summary.get(("ours 2t", "load"))
    torch2 = [(v, k[0]) for k, v in summary.items() if k[1] == "load" and k[0].startswith("pytorch")
              and max(int(x) for x in k[0].split()[1].split("x")) == 2]
    if one and two:
        lines.append(f"- under load, ours 2 threads / 1 thread: {two / one:.2f} (goal <= 1)")
    if two and torch2:
        best, name = min(torch2)
        lines.append(f"- under load, ours 2 threads / PyTorch's best 2-thread configuration ({name}, {best:.3f} s): "
                     f"{two / best:.2f} (goal <= 1)")
    q1, q2 = summary.get(("ours 1t", "quiet")), summary.get(("ours 2t", "quiet"))
    if q1 and q2:
        lines.append(f"- quiet, ours 2 threads / 1 thread: {q2 / q1:.2f}")
    report = "\n".join(lines)
    print(report)
    if args.markdown_out:
        with open(args.markdown_out, "w") as f:
            f.write(report + "\n")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items() if k != "variants"}, "runs": records}, f, indent=1)


if __name__ == "__main__":
    main()
