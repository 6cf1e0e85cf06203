#!/usr/bin/python3
"""PyTorch side of the CNN epoch benchmark: a convnet of `train_fashion_mnist`, timed like bench_cnn_epoch.

--model cnn (default): Conv(1->32, 3x3, pad 1)-BatchNorm-ReLU-MaxPool 2 -> Conv(32->64, 3x3, pad 1)-
BatchNorm-ReLU-MaxPool 2 -> Flatten -> Linear(3136->128)-ReLU-Dropout(0.3) -> Linear(128->10), AdamW 2e-3 with weight decay 0.05.
--model resnet: the torchvision-style ResNet of dlb::MakeResNet (tests/python/torch_models.py, the
module our model files load into), SGD with Nesterov momentum 0.9, rate 0.1, weight decay 5e-4.
Kaiming-normal weights (std sqrt(2/fan_in)), zero biases, softmax cross-entropy, batch 128 with the
last partial batch dropped (468 batches per epoch), reshuffled every epoch. Only the training loop is
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
    p.add_argument("--model", choices=("cnn", "resnet"), default="cnn")
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


def build_model(name):
    nn = torch.nn
    if name == "resnet":
        sys.path.insert(0, os.path.join(HERE, os.pardir, "tests", "python"))
        import torch_models  # noqa: E402 (the twin our model files load into)
        model = torch_models.ResNet()
    else:
        model = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))
    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return model


def build_optimizer(name, model):
    if name == "resnet":
        return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    return torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)


def flops_per_step(model, batch):
    """2*m*n*k over the step's products, counted as bench_cnn_epoch counts them: each convolution's
    forward (positions x C_out x C_in kh kw per sample) and weight gradient, each Linear's forward
    and weight gradient, and the input gradient of every such layer but the first."""
    nn = torch.nn
    products = []

    def hook(module, inputs, output):
        per_sample = output[0].numel() * (module.weight[0].numel())
        products.append(2.0 * batch * per_sample)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    model.train(was_training)
    for h in handles:
        h.remove()
    return sum(p * (2 if i == 0 else 3) for i, p in enumerate(products))


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

    model = build_model(args.model)
    loss_fn = torch.nn.CrossEntropyLoss()
    optimizer = build_optimizer(args.model, model)
    generator = torch.Generator().manual_seed(args.seed)

    times, loss = base.train_timed(model, loss_fn, optimizer, x_timed, y_timed, args, generator,
                                   scale=batches / timed)

    model.eval()
    start = time.perf_counter()
    accuracy = base.evaluate(model, x_test, y_test, args.batch)
    inference_seconds = time.perf_counter() - start

    median = statistics.median(times)
    flops_epoch = flops_per_step(model, args.batch) * batches
    result = {
        "model": args.model,
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
    print(f"pytorch {torch.__version__} {args.model} threads={result['threads']} blas_threads={result['blas_threads']} "
          f"batch={args.batch}: {median:.3f} s/epoch (median of {args.epochs}; {timed} of {batches} batches timed), "
          f"{result['samples_per_second']:.0f} samples/s, {result['gflops']:.1f} GFLOP/s, "
          f"test accuracy {accuracy:.4f}, peak RSS {result['peak_rss_mb']:.0f} MB"
          f"{' [synthetic data]' if args.synthetic else ''}")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
