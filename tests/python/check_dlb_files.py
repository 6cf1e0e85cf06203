"""Reads the files tests/tools/safetensors_interop.cpp wrote (`safetensors_interop write DIR`)
with json + numpy only and checks them against what the C++ side put in:

  model.safetensors       names, dtypes, shapes and values of torch.nn.Sequential's
                          state_dict (values from formulas both sides know), the metadata,
                          and logits recomputed by numpy from the file alone
  checkpoint.safetensors  optimizer, data order and generator tensors with their types

Usage: check_dlb_files.py DIR    (exit code 0 when everything matches)
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_numpy as st  # noqa: E402
from safetensors_numpy import require  # noqa: E402


def check_model(directory):
    tensors, metadata = st.read(os.path.join(directory, "model.safetensors"))
    require(metadata["format"] == "dlblocks.model", f"format {metadata.get('format')}")
    require(metadata["format_version"] == "2", "format_version")
    require(metadata["dtype"] == "F32", "dtype")
    architecture = json.loads(metadata["architecture"])
    require(architecture["input_shape"] == [6, 1, 1], f"input_shape {architecture['input_shape']}")
    types = [layer["type"] for layer in architecture["layers"]]
    names = [layer["name"] for layer in architecture["layers"]]
    require(names == [str(i) for i in range(10)], f"layer names {names}")
    require(types == ["Linear", "ReLU", "Linear", "LeakyReLU", "Linear", "Sigmoid", "Dropout",
                      "Linear", "Tanh", "Linear"], f"layer types {types}")

    # torch.nn.Sequential's state_dict: "<index>.weight" (out x in), "<index>.bias" (out).
    sizes = {0: (5, 6), 2: (5, 5), 4: (4, 5), 7: (4, 4), 9: (3, 4)}
    expected_names = [f"{layer}.{kind}" for layer in sizes for kind in ("weight", "bias")]
    require(list(tensors) == expected_names, f"tensor names {list(tensors)}")
    for layer, (rows, cols) in sizes.items():
        weight, bias = tensors[f"{layer}.weight"], tensors[f"{layer}.bias"]
        require(weight.dtype == np.float32 and weight.shape == (rows, cols),
                f"{layer}.weight is {weight.dtype} {weight.shape}")
        require(bias.dtype == np.float32 and bias.shape == (rows,), f"{layer}.bias is {bias.dtype} {bias.shape}")
        flat = np.arange(rows * cols).reshape(rows, cols)
        require(np.array_equal(weight, (((layer + 1) * 64 - 3 * flat) / 256).astype(np.float32)),
                f"{layer}.weight values")
        require(np.array_equal(bias, (((layer + 1) * 8 - np.arange(rows)) / 32).astype(np.float32)),
                f"{layer}.bias values")

    preprocessing = json.loads(metadata["preprocessing"])
    mean = np.array(preprocessing["standardize"]["mean"], dtype=np.float32)
    std = np.array(preprocessing["standardize"]["std"], dtype=np.float32)
    require(np.array_equal(mean, np.arange(6) / 4) and np.array_equal(std, 1 + np.arange(6) / 8),
            "preprocessing statistics")

    reference, _ = st.read(os.path.join(directory, "reference.safetensors"))
    logits = st.forward(architecture, tensors, reference["input"], preprocessing)
    require(np.allclose(reference["logits64"], logits, rtol=1e-12, atol=1e-12),
            f"double logits differ from numpy's by {np.abs(reference['logits64'] - logits).max()}")
    require(np.allclose(reference["logits"], logits, rtol=1e-5, atol=1e-6),
            f"float logits differ from numpy's by {np.abs(reference['logits'] - logits).max()}")
    require(np.array_equal(reference["logits"].argmax(axis=1), logits.argmax(axis=1)), "classes")


def check_checkpoint(directory):
    tensors, metadata = st.read(os.path.join(directory, "checkpoint.safetensors"))
    require(metadata["format"] == "dlblocks.checkpoint", "checkpoint format")
    require(metadata["epoch"] == "1" and metadata["optimizer"] == "Adam", "checkpoint epoch/optimizer")
    order = tensors["data.order"]
    require(order.dtype == np.int64 and np.array_equal(np.sort(order), np.arange(7)),
            f"data.order {order}")
    # dlb::Generator (MT19937-64): its 312 state words, then its position.
    generator = tensors["data.generator"]
    require(generator.dtype == np.uint64 and generator.shape == (313,) and generator[312] <= 312,
            f"data.generator is {generator.dtype} {generator.shape}, not mt19937_64's state")
    require(tensors["6.generator"].dtype == np.uint64, "the Dropout layer's generator")
    require(tensors["optimizer.step"].dtype == np.int64 and tensors["optimizer.step"].shape == ()
            and int(tensors["optimizer.step"]) == 3, f"optimizer.step {tensors['optimizer.step']}")
    require(tensors["optimizer.lr"].dtype == np.float64 and float(tensors["optimizer.lr"]) == float(np.float32(1e-3)),
            "optimizer.lr")
    for name in ("0.weight", "9.bias"):
        moment = tensors[f"optimizer.{name}.exp_avg"]
        require(moment.shape == tensors[name].shape and moment.dtype == np.float32,
                f"optimizer.{name}.exp_avg")


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: check_dlb_files.py DIR")
    check_model(sys.argv[1])
    check_checkpoint(sys.argv[1])
    print("numpy reads DLBlocks' model and checkpoint files: names, layouts and values match")


if __name__ == "__main__":
    main()
