"""The convnet part of bench/compare.py (`compare.py --model cnn|resnet`): one training epoch of the
convnet of `train_fashion_mnist --model cnn` (issue 7) or of `--model resnet` (dlb::MakeResNet,
issue 16), ours against PyTorch on the same network, batch and optimizer and against the step's
matrix products alone, at 1 and 2 threads, in interleaved rounds.

  * ours      dlb_bench_cnn_epoch --model M --engine eigen|blas  (each engine the build has; the fastest counts),
              and --engine auto where the library's own choice mixes them (OpenBLAS for most
              products, Eigen for the convolutions that read their patches from the image):
              what a program gets by default
  * PyTorch   bench/pytorch_cnn_epoch.py --model M in the torch x OpenBLAS thread configurations of
              compare.py (the fastest counts; all are shown)
  * products  dlb_bench_cnn_epoch --model M --products: the dlb::Gemm calls of the layers' training
              steps alone, at the same shapes and split over the threads the same way (each engine)

Goals checked (issue 19): cnn <= 1.25x its products and <= 0.2x PyTorch at 2 threads; resnet
<= 1.3x its products and <= 0.7x PyTorch at 2 threads.
Uses compare.py's runner (background-load measurement, --wait-idle, --retries) and report helpers.
"""

import datetime
import os
import platform
import sys

import compare as common

# dlb_gemm_ceiling too: compare.engine_info asks it which engines the build has.
TARGETS = ("dlb_bench_cnn_epoch", "dlb_gemm_ceiling")
PROGRAM = "dlb_bench_cnn_epoch"
BATCH = 128
BATCHES_PER_EPOCH = common.TRAIN_SAMPLES // BATCH
GOALS = {  # model: (ours/PyTorch by thread count, ours/products)
    "cnn": ({2: 0.2}, 1.25),
    "resnet": ({2: 0.7}, 1.3),
}
JOBS = {
    "cnn": "Conv(1->32)-BN-ReLU-MaxPool-Conv(32->64)-BN-ReLU-MaxPool-Linear(3136->128)-ReLU-Dropout-"
           "Linear(128->10), AdamW 2e-3 with weight decay 0.05",
    "resnet": "ResNet (stem 16, stages of 2 BasicBlocks at 16, 32, 64 channels, global average pooling, "
              "Linear(64->10); 174,970 parameters), SGD Nesterov 0.1, momentum 0.9, weight decay 5e-4",
}


def run_ours(runner, args, threads, engines):
    results = []
    for engine in engines:
        r = runner.run("ours", [common.exe(args, PROGRAM), "--model", args.model, "--engine", engine]
                       + common.data_flags(args) + [
            "--threads", str(threads), "--epochs", str(args.epochs), "--warmup", str(args.warmup),
            "--batches", str(args.batches), "--json"])
        if r is not None and "epoch_seconds_median" in r:
            r["engine"] = engine  # "auto" runs on the BLAS engine by the program's own report
            results.append(r)
    return results


def run_pytorch(runner, args, torch_threads, blas_threads):
    r = runner.run("pytorch", [args.python, os.path.join(common.REPO, "bench", "pytorch_cnn_epoch.py"),
                               "--model", args.model]
                   + common.data_flags(args) + [
                       "--threads", str(torch_threads), "--blas-threads", str(blas_threads),
                       "--epochs", str(args.epochs), "--warmup", str(args.warmup),
                       "--batches", str(args.batches), "--json"])
    if r is not None and "epoch_seconds_median" in r:
        r["_config"] = (torch_threads, blas_threads)
        return r
    return None


def run_products(runner, args, threads, engines):
    results = []
    for engine in engines:
        r = runner.run("products", [common.exe(args, PROGRAM), "--model", args.model, "--engine", engine, "--products",
                                    "--threads", str(threads), "--repeats", str(args.repeats),
                                    "--batches", str(args.batches), "--json"])
        if r is not None and "seconds_per_epoch" in r:
            results.append(r)
    return results


