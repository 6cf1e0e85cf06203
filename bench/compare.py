#!/usr/bin/python3
"""Runs the whole epoch-time comparison in one go and prints it as markdown.

For 1 and 2 threads, one after another in this run:
  * ours      dlb_bench_epoch --engine eigen|blas (each engine the build has; the summary
              counts the engine the library chooses by itself, what every program gets)
  * PyTorch   bench/pytorch_epoch.py in several torch x OpenBLAS thread configurations
              (the fastest counts; all are shown)
  * products  dlb_gemm_ceiling --engine eigen|blas: the 14 matrix products of the training
              step alone (the fastest engine and threading counts)
then a batch-size sweep and a width sweep of ours and the products at one thread count.

Goals checked in the summary (issue 10): ours <= 0.9x PyTorch at 1 thread, <= 0.65x at 2
threads, and ours <= 1.2x the products alone.

Every measurement is a subprocess printing one JSON line; a program that is missing or fails
is reported and the rest goes on. Progress goes to stderr, the report to stdout (and to
--markdown-out). The machine is shared: for each run the CPU time used by *other* processes
during it is measured from /proc/stat and shown as "bg" (background load makes the 2-thread
numbers meaningless; --wait-idle waits for a quiet machine before each run).

Run with the system interpreter (the one that has torch):
  /usr/bin/python3 bench/compare.py --build build-bench
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
HIDDEN = [350, 250, 150, 50]
TRAIN_SAMPLES = 60000
DATA_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
GOAL_VS_PYTORCH = {1: 0.9, 2: 0.65}
GOAL_VS_PRODUCTS = 1.2
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "MKL_NUM_THREADS",
               "BLIS_NUM_THREADS")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default=None,
                   help="CMake build directory (default: build-bench in the repository root)")
    p.add_argument("--data", default=None,
                   help="Fashion-MNIST directory (default: data/fashion-mnist in the repository root); "
                        "synthetic data if the IDX files are absent")
    p.add_argument("--epochs", type=int, default=None, help="timed epochs per run (default 5, --quick 2)")
    p.add_argument("--warmup", type=int, default=1, help="untimed epochs per run (default 1)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed epochs of the products probe (default 5, --quick 3)")
    p.add_argument("--optimizer", default="adam", choices=("adam", "sgd", "momentum", "nesterov"))
    p.add_argument("--threads", default="1,2", help="thread counts of the main table (default 1,2)")
    p.add_argument("--sweep-threads", type=int, default=1,
                   help="thread count of the sweeps (default 1: the steadiest numbers on a shared machine)")
    p.add_argument("--sweep-epochs", type=int, default=None,
                   help="timed epochs per sweep point (default 2, --quick 1)")
    p.add_argument("--sweep-pytorch", action="store_true", help="also run PyTorch (its best config) in the sweeps")
    p.add_argument("--pytorch-configs", choices=("all", "matched"), default="all",
                   help="cnn/resnet: PyTorch's thread configurations per row. all (default): torch threads "
                        "x OpenBLAS threads in {1, N}; matched: N x N alone (pip's PyTorch, whose oneDNN and "
                        "MKL ignore OpenBLAS, and many-core scaling runs)")
    p.add_argument("--rounds", type=int, default=None,
                   help="repeat the main comparison, interleaved, keeping each program's fastest round "
                        "(default 2, --quick 1)")
    p.add_argument("--model", choices=("mlp", "cnn", "resnet"), default="mlp",
                   help="mlp: the notebook's MLP (this report); cnn or resnet: that network of "
                        "train_fashion_mnist against PyTorch and its products (bench/compare_cnn.py; no sweeps)")
    p.add_argument("--batches", type=int, default=0,
                   help="cnn: time only the first N batches of each epoch and scale to the epoch (0: all)")
    p.add_argument("--quick", action="store_true", help="fewer epochs and sweep points")
    p.add_argument("--skip-sweeps", action="store_true")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                   help="before each run wait up to SECONDS for other processes to use < 10%% CPU")
    p.add_argument("--retries", type=int, default=0,
                   help="rerun a run up to N times while other processes took >= 10%% CPU during it, "
                        "keeping the least disturbed attempt (default 0)")
    p.add_argument("--priority", action="store_true",
                   help="run every measurement in a session of its own whose scheduler autogroup has nice -20 "
                        "(needs root): on a machine shared with other sessions' jobs, they then take little CPU "
                        "from the measured program (the bg load column shows how much)")
    p.add_argument("--python", default="/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable,
                   help="interpreter with torch for pytorch_epoch.py (default /usr/bin/python3)")
    p.add_argument("--no-build", action="store_true",
                   help="do not bring the benchmark targets up to date (cmake --build) before measuring")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per run before it is abandoned")
    p.add_argument("--markdown-out", metavar="FILE", help="also write the report to FILE")
    p.add_argument("--json-out", metavar="FILE", help="write every run's parsed JSON and command to FILE")
    args = p.parse_args()
    if args.epochs is None:
        args.epochs = 2 if args.quick else 5
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.priority and os.geteuid() != 0:
        p.error("--priority needs root (it lowers the nice value of the measured programs)")
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    if args.sweep_epochs is None:
        args.sweep_epochs = 1 if args.quick else 2
    args.threads = [int(t) for t in args.threads.split(",") if t.strip()]
    if min([args.epochs, args.repeats, args.rounds, args.sweep_epochs, args.sweep_threads] + args.threads) < 1 or min(args.warmup, args.retries) < 0:
        p.error("epochs, repeats and thread counts must be >= 1, warmup and retries >= 0")
    # Defaults live in the repository whatever the current directory; given paths are taken
    # relative to the current directory, as usual.
    args.build = os.path.abspath(args.build) if args.build else os.path.join(REPO, "build-bench")
    args.data = os.path.abspath(args.data) if args.data else os.path.join(REPO, "data", "fashion-mnist")
    return args


# ---------------------------------------------------------------------------------------------
# Machine facts


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags_summary():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return ", ".join(x for x in ("avx2", "fma", "avx512f") if x in flags)
    except OSError:
        pass
    return ""


def cpu_family_model():
    fam = mod = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu family") and fam is None:
                    fam = line.split(":", 1)[1].strip()
                elif line.startswith("model") and not line.startswith("model name") and mod is None:
                    mod = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"family {fam} model {mod}" if fam else ""


def git_revision():
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_jiffies():
    """(busy, total) jiffies over all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])       # guest time is already included in user
    return total - idle, total


