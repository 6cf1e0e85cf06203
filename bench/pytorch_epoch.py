#!/usr/bin/python3
"""PyTorch side of the epoch benchmark: the same MLP training job DLBlocks runs, timed the same way.

MLP 784-350-250-150-50-10 (ReLU), Kaiming-normal weights (std sqrt(2/fan_in)), zero biases,
softmax cross-entropy, batch 256 with the last partial batch dropped (234 batches per epoch on
60,000 images), reshuffled every epoch. Only the training loop (shuffle, batch gather, forward,
backward, optimizer step) is timed; the median over the epochs after the warm-up is reported.

Thread knobs: --threads sets torch.set_num_threads (ATen's OpenMP pool: elementwise ops,
reductions, ...). Float32 matrix products go to the system BLAS (on Debian: OpenBLAS through
libblas.so.3), whose own pool is sized by --blas-threads via OPENBLAS_NUM_THREADS. Both must be
fixed before torch (and numpy, which loads the same OpenBLAS) is imported, so this script parses
its arguments first and imports them afterwards.

Run with the system interpreter from a neutral directory, e.g.
  cd /tmp && /usr/bin/python3 /path/to/bench/pytorch_epoch.py --synthetic --threads 2 --json
"""

import argparse
import ctypes
import gzip
import json
import os
import resource
import statistics
import struct
import sys
import time

DEFAULT_DATA = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "data", "fashion-mnist"))

