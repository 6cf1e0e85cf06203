#!/usr/bin/env python3
"""Decodes ONNX models with the onnx package (protobuf's own parser) and compares each with
what its writer says it holds: the reading side of the property test of DLBlocks' protobuf
encoder and ONNX builder (tests/test_onnx_runtime.cpp).

    compare_decoded.py DIR

For every DIR/NAME.onnx there is a DIR/NAME.json describing the model the C++ side built:

    {"ir_version": 8, "producer_name": "...", "producer_version": "...",
     "opsets": [["", 17]], "graph_name": "...",
     "nodes": [{"name", "op_type", "inputs": [...], "outputs": [...],
                "attributes": [{"name", "type": "INT|INTS|FLOAT|FLOATS|STRING", "value"}]}],
     "initializers": [{"name", "data_type", "dims", "raw_data": hex} or {..., "int64_data"}],
     "inputs": [{"name", "elem_type", "shape": [int for dim_value, string for dim_param]}],
     "outputs": [same]}

Floats are compared as their IEEE-754 bit patterns (an integer in the JSON), so -0.0, NaN,
infinities and subnormals must survive exactly; strings of bytes as hex. Prints the first
difference of each model that differs and exits 1; prints a summary and exits 0 otherwise.
Does not run the checker: the graphs hold made-up operators.
"""

import json
import pathlib
import struct
import sys

import onnx
from onnx import AttributeProto


def float_bits(value):
    return struct.unpack("<I", struct.pack("<f", value))[0]


def attribute(a):
    kinds = {
        AttributeProto.INT: ("INT", lambda: a.i),
        AttributeProto.INTS: ("INTS", lambda: list(a.ints)),
        AttributeProto.FLOAT: ("FLOAT", lambda: float_bits(a.f)),
        AttributeProto.FLOATS: ("FLOATS", lambda: [float_bits(f) for f in a.floats]),
        AttributeProto.STRING: ("STRING", lambda: a.s.hex()),
    }
    if a.type not in kinds:
        return {"name": a.name, "type": f"unexpected type {a.type}"}
    kind, value = kinds[a.type]
    return {"name": a.name, "type": kind, "value": value()}


def value_info(v):
    shape = []
    for d in v.type.tensor_type.shape.dim:
        which = d.WhichOneof("value")
        shape.append(d.dim_value if which == "dim_value" else
                     d.dim_param if which == "dim_param" else None)
    return {"name": v.name, "elem_type": v.type.tensor_type.elem_type, "shape": shape}


def initializer(t):
    out = {"name": t.name, "data_type": t.data_type, "dims": list(t.dims)}
    if t.data_type == onnx.TensorProto.INT64:
        out["int64_data"] = list(t.int64_data)
    else:
        out["raw_data"] = t.raw_data.hex()
    return out


def describe(model):
    g = model.graph
    return {
        "ir_version": model.ir_version,
        "producer_name": model.producer_name,
        "producer_version": model.producer_version,
        "opsets": [[o.domain, o.version] for o in model.opset_import],
        "graph_name": g.name,
        "nodes": [{"name": n.name, "op_type": n.op_type, "inputs": list(n.input),
                   "outputs": list(n.output), "attributes": [attribute(a) for a in n.attribute]}
                  for n in g.node],
        "initializers": [initializer(t) for t in g.initializer],
        "inputs": [value_info(v) for v in g.input],
        "outputs": [value_info(v) for v in g.output],
    }


def first_difference(actual, expected, where="model"):
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(actual) | set(expected)):
            if key not in actual or key not in expected:
                return f"{where}.{key}: present on one side only"
            found = first_difference(actual[key], expected[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        if len(actual) != len(expected):
            return f"{where}: {len(actual)} entries decoded, {len(expected)} written"
        for i, (a, e) in enumerate(zip(actual, expected)):
            found = first_difference(a, e, f"{where}[{i}]")
            if found:
                return found
        return None
    if actual != expected or type(actual) is not type(expected):
        return f"{where}: decoded {actual!r}, written {expected!r}"
    return None


def main():
    if len(sys.argv) != 2:
        print("usage: compare_decoded.py DIR", file=sys.stderr)
        return 2
    folder = pathlib.Path(sys.argv[1])
    models = sorted(folder.glob("*.onnx"))
    if not models:
        print(f"compare_decoded: no .onnx files in {folder}", file=sys.stderr)
        return 1
    failures = 0
    counts = [0, 0, 0]
    for path in models:
        expected = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        try:
            actual = describe(onnx.load(str(path)))
        except Exception as error:  # a parse error is a finding like any difference
            print(f"compare_decoded: {path.name}: onnx.load failed: {error}", file=sys.stderr)
            failures += 1
            continue
        difference = first_difference(actual, expected)
        if difference:
            print(f"compare_decoded: {path.name}: {difference}", file=sys.stderr)
            failures += 1
        counts[0] += len(actual["nodes"])
        counts[1] += sum(len(n["attributes"]) for n in actual["nodes"])
        counts[2] += len(actual["initializers"])
    print(f"compare_decoded: {len(models) - failures} of {len(models)} models decode as written "
          f"({counts[0]} nodes, {counts[1]} attributes, {counts[2]} initializers; "
          f"onnx {onnx.__version__})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