def main(args):
    """Runs the comparison for compare.py's parsed `args` and prints (and writes) the markdown report."""
    args.have_data = all(os.path.isfile(os.path.join(args.data, f)) for f in common.DATA_FILES)
    runner = common.Runner(args)
    started = datetime.datetime.now().astimezone()
    notes, build_commands = [], []
    if not args.no_build:
        common.TARGETS = TARGETS  # this module's copy of compare.py builds the CNN targets
        notes, build_commands = common.build_targets(args)
    engines, default_engine, engine_description, default_mixes = common.engine_info(args)
    if not engines and os.path.exists(common.exe(args, PROGRAM)):
        engines = ["eigen"]  # dlb_gemm_ceiling is missing: the engine every build has
    if not args.have_data:
        notes.append(f"Fashion-MNIST not found in `{args.data}`: all runs use synthetic data of the same "
                     "shapes (timings are unaffected; accuracies are meaningless).")
    if not engines:
        notes.append(f"`{PROGRAM}` is not built in `{args.build}/bench`: only PyTorch ran.")
    for n in notes:
        common.log(f"note: {n}")
    # Where the default mixes the engines, neither forced engine is what a program gets.
    ours_engines = list(engines)
    if engines and default_mixes:
        ours_engines.append("auto")

    collected = {t: ([], [], []) for t in args.threads}
    for rnd in range(args.rounds):
        for threads in args.threads:
            common.log(f"== {args.model}, {threads} thread(s), round {rnd + 1}/{args.rounds}")
            ours, torch_runs, products = collected[threads]
            ours += run_ours(runner, args, threads, ours_engines)
            if threads == 1 or args.pytorch_configs == "matched":
                configs = [(threads, threads)]
            else:
                configs = [(t, b) for t in (1, threads) for b in (1, threads)]
            for t, b in configs:
                r = run_pytorch(runner, args, t, b)
                if r:
                    torch_runs.append(r)
            products += run_products(runner, args, threads, engines)

    out = []
    w = out.append
    goal_vs_pytorch, goal_vs_products = GOALS[args.model]
    w(f"## DLBlocks {args.model} epoch time vs PyTorch and vs the step's products alone")
    w("")
    w(f"- date: {started.strftime('%Y-%m-%d %H:%M %Z')}")
    w(f"- CPU: {common.cpu_model()} ({common.cpu_family_model()}; {os.cpu_count()} logical CPUs; "
      f"{common.cpu_flags_summary()})")
    w(f"- kernel: {platform.release()}; repo: {common.git_revision()}; build dir: `{args.build}`")
    if engine_description:
        w(f"- engines measured: {', '.join(ours_engines)}; the library's own choice here: "
          + ("auto" if "auto" in ours_engines else default_engine) + f" ({engine_description})")
    w(f"- job: {JOBS[args.model]}, batch {BATCH}, {BATCHES_PER_EPOCH} batches/epoch; {args.epochs} timed epochs "
      f"after {args.warmup} warm-up (median)"
      + (f", each epoch timed over its first {args.batches} batches and scaled to {BATCHES_PER_EPOCH}"
         if 0 < args.batches < BATCHES_PER_EPOCH else "")
      + f"; products: median of {args.repeats} epochs; best of {args.rounds} interleaved round(s); "
      f"data: {'Fashion-MNIST' if args.have_data else 'synthetic'}")
    for n in notes:
        w(f"- **note:** {n}")
    w("")
    w("| threads | ours s/epoch (engine) | PyTorch s/epoch (torch×BLAS threads) | ours/PyTorch | "
      "products s/epoch (engine) | ours/products |")
    w("|---|---|---|---|---|---|")
    rows = []
    for threads in args.threads:
        ours, torch_runs, products = collected[threads]
        ours = common.best_per(ours, lambda r: r["engine"], "epoch_seconds_median")
        torch_runs = common.best_per(torch_runs, lambda r: r["_config"], "epoch_seconds_median")
        products = common.best_per(products, lambda r: r["engine"], "seconds_per_epoch")
        rows.append((threads, ours, torch_runs, products))
        o = common.fastest(ours, "epoch_seconds_median")
        p = common.fastest(torch_runs, "epoch_seconds_median")
        c = common.fastest(products, "seconds_per_epoch")
        os_ = o["epoch_seconds_median"] if o else None
        ps = p["epoch_seconds_median"] if p else None
        cs = c["seconds_per_epoch"] if c else None
        vs_torch = os_ / ps if os_ and ps else None
        w(f"| {threads} "
          f"| {common.fmt(os_)} ({o['engine'] if o else '-'}){common.bg_note(o)} "
          f"| {common.fmt(ps)} ({'%d×%d' % p['_config'] if p else '-'}){common.bg_note(p)} "
          f"| {common.verdict(vs_torch, goal_vs_pytorch[threads]) if threads in goal_vs_pytorch else common.fmt(vs_torch, 2)} "
          f"| {common.fmt(cs)} ({c['engine'] if c else '-'}){common.bg_note(c)} "
          f"| {common.verdict(os_ / cs if os_ and cs else None, goal_vs_products)} |")
    w("")
    w(f"Every configuration (s/epoch: best of {args.rounds} round(s); every round's time listed):")
    w("")
    w("| threads | program | config | s/epoch | rounds | GFLOP/s | test acc. | peak RSS MB | bg load |")
    w("|---|---|---|---|---|---|---|---|---|")

    def rounds_cell(r, key):
        return ", ".join(f"{x:.2f}" for x in r["_all"]) if "_all" in r else common.fmt(r[key], 2)

    for threads, ours, torch_runs, products in rows:
        for r in ours:
            w(f"| {threads} | ours | {r['engine']} | {common.fmt(r['epoch_seconds_median'])} "
              f"| {rounds_cell(r, 'epoch_seconds_median')} | {common.fmt(r.get('gflops'), 1)} "
              f"| {common.fmt(r.get('test_accuracy'), 4)} | {common.fmt(r.get('peak_rss_mb'), 0)} | {r['_bg']:.0%} |")
        for r in torch_runs:
            w(f"| {threads} | PyTorch | {r['_config'][0]} torch × {r['_config'][1]} OpenBLAS "
              f"| {common.fmt(r['epoch_seconds_median'])} | {rounds_cell(r, 'epoch_seconds_median')} "
              f"| {common.fmt(r.get('gflops'), 1)} | {common.fmt(r.get('test_accuracy'), 4)} "
              f"| {common.fmt(r.get('peak_rss_mb'), 0)} | {r['_bg']:.0%} |")
        for r in products:
            w(f"| {threads} | products | {r['engine']} | {common.fmt(r['seconds_per_epoch'])} "
              f"| {rounds_cell(r, 'seconds_per_epoch')} | {common.fmt(r.get('gflops'), 1)} | | | {r['_bg']:.0%} |")
    w("")
    return common.finish_report(out, args, runner, build_commands)
