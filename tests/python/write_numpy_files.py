"""Writes model files with json + numpy only, for `safetensors_interop check DIR`:

  numpy_model.safetensors       a 6-5-4-3 network (LeakyReLU, Tanh) with random float32
                                weights, its architecture and preprocessing in the metadata
                                in DLBlocks' format
  numpy_torchstyle.safetensors  the same tensors as PyTorch's save_file writes them, with
                                only {"format": "pt"} as metadata
  numpy_reference.safetensors   inputs and numpy's float64 logits for them

Usage: write_numpy_files.py DIR
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_numpy as st  # noqa: E402


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: write_numpy_files.py DIR")
    directory = sys.argv[1]
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(2024)
    alpha = float(np.float32(0.1))  # the LeakyReLU slope as a float model holds it
    architecture = {
        "input_shape": [6, 1, 1],
        "layers": [
            {"type": "Linear", "args": {"in": 6, "out": 5}},
            {"type": "LeakyReLU", "args": {"alpha": alpha}},
            {"type": "Linear", "args": {"in": 5, "out": 4}},
            {"type": "Tanh", "args": {}},
            {"type": "Linear", "args": {"in": 4, "out": 3}},
        ],
    }
    tensors = {}
    for index, (fan_in, fan_out) in {0: (6, 5), 2: (5, 4), 4: (4, 3)}.items():
        tensors[f"{index}.weight"] = rng.normal(0, 0.8, (fan_out, fan_in)).astype(np.float32)
        tensors[f"{index}.bias"] = rng.normal(0, 0.3, fan_out).astype(np.float32)
    mean = rng.uniform(0, 5, 6).astype(np.float32)
    std = rng.uniform(0.5, 2, 6).astype(np.float32)
    # float32 values printed by repr(float(...)) read back exactly.
    preprocessing = {"standardize": {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}}
    metadata = {
        "format": "dlblocks.model",
        "format_version": "1",  # the layout before named layers: still read
        "library_version": "numpy",
        "dtype": "F32",
        "architecture": json.dumps(architecture),
        "preprocessing": json.dumps(preprocessing),
    }
    st.write(os.path.join(directory, "numpy_model.safetensors"), tensors, metadata)
    st.write(os.path.join(directory, "numpy_torchstyle.safetensors"), tensors, {"format": "pt"})

    x = rng.uniform(0, 10, (9, 6))
    logits = st.forward(architecture, tensors, x, preprocessing)
    st.write(os.path.join(directory, "numpy_reference.safetensors"), {"input": x, "logits": logits})
    print(f"wrote numpy_model, numpy_torchstyle and numpy_reference .safetensors to {directory}")


if __name__ == "__main__":
    main()