def busy_fraction(interval):
    b0, t0 = cpu_jiffies()
    time.sleep(interval)
    b1, t1 = cpu_jiffies()
    return (b1 - b0) / max(1, t1 - t0)


def wait_for_idle(seconds):
    """Waits up to `seconds` until the machine is < 10% busy; returns the last busy fraction."""
    deadline = time.monotonic() + seconds
    busy = busy_fraction(0.5)
    while busy >= 0.10 and time.monotonic() < deadline:
        busy = busy_fraction(1.0)
    return busy


# ---------------------------------------------------------------------------------------------
# Bringing the programs up to date


TARGETS = ("dlb_bench_epoch", "dlb_gemm_ceiling")


def build_targets(args):
    """Runs cmake --build for each benchmark target the build directory knows.
    Returns (notes for the report, commands run)."""
    if not os.path.isfile(os.path.join(args.build, "CMakeCache.txt")):
        return [f"`{args.build}` is not a configured CMake build directory: using whatever binaries it holds."], []
    notes = []
    commands = []
    for target in TARGETS:
        cmd = ["cmake", "--build", args.build, "-j", str(os.cpu_count() or 1), "--target", target]
        log(f"  $ {shlex.join(cmd)}")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        commands.append(shlex.join(cmd))
        if proc.returncode != 0:
            out = proc.stdout + proc.stderr
            if "No rule to make target" in out or "unknown target" in out:
                continue  # not declared in this configuration (e.g. no OpenBLAS, no bench_epoch.cpp)
            notes.append(f"building `{target}` failed (exit {proc.returncode}); the existing binary, if any, "
                         "was measured and may not match the sources.")
            log(f"  [fail] {out.strip()[-600:]}")
    return notes, commands


# ---------------------------------------------------------------------------------------------
# Running one measurement


def raise_priority():
    """In the child of --priority, already in a new session (hence a new scheduler autogroup):
    gives the autogroup and the process nice -20."""
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write("-20")
    except OSError:
        pass  # kernels without autogroups: the process's own nice value still counts
    os.nice(-20)