OPTIMIZERS = ("adam", "sgd", "momentum", "nesterov")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--blas-threads", type=int, default=None,
                   help="OpenBLAS threads (OPENBLAS_NUM_THREADS/OMP_NUM_THREADS set before import); "
                        "default: same as --threads")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    p.add_argument("--epochs", type=int, default=5, help="timed epochs (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed epochs first (default 1)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--hidden", default="350,250,150,50", help="hidden widths, comma separated")
    p.add_argument("--data", default=DEFAULT_DATA, help="directory with the Fashion-MNIST IDX .gz files")
    p.add_argument("--synthetic", action="store_true",
                   help="random data of the same shapes instead of --data")
    p.add_argument("--infer-batch", type=int, default=None,
                   help="batch size for the inference pass over the test set (default: --batch)")
    p.add_argument("--foreach", action="store_true",
                   help="use the multi-tensor (foreach) optimizer implementation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="also print one JSON object line")
    args = p.parse_args(argv)
    try:
        args.hidden = [int(h) for h in args.hidden.split(",") if h.strip()]
    except ValueError:
        p.error(f"--hidden: expected comma-separated integers, got {args.hidden!r}")
    if args.blas_threads is None:
        args.blas_threads = args.threads
    for name in ("threads", "blas_threads", "epochs", "batch"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    if not args.hidden or min(args.hidden) < 1:
        p.error("--hidden: widths must be >= 1")
    if args.infer_batch is None:
        args.infer_batch = args.batch
    return args


# Arguments first: OpenBLAS sizes its thread pool from the environment when it is loaded.
ARGS = parse_args()
os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.blas_threads)
os.environ["OMP_NUM_THREADS"] = str(ARGS.blas_threads)

import numpy as np  # noqa: E402  (after the environment is set)
import torch  # noqa: E402

INPUTS = 784
CLASSES = 10
TRAIN = 60000
TEST = 10000


def openblas():
    """The OpenBLAS library mapped into this process (ctypes handle), or None."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_num_threads  # noqa: B018  (raises AttributeError if absent)
        except (OSError, AttributeError):
            continue
        lib.openblas_get_config.restype = ctypes.c_char_p
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib
    return None


def read_idx(path, magic):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = magic & 0xFF
    found = struct.unpack(">I", raw[:4])[0]
    if found != magic:
        raise SystemExit(f"{path}: magic {found:#x}, expected {magic:#x}")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise SystemExit(f"{path}: {data.size} bytes of data, header says {dims}")
    return data.reshape(dims)


def load_data(args):
    """(x_train, y_train, x_test, y_test) as float32 / int64 numpy arrays, samples x features."""
    if args.synthetic:
        rng = np.random.default_rng(args.seed)
        return (rng.standard_normal((TRAIN, INPUTS), dtype=np.float32),
                rng.integers(0, CLASSES, TRAIN, dtype=np.int64),
                rng.standard_normal((TEST, INPUTS), dtype=np.float32),
                rng.integers(0, CLASSES, TEST, dtype=np.int64))
    files = {
        "x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
        "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz",
    }
    missing = [f for f in files.values() if not os.path.isfile(os.path.join(args.data, f))]
    if missing:
        raise SystemExit(f"{args.data}: missing {', '.join(missing)} (use --synthetic to run without data)")
    x_train = read_idx(os.path.join(args.data, files["x_train"]), 0x803).reshape(-1, INPUTS)
    x_test = read_idx(os.path.join(args.data, files["x_test"]), 0x803).reshape(-1, INPUTS)
    y_train = read_idx(os.path.join(args.data, files["y_train"]), 0x801).astype(np.int64)
    y_test = read_idx(os.path.join(args.data, files["y_test"]), 0x801).astype(np.int64)
    # Pixels to [0, 1], then per-pixel standardisation with the training statistics. Done in
    # float32 in place (statistics accumulated in float64) so the peak RSS reflects the job, not
    # float64 temporaries of the preprocessing.
    x_train = x_train.astype(np.float32)
    x_test = x_test.astype(np.float32)
    x_train /= 255.0
    x_test /= 255.0
    # Two passes in row chunks: np.std would materialise a float64 copy of the whole set.
    chunks = range(0, x_train.shape[0], 8192)
    mean = sum(x_train[i:i + 8192].sum(axis=0, dtype=np.float64) for i in chunks) / x_train.shape[0]
    var = sum(np.square(x_train[i:i + 8192] - mean).sum(axis=0) for i in chunks) / x_train.shape[0]
    std = np.sqrt(var)
    std[std == 0] = 1.0
    mean = mean.astype(np.float32)
    std = std.astype(np.float32)
    for x in (x_train, x_test):
        x -= mean
        x /= std
    return x_train, y_train, x_test, y_test


def build_model(hidden):
    sizes = [INPUTS] + hidden + [CLASSES]
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = torch.nn.Linear(fan_in, fan_out)
        torch.nn.init.kaiming_normal_(linear.weight, mode="fan_in", nonlinearity="relu")  # std sqrt(2/fan_in)
        torch.nn.init.zeros_(linear.bias)
        layers.append(linear)
        if i + 2 < len(sizes):
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def make_optimizer(name, params, foreach):
    extra = {"foreach": True} if foreach else {}
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3, **extra)
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.2, **extra)
    if name == "momentum":
        return torch.optim.SGD(params, lr=0.05, momentum=0.9, **extra)
    return torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True, **extra)


def flops_per_step(hidden, batch):
    """2*m*n*k over the 14 products of a step: forward and dW for every layer, dX for all but the first."""
    sizes = [INPUTS] + hidden + [CLASSES]
    macs = [i * o for i, o in zip(sizes[:-1], sizes[1:])]
    return 2.0 * batch * (2 * sum(macs) + sum(macs[1:]))


def train_epoch(model, loss_fn, optimizer, x, y, batch, generator):
    batches = x.shape[0] // batch  # drop_last
    perm = torch.randperm(x.shape[0], generator=generator)
    loss = None
    for b in range(batches):
        idx = perm[b * batch:(b + 1) * batch]
        xb = x.index_select(0, idx)
        yb = y.index_select(0, idx)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
    return float(loss) if loss is not None else float("nan")


def evaluate(model, x, y, batch):
    correct = 0
    with torch.inference_mode():
        for start in range(0, x.shape[0], batch):
            logits = model(x[start:start + batch])
            correct += int((logits.argmax(dim=1) == y[start:start + batch]).sum())
    return correct / x.shape[0]


def set_up_threads(args):
    """torch's threads (--threads), its seed (--seed) and OpenBLAS's threads (--blas-threads).
    Returns the OpenBLAS library handle, or None."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    blas = openblas()
    if blas is not None and blas.openblas_get_num_threads() != args.blas_threads:
        blas.openblas_set_num_threads(args.blas_threads)
    return blas


def train_timed(model, loss_fn, optimizer, x, y, args, generator, scale=1.0):
    """Trains --warmup + --epochs epochs on (x, y) in batches of --batch; returns the seconds of
    each epoch after the warm-up, times `scale`, and the last epoch's loss."""
    model.train()
    times = []
    loss = float("nan")
    for epoch in range(args.warmup + args.epochs):
        start = time.perf_counter()
        loss = train_epoch(model, loss_fn, optimizer, x, y, args.batch, generator)
        elapsed = (time.perf_counter() - start) * scale
        if epoch >= args.warmup:
            times.append(elapsed)
    return times, loss


def main(args):
    blas = set_up_threads(args)

    x_train, y_train, x_test, y_test = load_data(args)
    if x_train.shape[0] < args.batch:
        raise SystemExit(f"--batch {args.batch} is larger than the training set ({x_train.shape[0]})")
    x_train = torch.from_numpy(np.ascontiguousarray(x_train))
    y_train = torch.from_numpy(np.ascontiguousarray(y_train))
    x_test = torch.from_numpy(np.ascontiguousarray(x_test))
    y_test = torch.from_numpy(np.ascontiguousarray(y_test))

    model = build_model(args.hidden)
    loss_fn = torch.nn.CrossEntropyLoss()
    optimizer = make_optimizer(args.optimizer, model.parameters(), args.foreach)
    generator = torch.Generator().manual_seed(args.seed)

    times, loss = train_timed(model, loss_fn, optimizer, x_train, y_train, args, generator)

    model.eval()
    evaluate(model, x_test, y_test, args.infer_batch)  # warm-up
    infer_times = []
    accuracy = 0.0
    for _ in range(3):
        start = time.perf_counter()
        accuracy = evaluate(model, x_test, y_test, args.infer_batch)
        infer_times.append(time.perf_counter() - start)

    batches = x_train.shape[0] // args.batch
    median = statistics.median(times)
    flops_epoch = flops_per_step(args.hidden, args.batch) * batches
    result = {
        "engine": "pytorch",
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "blas_threads": blas.openblas_get_num_threads() if blas is not None else None,
        "blas": blas.openblas_get_config().decode() if blas is not None else None,
        "blas_core": blas.openblas_get_corename().decode() if blas is not None else None,
        "batch": args.batch,
        "hidden": args.hidden,
        "optimizer": args.optimizer,
        "foreach": args.foreach,
        "data": "synthetic" if args.synthetic else os.path.abspath(args.data),
        "epochs": args.epochs,
        "warmup": args.warmup,
        "batches_per_epoch": batches,
        "epoch_seconds_median": median,
        "epoch_seconds_all": times,
        "samples_per_second": batches * args.batch / median,
        "gflops": flops_epoch / median * 1e-9,
        "gflop_per_epoch": flops_epoch * 1e-9,
        "inference_batch": args.infer_batch,
        "inference_samples_per_second": x_test.shape[0] / statistics.median(infer_times),
        "test_accuracy": accuracy,
        "final_train_loss": loss,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    print(f"pytorch {torch.__version__} threads={result['threads']} blas_threads={result['blas_threads']} "
          f"batch={args.batch} hidden={','.join(map(str, args.hidden))} {args.optimizer}: "
          f"{median:.4f} s/epoch (median of {args.epochs}), {result['samples_per_second']:.0f} samples/s, "
          f"{result['gflops']:.1f} GFLOP/s, inference {result['inference_samples_per_second']:.0f} samples/s, "
          f"test accuracy {accuracy:.4f}, peak RSS {result['peak_rss_mb']:.0f} MB"
          f"{' [synthetic data]' if args.synthetic else ''}")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
