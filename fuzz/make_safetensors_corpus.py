"""Writes the safetensors fuzzer's seed corpus (fuzz/corpus/safetensors/): small model files
in DLBlocks' format (every layer type, a convnet, float and double, with preprocessing), a checkpoint
with integer tensors, a PyTorch-style file and an empty one; and hostile headers (issue 15):
5,000 empty tensors, deep nesting, duplicate keys in nested objects, control characters in
names and metadata; forged architectures (sizes that overflow, huge paddings, 10,001 layers,
blocks nested 40 deep) and values that make NaN. Run by fuzz/make_corpus.sh; the files are committed and come out
byte-identical every run."""

import json
import os
import struct
import sys

import numpy as np

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "tests", "python"))
import safetensors_numpy as st  # noqa: E402


def values(shape, start, dtype=np.float32):
    count = int(np.prod(shape)) if shape else 1
    return ((np.arange(count) + start) / 8 - 1).reshape(shape).astype(dtype)


def model(layers, inputs, dtype=np.float32, preprocessing=True, form="dlblocks.model"):
    architecture = {"input_shape": [inputs, 1, 1], "layers": []}
    tensors = {}
    width = inputs
    for index, (kind, args) in enumerate(layers):
        if kind == "Linear":
            args = {"in": width, "out": args, "init": "kaiming", "init_std": 0.01}
            tensors[f"{index}.weight"] = values((args["out"], width), index, dtype)
            tensors[f"{index}.bias"] = values((args["out"],), index, dtype)
            width = args["out"]
        architecture["layers"].append({"type": kind, "args": args})
    metadata = {"format": form, "format_version": "1", "library_version": "0.1.0",
                "dtype": "F32" if dtype == np.float32 else "F64",
                "architecture": json.dumps(architecture, separators=(",", ":"))}
    if preprocessing:
        metadata["preprocessing"] = json.dumps(
            {"standardize": {"mean": [0.5] * inputs, "std": [0.25] * inputs}}, separators=(",", ":"))
    return tensors, metadata


def convnet():
    """A convnet with every spatial layer: 1 x 6 x 6 -> Conv2D(1->2, 3x3, pad 1) -> BatchNorm2D
    -> ReLU -> MaxPool2D 2 -> AvgPool2D 3 -> GlobalAvgPool -> BatchNorm1D -> Linear(2->3)."""
    def pair(name, h, w=None):
        return {f"{name}_height": h, f"{name}_width": h if w is None else w}
    conv = {"in_channels": 1, "out_channels": 2, **pair("kernel", 3), **pair("stride", 1),
            **pair("padding", 1), "bias": 1, "init": "kaiming", "init_std": 0.01}
    layers = [("Conv2D", conv), ("BatchNorm2D", {"channels": 2, "eps": 1e-5, "momentum": 0.1}),
              ("ReLU", {}), ("MaxPool2D", {**pair("kernel", 2), **pair("stride", 2)}),
              ("AvgPool2D", {**pair("kernel", 3), **pair("stride", 3)}), ("GlobalAvgPool", {}),
              ("BatchNorm1D", {"features": 2, "eps": 1e-5, "momentum": 0.1}),
              ("Linear", {"in": 2, "out": 3, "init": "kaiming", "init_std": 0.01})]
    tensors = {"0.weight": values((2, 1, 3, 3), 0), "0.bias": values((2,), 1),
               "7.weight": values((3, 2), 7), "7.bias": values((3,), 7)}
    for index in (1, 6):
        tensors[f"{index}.weight"] = values((2,), index)
        tensors[f"{index}.bias"] = values((2,), index)
        tensors[f"{index}.running_mean"] = values((2,), index)
        tensors[f"{index}.running_var"] = np.abs(values((2,), index)) + 1
        tensors[f"{index}.num_batches_tracked"] = np.array(5, dtype=np.int64)
    architecture = {"input_shape": [1, 6, 6],
                    "layers": [{"type": kind, "args": args} for kind, args in layers]}
    metadata = {"format": "dlblocks.model", "format_version": "1", "library_version": "0.1.0",
                "dtype": "F32", "architecture": json.dumps(architecture, separators=(",", ":"))}
    return tensors, metadata