class Runner:
    def __init__(self, args):
        self.args = args
        self.records = []  # every run: command, result or error, background load
        self.cwd = tempfile.gettempdir()  # neutral: no stray package/ dir shadowing torch
        self.env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
        self.ncpu = os.cpu_count() or 1
        self.user_hz = os.sysconf("SC_CLK_TCK")

    def run(self, kind, argv):
        """Runs argv (again while disturbed, up to --retries times); returns the parsed JSON line
        of the least disturbed attempt (dict with '_bg' and '_command' added) or None."""
        cmd = shlex.join(argv)
        if not os.path.exists(argv[0]):
            self.records.append({"kind": kind, "command": cmd, "error": "missing"})
            log(f"  [skip] {argv[0]} not found")
            return None
        best = None
        for attempt in range(1 + self.args.retries):
            if attempt:
                log(f"  [retry {attempt}/{self.args.retries}] disturbing load {best['_disturbed']:.0%}")
            result = self.run_once(kind, argv, cmd)
            if result is None:
                return best
            if best is None or result["_disturbed"] < best["_disturbed"]:
                best = result
            if best["_disturbed"] < 0.10:
                break
        return best

    def run_once(self, kind, argv, cmd):
        record = {"kind": kind, "command": cmd}
        self.records.append(record)
        if self.args.wait_idle > 0:
            before = wait_for_idle(self.args.wait_idle)
            if before >= 0.10:
                log(f"  [warn] machine still {before:.0%} busy after waiting {self.args.wait_idle:.0f} s")
        log(f"  $ {cmd}")
        usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy0, total0 = cpu_jiffies()
        wall0 = time.monotonic()
        try:
            proc = subprocess.run(argv, cwd=self.cwd, env=self.env, capture_output=True, text=True,
                                  timeout=self.args.timeout, start_new_session=self.args.priority,
                                  preexec_fn=raise_priority if self.args.priority else None)
        except subprocess.TimeoutExpired:
            record["error"] = f"timeout after {self.args.timeout:.0f} s"
            log(f"  [fail] {record['error']}")
            return None
        wall = time.monotonic() - wall0
        busy1, total1 = cpu_jiffies()
        usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        child_cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
        system_cpu = (busy1 - busy0) / self.user_hz
        # Share of the machine (all CPUs) other processes used while this one ran.
        # Only meaningful when the run spans many clock ticks (/proc/stat counts in 1/USER_HZ s).
        bg = (max(0.0, (system_cpu - child_cpu) / (wall * self.ncpu))
              if wall * self.ncpu * self.user_hz >= 100 else 0.0)
        record["background_cpu_fraction"] = bg
        record["wall_seconds"] = wall
        if proc.returncode != 0:
            record["error"] = f"exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-400:]}"
            log(f"  [fail] {record['error']}")
            return None
        result = None
        for line in reversed(proc.stdout.splitlines()):
            if line.startswith("{"):
                try:
                    result = json.loads(line)
                    break
                except json.JSONDecodeError:
                    continue
        if result is None:
            record["error"] = "no JSON line in output"
            log(f"  [fail] no JSON line in output of {cmd}")
            return None
        result["_bg"] = bg
        # Only CPU time beyond the CPUs this run leaves idle disturbs it: a 1-thread run on 2
        # CPUs is not slowed by a job on the other CPU (shared caches aside).
        used = max(int(result.get("threads") or 1), int(result.get("blas_threads") or 1))
        result["_disturbed"] = max(0.0, bg - max(0, self.ncpu - used) / self.ncpu)
        record["disturbing_cpu_fraction"] = result["_disturbed"]
        result["_command"] = cmd
        record["result"] = result
        human = next((l for l in proc.stdout.splitlines() if l and not l.startswith("{")), "")
        if not human:
            human = ", ".join(f"{k}={result[k]}" for k in ("engine", "threads", "batch", "epoch_seconds_median",
                                                        "seconds_per_epoch", "gflops") if k in result)
        log(f"    {human[:160]}" + (f"   [bg {bg:.0%}]" if bg >= 0.05 else ""))
        return result


# ---------------------------------------------------------------------------------------------
# The three kinds of measurement


def exe(args, name):
    return os.path.join(args.build, "bench", name)


