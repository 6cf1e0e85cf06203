#!/usr/bin/python3
"""PyTorch side of the CNN epoch benchmark: the convnet of `train_fashion_mnist --model cnn`, timed like bench_cnn_epoch.

Conv(1->32, 3x3, pad 1)-BatchNorm-ReLU-MaxPool 2 -> Conv(32->64, 3x3, pad 1)-BatchNorm-ReLU-MaxPool 2
-> Flatten -> Linear(3136->128)-ReLU-Dropout(0.3) -> Linear(128->10), Kaiming-normal weights
(std sqrt(2/fan_in)), zero biases, softmax cross-entropy, Adam 1e-3, batch 128 with the last
partial batch dropped (468 batches per epoch), reshuffled every epoch. Only the training loop is
timed (shuffle, batch gather, forward, backward, optimizer step); the median over the epochs after
the warm-up is reported. --batches N times the first N batches of each epoch and scales the time
to the whole epoch.

Data loading, the thread set-up and the training loop are bench/pytorch_epoch.py's (imported; it
reads --threads and --blas-threads and sets the BLAS environment before torch is imported), so
both benchmarks treat PyTorch alike.

Run with the system interpreter from a neutral directory, e.g.
  cd /tmp && /usr/bin/python3 /path/to/bench/pytorch_cnn_epoch.py --synthetic --threads 2 --json
"""

import argparse
import os
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.normpath(os.path.join(HERE, os.pardir, "data", "fashion-mnist"))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--blas-threads", type=int, default=None, help="OpenBLAS threads (default: --threads)")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs (default 2)")
    p.add_argument("--warmup", type=int, default=1, help="untimed epochs first (default 1)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--batches", type=int, default=0, help="time only the first N batches of each epoch (0: all)")
    p.add_argument("--data", default=DEFAULT_DATA, help="directory with the Fashion-MNIST IDX .gz files")
    p.add_argument("--synthetic", action="store_true", help="random data of the same shapes instead of --data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="also print one JSON object line")
    args = p.parse_args(argv)
    if args.blas_threads is None:
        args.blas_threads = args.threads
    for name in ("threads", "blas_threads", "epochs", "batch"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0 or args.batches < 0:
        p.error("--warmup and --batches must be >= 0")
    return args


ARGS = parse_args()
# pytorch_epoch parses sys.argv when it is imported and sets the BLAS thread environment before
# importing numpy and torch: hand it exactly our thread settings.
sys.argv = [os.path.join(HERE, "pytorch_epoch.py"), "--threads", str(ARGS.threads),
            "--blas-threads", str(ARGS.blas_threads)]
sys.path.insert(0, HERE)
import pytorch_epoch as base  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402


def build_model():
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))
    for layer in model:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    return model


def flops_per_step(batch):
    """2*m*n*k over the step's products, counted as in bench_cnn_epoch (cnn::TrainingStepFlops):
    each convolution's forward and weight gradient, the second one's input gradient, and
    forward, weight and input gradient of both Linear layers."""
    conv1 = 2.0 * batch * 28 * 28 * 32 * 9
    conv2 = 2.0 * batch * 14 * 14 * 64 * 32 * 9
    linear1 = 2.0 * 128 * batch * 3136
    linear2 = 2.0 * 10 * batch * 128
    return 2 * conv1 + 3 * conv2 + 3 * linear1 + 3 * linear2


def main(args):
    blas = base.set_up_threads(args)

    x_train, y_train, x_test, y_test = base.load_data(args)
    x_train = torch.from_numpy(np.ascontiguousarray(x_train)).reshape(-1, 1, 28, 28)
    y_train = torch.from_numpy(np.ascontiguousarray(y_train))
    x_test = torch.from_numpy(np.ascontiguousarray(x_test)).reshape(-1, 1, 28, 28)
    y_test = torch.from_numpy(np.ascontiguousarray(y_test))
    batches = x_train.shape[0] // args.batch
    timed = min(args.batches, batches) if args.batches else batches
    # pytorch_epoch.train_timed runs every whole batch of what it is given: the first `timed`
    # batches' worth of samples (reshuffled among themselves each epoch).
    x_timed, y_timed = x_train[:timed * args.batch], y_train[:timed * args.batch]

    model = build_model()
    loss_fn = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(args.seed)

    times, loss = base.train_timed(model, loss_fn, optimizer, x_timed, y_timed, args, generator,
                                   scale=batches / timed)

    model.eval()
    start = time.perf_counter()
    accuracy = base.evaluate(model, x_test, y_test, args.batch)
    inference_seconds = time.perf_counter() - start

    median = statistics.median(times)
    flops_epoch = flops_per_step(args.batch) * batches
    result = {
        "engine": "pytorch",
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "blas_threads": blas.openblas_get_num_threads() if blas is not None else None,
        "batch": args.batch,
        "data": "synthetic" if args.synthetic else os.path.abspath(args.data),
        "epochs": args.epochs,
        "warmup": args.warmup,
        "batches_per_epoch": batches,
        "batches_timed": timed,
        "epoch_seconds_median": median,
        "epoch_seconds_all": times,
        "samples_per_second": batches * args.batch / median,
        "gflops": flops_epoch / median * 1e-9,
        "gflop_per_epoch": flops_epoch * 1e-9,
        "inference_samples_per_second": x_test.shape[0] / inference_seconds,
        "test_accuracy": accuracy,
        "final_train_loss": loss,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    print(f"pytorch {torch.__version__} cnn threads={result['threads']} blas_threads={result['blas_threads']} "
          f"batch={args.batch}: {median:.3f} s/epoch (median of {args.epochs}; {timed} of {batches} batches timed), "
          f"{result['samples_per_second']:.0f} samples/s, {result['gflops']:.1f} GFLOP/s, "
          f"test accuracy {accuracy:.4f}, peak RSS {result['peak_rss_mb']:.0f} MB"
          f"{' [synthetic data]' if args.synthetic else ''}")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