def write_raw(path, header, data=b""):
    """A file of the header text as it is (no JSON encoding: it may be invalid on purpose)."""
    text = header.encode("utf-8")
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(text)) + text + data)


def hostile(out):
    """Headers a stranger may send: each exercises one defence of the reader."""
    empty = '{"dtype":"F32","shape":[0],"data_offsets":[0,0]}'
    # Time and memory linear in the tensor count: nlohmann's callback parser, which the reader
    # once used, and the writer's nlohmann::ordered_json were quadratic (300,000 tensors took
    # more than 10 minutes to read, 100,000 69 s to write). Under the fuzzer's instrumentation
    # this seed took 27 s with them, past the 10 s timeout, and takes 1.7 s now (a loaded
    # 2-core machine). Not more tensors: libFuzzer cuts seeds to 1 MB without -max_len, and
    # a slow seed eats a short run's time.
    write_raw(os.path.join(out, "many-tensors.safetensors"),
              "{" + ",".join(f'"{i}":{empty}' for i in range(5000)) + "}")
    # Nesting: beyond the 64 levels the reader allows, and just within them.
    write_raw(os.path.join(out, "deep-arrays.safetensors"), '{"w":' + "[" * 1000 + "]" * 1000 + "}")
    write_raw(os.path.join(out, "deep-objects.safetensors"), '{"a":' * 100 + "1" + "}" * 100)
    write_raw(os.path.join(out, "deep-metadata.safetensors"),
              '{"__metadata__":{"a":' + "[" * 62 + "]" * 62 + "}}")
    # Duplicate keys at depth 1, 2 and 4, the last where nothing else looks.
    write_raw(os.path.join(out, "duplicate-nested.safetensors"),
              '{"w":{"dtype":"F32","dtype":"F64","shape":[0],"data_offsets":[0,0]}}')
    write_raw(os.path.join(out, "duplicate-deep.safetensors"),
              '{"w":{"dtype":"F32","shape":[0],"data_offsets":[0,0],"x":[{"k":1,"k":2}]}}')
    write_raw(os.path.join(out, "duplicate-metadata.safetensors"),
              '{"__metadata__":{"a":"1"},"__metadata__":{"a":"1"}}')
    # Control characters, C1, a bidi override and escapes in names, keys and metadata.
    forged = "\\n\\u001b[2JAccuracy: 0.9999\\u009b\\u202e"
    write_raw(os.path.join(out, "control-characters.safetensors"),
              '{"__metadata__":{"library_version":"0.1.0' + forged + '","k' + forged + '":"v"},'
              '"w' + forged + '":' + empty + '}')
    write_raw(os.path.join(out, "control-characters-rejected.safetensors"),
              '{"e":{"dtype":"F32' + forged + '","shape":[0],"data_offsets":[0,0]},'
              '"k' + forged + '":{"dtype":"F32","shape":[0],"data_offsets":[0,0],"x' + forged + '":1}}')