def data_flags(args):
    return ["--data", args.data] if args.have_data else ["--synthetic"]


def engine_info(args):
    """(engines the build has, the library's own choice, its description, whether that choice
    mixes the engines: convolutions on Eigen's kernels beside a BLAS), from a tiny run of
    dlb_gemm_ceiling with each engine forced."""
    available, default, description, mixes = [], None, None, False
    program = exe(args, "dlb_gemm_ceiling")
    if not os.path.exists(program):
        return available, default, description, mixes
    for engine in ("eigen", "blas"):
        proc = subprocess.run([program, "--engine", engine, "--inputs", "2", "--hidden", "2", "--classes", "2",
                               "--batch", "2", "--batches", "1", "--repeats", "1", "--json"],
                              capture_output=True, text=True, cwd=tempfile.gettempdir())
        if proc.returncode != 0:
            continue
        available.append(engine)
        line = next((l for l in reversed(proc.stdout.splitlines()) if l.startswith("{")), None)
        if line:
            info = json.loads(line)
            default = info.get("default_engine", default)
            description = info.get("default_engine_description", description)
            mixes = mixes or info.get("default_mixes_engines", False)
    return available, default, description, mixes


def run_ours(runner, args, threads, batch, hidden, epochs, engines=("eigen", "blas")):
    results = []
    for engine in engines:
        r = runner.run("ours", [exe(args, "dlb_bench_epoch"), "--engine", engine] + data_flags(args) + [
            "--threads", str(threads), "--batch", str(batch), "--hidden", ",".join(map(str, hidden)),
            "--optimizer", args.optimizer, "--epochs", str(epochs), "--warmup", str(args.warmup), "--json"])
        if r is not None and "epoch_seconds_median" in r:
            r.setdefault("engine", engine)
            results.append(r)
    return results


def run_pytorch(runner, args, torch_threads, blas_threads, batch, hidden, epochs):
    r = runner.run("pytorch", [args.python, os.path.join(REPO, "bench", "pytorch_epoch.py")] + data_flags(args) + [
        "--threads", str(torch_threads), "--blas-threads", str(blas_threads), "--batch", str(batch),
        "--hidden", ",".join(map(str, hidden)), "--optimizer", args.optimizer, "--epochs", str(epochs),
        "--warmup", str(args.warmup), "--json"])
    if r is not None and "epoch_seconds_median" in r:
        r["_config"] = (torch_threads, blas_threads)
        return r
    return None


