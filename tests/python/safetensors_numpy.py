"""Safetensors files and DLBlocks models with nothing but the standard library's json and numpy.

An independent implementation of what DLBlocks writes and reads, for the interoperability
tests: if this module and dlb/io/ disagree on the format, the tests fail. It also shows how
little a Python user needs to use a DLBlocks model file without PyTorch.
"""

import json
import struct

import numpy as np

# safetensors dtype names -> little-endian numpy types (the four DLBlocks reads and writes).
DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8"), "U64": np.dtype("<u8")}
NAMES = {dtype: name for name, dtype in DTYPES.items()}


def read(path):
    """Returns (tensors, metadata): tensors maps names to numpy arrays in data order."""
    with open(path, "rb") as file:
        data = file.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    body = data[8 + length:]
    tensors = {}
    for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"]):
        begin, end = entry["data_offsets"]
        array = np.frombuffer(body[begin:end], dtype=DTYPES[entry["dtype"]])
        tensors[name] = array.reshape(entry["shape"])
    return tensors, metadata


def write(path, tensors, metadata=None):
    """Writes tensors (name -> numpy array) as safetensors.torch.save_file does: names sorted
    by decreasing element size then name, header padded with spaces to a multiple of 8."""
    names = sorted(tensors, key=lambda name: (-tensors[name].dtype.itemsize, name))
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    chunks = []
    for name in names:
        # np.asarray, not np.ascontiguousarray, which turns a 0-d array (a scalar) into shape [1].
        array = np.asarray(tensors[name], order="C")
        dtype = array.dtype.newbyteorder("<")
        raw = array.astype(dtype).tobytes()
        header[name] = {"dtype": NAMES[dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        chunks.append(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def forward(architecture, tensors, x, preprocessing=None):
    """Logits (N x classes) of the samples x (N x features) in float64: the preprocessing,
    then each layer of the architecture in inference mode."""
    h = np.asarray(x, dtype=np.float64)
    if preprocessing:
        standardize = preprocessing["standardize"]
        h = (h - np.array(standardize["mean"])) / np.array(standardize["std"])
    for index, layer in enumerate(architecture["layers"]):
        kind, args = layer["type"], layer["args"]
        name = layer.get("name", str(index))  # format version 1 named layers by their index
        if kind == "Linear":
            weight = tensors[f"{name}.weight"].astype(np.float64)
            bias = tensors[f"{name}.bias"].astype(np.float64)
            h = h @ weight.T + bias
        elif kind == "ReLU":
            h = np.maximum(h, 0.0)
        elif kind == "LeakyReLU":
            h = np.where(h > 0, h, args["alpha"] * h)
        elif kind == "Sigmoid":
            h = 1.0 / (1.0 + np.exp(-h))
        elif kind == "Tanh":
            h = np.tanh(h)
        elif kind == "Dropout":
            pass  # identity in inference
        else:
            raise ValueError(f"layer {index}: no numpy forward for {kind}")
    return h


def require(condition, message):
    if not condition:
        raise SystemExit("FAILED: " + message)