def forged(out):
    """Model files whose header is valid but whose architecture or values are hostile: each
    was once a crash, an unbounded allocation or a silent NaN."""
    def conv(padding):
        return {"in_channels": 1, "out_channels": 1, "kernel_height": 1, "kernel_width": 1,
                "stride_height": 1, "stride_width": 1, "padding_height": padding,
                "padding_width": padding, "bias": 0, "init": "kaiming", "init_std": 0.01}

    def write(name, architecture, tensors, preprocessing=None):
        metadata = {"format": "dlblocks.model", "format_version": "2", "library_version": "0.1.0",
                    "dtype": "F32", "architecture": json.dumps(architecture, separators=(",", ":"))}
        if preprocessing is not None:
            metadata["preprocessing"] = json.dumps(preprocessing, separators=(",", ":"))
        st.write(os.path.join(out, name), tensors, metadata)

    one_weight = {"0.weight": np.ones((1, 1, 1, 1), dtype=np.float32)}
    # Padding 2^61: the output size overflowed and im2col wrote past its buffer.
    write("forged-padding-overflow.safetensors",
          {"input_shape": [1, 2, 2], "layers": [{"name": "0", "type": "Conv2D", "args": conv(2**61)}]},
          one_weight)
    # Padding 10^9: a valid size whose activations no machine holds.
    write("forged-padding-huge.safetensors",
          {"input_shape": [1, 2, 2], "layers": [{"name": "0", "type": "Conv2D", "args": conv(10**9)}]},
          one_weight)
    # 10,001 ReLU layers before a Linear: one activation buffer each (LoadOptions::max_layers).
    layers = [{"name": str(i), "type": "ReLU", "args": {}} for i in range(10001)]
    layers.append({"name": "10001", "type": "Linear",
                   "args": {"in": 2, "out": 1, "init": "kaiming", "init_std": 0.01}})
    write("forged-many-layers.safetensors", {"input_shape": [2, 1, 1], "layers": layers},
          {"10001.weight": np.ones((1, 2), dtype=np.float32),
           "10001.bias": np.zeros((1,), dtype=np.float32)})
    # Blocks nested 40 deep (LoadOptions::max_depth).
    block = {"name": "0", "type": "ReLU", "args": {}}
    for _ in range(40):
        block = {"name": "0", "type": "Sequential", "args": {}, "layers": [block]}
    write("forged-deep-blocks.safetensors", {"input_shape": [2, 1, 1], "layers": [block]}, {})
    # Values that make NaN: a negative running variance, an eps of 1e300, a subnormal std.
    bn = {"name": "0", "type": "BatchNorm1D", "args": {"features": 2, "eps": 1e-5, "momentum": 0.1}}
    bn_tensors = {"0.weight": np.ones(2, dtype=np.float32), "0.bias": np.zeros(2, dtype=np.float32),
                  "0.running_mean": np.zeros(2, dtype=np.float32),
                  "0.running_var": np.array([1, -1], dtype=np.float32),
                  "0.num_batches_tracked": np.array(5, dtype=np.int64)}
    write("nan-negative-variance.safetensors", {"input_shape": [2, 1, 1], "layers": [bn]}, bn_tensors)
    huge_eps = dict(bn, args={"features": 2, "eps": 1e300, "momentum": 0.1})
    bn_tensors = dict(bn_tensors, **{"0.running_var": np.ones(2, dtype=np.float32)})
    write("nan-huge-eps.safetensors", {"input_shape": [2, 1, 1], "layers": [huge_eps]}, bn_tensors)
    write("nan-subnormal-std.safetensors", {"input_shape": [2, 1, 1], "layers": [bn]}, bn_tensors,
          {"standardize": {"mean": [0.5, 0.5], "std": [1e-45, 0.25]}})

def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    st.write(os.path.join(out, "mlp.safetensors"),
             *model([("Linear", 2), ("ReLU", {}), ("Linear", 2)], 3))
    st.write(os.path.join(out, "every-layer.safetensors"),
             *model([("Linear", 3), ("LeakyReLU", {"alpha": 0.25}), ("Linear", 3), ("Sigmoid", {}),
                     ("Dropout", {"p": 0.5}), ("Tanh", {}), ("Linear", 2)], 4, preprocessing=False))
    st.write(os.path.join(out, "convnet.safetensors"), *convnet())
    st.write(os.path.join(out, "double.safetensors"),
             *model([("Linear", 2), ("Tanh", {}), ("Linear", 1)], 2, dtype=np.float64))
    tensors, metadata = model([("Linear", 2)], 2, preprocessing=False, form="dlblocks.checkpoint")
    tensors["optimizer.step"] = np.array(3, dtype=np.int64)
    tensors["optimizer.lr"] = np.array(0.5, dtype=np.float64)
    tensors["data.order"] = np.array([2, 0, 1], dtype=np.int64)
    tensors["data.generator"] = np.arange(4, dtype=np.uint64)
    metadata.update({"epoch": "1", "optimizer": "SGD", "train_samples": "3", "train_batch_size": "1",
                     "history": "[]"})
    st.write(os.path.join(out, "checkpoint.safetensors"), tensors, metadata)
    tensors, _ = model([("Linear", 2), ("ReLU", {}), ("Linear", 2)], 3)
    st.write(os.path.join(out, "torch-style.safetensors"), tensors, {"format": "pt"})
    st.write(os.path.join(out, "empty.safetensors"), {})
    hostile(out)
    forged(out)


if __name__ == "__main__":
    main()