def run_products(runner, args, threads, batch, hidden, engines=("eigen", "blas")):
    """The 14 products alone with each engine threading its own products and, on several
    threads, also through dlb::Gemm (--split: one block per thread, engines "dlb-eigen" and
    "dlb-blas"), so the ceiling is the fastest GEMM available here, the library's included."""
    results = []
    for engine in engines:
        for split in ([False, True] if threads > 1 else [False]):
            r = runner.run("products", [exe(args, "dlb_gemm_ceiling"), "--engine", engine,
                                        "--threads", str(threads), "--batch", str(batch),
                                        "--hidden", ",".join(map(str, hidden)),
                                        "--batches", str(TRAIN_SAMPLES // batch),
                                        "--repeats", str(args.repeats), "--json"]
                           + (["--split"] if split else []))
            if r is not None and "seconds_per_epoch" in r:
                results.append(r)
    return results


def fastest(results, key):
    return min(results, key=lambda r: r[key]) if results else None


def best_per(results, group, key):
    """The fastest result of each group (in first-seen order), with every time of the group in '_all'."""
    groups = {}
    for r in results:
        groups.setdefault(group(r), []).append(r)
    best = []
    for runs in groups.values():
        b = dict(fastest(runs, key))
        b["_all"] = [r[key] for r in runs]
        best.append(b)
    return best


# ---------------------------------------------------------------------------------------------
# Formatting


def fmt(x, digits=3):
    return "n/a" if x is None else f"{x:.{digits}f}"


def bg_note(r):
    return f" ⚠bg {r['_bg']:.0%}" if r is not None and r.get("_disturbed", 0) >= 0.10 else ""


def verdict(ratio, goal):
    if ratio is None:
        return "n/a"
    return f"{ratio:.2f} {'✅' if ratio <= goal else '❌'} (goal ≤ {goal})"


def finish_report(out, args, runner, build_commands):
    """Appends the "Commands" section (how the report was made, the build, every run with its
    error or its background load where that disturbed it) and the closing line to the report
    lines `out`, prints the report and writes --markdown-out and --json-out. Returns 0."""
    w = out.append
    failed = [r for r in runner.records if "error" in r]
    w("### Commands")
    w("")
    w(f"Report: `{shlex.join([args.python] + sys.argv)}` (from `{os.getcwd()}`); each run below was started "
      f"from `{runner.cwd}` with {', '.join(THREAD_VARS)} removed from the environment.")
    w("")
    w("```")
    for c in build_commands:
        w(c)
    for r in runner.records:
        if "error" in r:
            suffix = f"   # {r['error']}"
        else:
            suffix = (f"   # bg {r['background_cpu_fraction']:.0%}"
                      if r.get("disturbing_cpu_fraction", 0) >= 0.10 else "")
        w(r["command"] + suffix)
    w("```")
    if failed:
        w("")
        w(f"{len(failed)} run(s) missing or failed (marked above).")
    w("")
    w(f"Finished {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}. "
      "`bg load` = CPU share other processes used during the run; ⚠ marks runs where it exceeded the share "
      "of CPUs the run leaves idle by 10% or more, "
      "whose times are not trustworthy (2 cores: any background job distorts 2-thread runs).")

    report = "\n".join(out) + "\n"
    sys.stdout.write(report)
    if args.markdown_out:
        with open(args.markdown_out, "w") as f:
            f.write(report)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(runner.records, f, indent=1)
    return 0


def main():
    args = parse_args()
    if args.model in ("cnn", "resnet"):
        import compare_cnn
        return compare_cnn.main(args)
    args.have_data = all(os.path.isfile(os.path.join(args.data, f)) for f in DATA_FILES)
    runner = Runner(args)
    started = datetime.datetime.now().astimezone()
    notes, build_commands = ([], []) if args.no_build else build_targets(args)
    engines, default_engine, default_description, _ = engine_info(args)
    ours_engines = engines if os.path.exists(exe(args, "dlb_bench_epoch")) else []
    product_engines = engines
    if not args.have_data:
        notes.append(f"Fashion-MNIST not found in `{args.data}`: all runs use synthetic data of the same "
                     "shapes (timings are unaffected; accuracies are meaningless).")
    if not ours_engines:
        notes.append(f"Our epoch benchmark (`dlb_bench_epoch`) is not built in `{args.build}/bench`: "
                     "the 'ours' columns are empty.")
    if not product_engines:
        notes.append(f"The GEMM ceiling (`dlb_gemm_ceiling`) is not built in `{args.build}/bench`.")
    for n in notes:
        log(f"note: {n}")

    # -- main comparison ------------------------------------------------------------------------
    # Rounds interleave the programs, so a slow phase of the (virtual) machine hits all of them
    # alike; each program/config keeps its fastest round.
    collected = {t: ([], [], []) for t in args.threads}
    for rnd in range(args.rounds):
        for threads in args.threads:
            log(f"== {threads} thread(s), round {rnd + 1}/{args.rounds}")
            ours, torch_runs, products = collected[threads]
            ours += run_ours(runner, args, threads, 256, HIDDEN, args.epochs, ours_engines)
            configs = [(1, 1)] if threads == 1 else [(t, b) for t in (1, threads) for b in (1, threads)]
            for t, b in configs:
                r = run_pytorch(runner, args, t, b, 256, HIDDEN, args.epochs)
                if r:
                    torch_runs.append(r)
            products += run_products(runner, args, threads, 256, HIDDEN, product_engines)
    rows = []
    pytorch_all = []
    for threads in args.threads:
        ours, torch_runs, products = collected[threads]
        ours = best_per(ours, lambda r: r["engine"], "epoch_seconds_median")
        torch_runs = best_per(torch_runs, lambda r: r["_config"], "epoch_seconds_median")
        products = best_per(products, lambda r: r["engine"], "seconds_per_epoch")
        pytorch_all += [(threads, r) for r in torch_runs]
        rows.append((threads, ours, torch_runs, products))

    # -- sweeps -----------------------------------------------------------------------------------
    sweep_rows = {"batch": [], "width": []}
    if not args.skip_sweeps:
        t = args.sweep_threads
        best_torch = next((min(rs, key=lambda r: r["epoch_seconds_median"])["_config"]
                           for th, _, rs, _ in rows if th == t and rs), (t, t))
        batches = [64, 256, 1024] if args.quick else [32, 64, 128, 256, 512, 1024]
        scales = [0.5, 1, 2] if args.quick else [0.5, 1, 2, 4]
        points = [("batch", b, HIDDEN) for b in batches]
        points += [("width", s, [max(1, round(h * s)) for h in HIDDEN]) for s in scales]
        for kind, value, hidden in points:
            batch = value if kind == "batch" else 256
            log(f"== sweep {kind}={value} ({t} thread(s), batch {batch}, hidden {hidden})")
            ours = run_ours(runner, args, t, batch, hidden, args.sweep_epochs, ours_engines)
            torch_run = (run_pytorch(runner, args, *best_torch, batch, hidden, args.sweep_epochs)
                         if args.sweep_pytorch else None)
            products = run_products(runner, args, t, batch, hidden, product_engines)
            sweep_rows[kind].append((value, batch, hidden, ours, torch_run, products))

    # -- report -----------------------------------------------------------------------------------
    out = []
    w = out.append
    w(f"## DLBlocks epoch time vs PyTorch and vs the 14 products alone")
    w("")
    w(f"- date: {started.strftime('%Y-%m-%d %H:%M %Z')}")
    w(f"- CPU: {cpu_model()} ({cpu_family_model()}; {os.cpu_count()} logical CPUs; {cpu_flags_summary()})")
    w(f"- kernel: {platform.release()}; repo: {git_revision()}; build dir: `{args.build}`")
    torch_versions = sorted({r.get("torch_version", "?") for _, r in pytorch_all})
    blas = sorted({r.get("blas") for _, r in pytorch_all if r.get("blas")})
    if torch_versions:
        w(f"- PyTorch {', '.join(torch_versions)}; its matmul BLAS: {', '.join(blas) if blas else 'unknown'}")
    w(f"- job: MLP 784-{'-'.join(map(str, HIDDEN))}-10, batch 256, {TRAIN_SAMPLES // 256} batches/epoch, "
      f"{args.optimizer}; {args.epochs} timed epochs after {args.warmup} warm-up (median); "
      f"products probe: median of {args.repeats} epochs; best of {args.rounds} interleaved round(s); "
      f"data: {'Fashion-MNIST' if args.have_data else 'synthetic'}")
    if args.priority:
        w("- every run in its own session with autogroup nice -20 (`--priority`): other sessions' jobs "
          "on this shared machine kept running, with little CPU (`bg load`)")
    w(f"- engines in this build: {', '.join(engines) if engines else 'none found'}; the library's own choice "
      f"(the summary's \"ours\"): {default_engine or 'unknown'}, \"{default_description or '?'}\"")
    for n in notes:
        w(f"- **note:** {n}")
    w("")
    w("| threads | ours s/epoch (engine) | PyTorch s/epoch (torch×BLAS threads) | ours/PyTorch | "
      "14 products s/epoch (engine) | ours/products |")
    w("|---|---|---|---|---|---|")
    for threads, ours, torch_runs, products in rows:
        # What a program gets: the engine the library chooses by itself.
        o = next((r for r in ours if r["engine"] == default_engine), None) or fastest(ours, "epoch_seconds_median")
        p = fastest(torch_runs, "epoch_seconds_median")
        c = fastest(products, "seconds_per_epoch")
        os_ = o["epoch_seconds_median"] if o else None
        ps = p["epoch_seconds_median"] if p else None
        cs = c["seconds_per_epoch"] if c else None
        w(f"| {threads} "
          f"| {fmt(os_)} ({o['engine'] if o else '-'}){bg_note(o)} "
          f"| {fmt(ps)} ({'%d×%d' % p['_config'] if p else '-'}){bg_note(p)} "
          f"| {verdict(os_ / ps if os_ and ps else None, GOAL_VS_PYTORCH.get(threads, GOAL_VS_PYTORCH[2]))} "
          f"| {fmt(cs)} ({c['engine'] if c else '-'}){bg_note(c)} "
          f"| {verdict(os_ / cs if os_ and cs else None, GOAL_VS_PRODUCTS)} |")
    w("")
    w(f"All configurations of the main comparison (s/epoch: best of {args.rounds} round(s); "
      "every round's time listed):")
    w("")
    w("| threads | program | config | s/epoch | rounds | GFLOP/s | samples/s | inference samples/s | test acc. "
      "| peak RSS MB | bg load |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")

    def rounds_cell(r):
        return ", ".join(f"{x:.3f}" for x in r["_all"])

    for threads, ours, torch_runs, products in rows:
        for r in ours:
            w(f"| {threads} | ours | {r['engine']} | {fmt(r['epoch_seconds_median'])} | {rounds_cell(r)} "
              f"| {fmt(r.get('gflops'), 1)} "
              f"| {fmt(r.get('samples_per_second'), 0)} | {fmt(r.get('inference_samples_per_second'), 0)} "
              f"| {fmt(r.get('test_accuracy'), 4)} | {fmt(r.get('peak_rss_mb'), 0)} | {r['_bg']:.0%} |")
        for r in torch_runs:
            w(f"| {threads} | PyTorch | {r['_config'][0]} torch × {r['_config'][1]} OpenBLAS "
              f"| {fmt(r['epoch_seconds_median'])} | {rounds_cell(r)} | {fmt(r.get('gflops'), 1)} "
              f"| {fmt(r.get('samples_per_second'), 0)} "
              f"| {fmt(r.get('inference_samples_per_second'), 0)} | {fmt(r.get('test_accuracy'), 4)} "
              f"| {fmt(r.get('peak_rss_mb'), 0)} | {r['_bg']:.0%} |")
        for r in products:
            w(f"| {threads} | 14 products | {r['engine']} | {fmt(r['seconds_per_epoch'])} | {rounds_cell(r)} "
              f"| {fmt(r.get('gflops'), 1)} | | | | | {r['_bg']:.0%} |")
    w("")

    if not args.skip_sweeps:
        for kind, title in (("batch", "Batch-size sweep"), ("width", "Width sweep (hidden widths scaled, batch 256)")):
            w(f"### {title}, {args.sweep_threads} thread(s)")
            w("")
            torch_cols = " PyTorch s/epoch | PyTorch GFLOP/s |" if args.sweep_pytorch else ""
            w(f"| {kind} | hidden | GFLOP/epoch | ours s/epoch (engine) | ours GFLOP/s |{torch_cols} "
              "products s/epoch (engine) | products GFLOP/s | ours/products |")
            w("|---|---|---|---|---|" + ("---|---|" if args.sweep_pytorch else "") + "---|---|---|")
            for value, batch, hidden, ours, torch_run, products in sweep_rows[kind]:
                o = fastest(ours, "epoch_seconds_median")
                c = fastest(products, "seconds_per_epoch")
                gflop = (c or {}).get("gflop_per_epoch") or (o or {}).get("gflop_per_epoch")
                if gflop is None:
                    sizes = [784] + hidden + [10]
                    macs = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
                    gflop = 2.0 * batch * (2 * sum(macs) + sum(macs[1:])) * (TRAIN_SAMPLES // batch) * 1e-9
                label = f"x{value}" if kind == "width" else str(value)
                line = (f"| {label} | {','.join(map(str, hidden))} | {gflop:.1f} "
                        f"| {fmt(o['epoch_seconds_median'] if o else None)} ({o['engine'] if o else '-'}){bg_note(o)} "
                        f"| {fmt(o.get('gflops') if o else None, 1)} |")
                if args.sweep_pytorch:
                    line += (f" {fmt(torch_run['epoch_seconds_median'] if torch_run else None)}{bg_note(torch_run)} "
                             f"| {fmt(torch_run.get('gflops') if torch_run else None, 1)} |")
                line += (f" {fmt(c['seconds_per_epoch'] if c else None)} ({c['engine'] if c else '-'}){bg_note(c)} "
                         f"| {fmt(c.get('gflops') if c else None, 1)} "
                         f"| {fmt(o['epoch_seconds_median'] / c['seconds_per_epoch'] if o and c else None, 2)} |")
                w(line)
            w("")

    return finish_report(out, args, runner, build_commands)


if __name__ == "__main__":
    sys.exit(main())
