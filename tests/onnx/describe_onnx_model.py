#!/usr/bin/env python3
"""Prints what an ONNX model holds, as JSON, read by the onnx package (protobuf's parser).

    describe_onnx_model.py MODEL.onnx

Output: {"opset": [[domain, version], ...], "ir_version": n,
         "inputs": [{"name", "dims"}], "outputs": [{"name", "dims"}],
         "initializers": [{"name", "dims"}],
         "nodes": [{"name", "op_type", "inputs", "outputs"}]}
where a dimension is an integer or the name of a dynamic one ("N"). tests/test_onnx_export.cpp
reads it to check the names and shapes ExportOnnx writes. Exit 1 when the file does not load.
"""

import json
import sys

import onnx


def dims(value_info):
    shape = value_info.type.tensor_type.shape
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in shape.dim]


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: describe_onnx_model.py MODEL.onnx", file=sys.stderr)
        return 2
    try:
        model = onnx.load(sys.argv[1])
    except Exception as error:  # noqa: BLE001 - any failure to parse is reported
        print(f"describe_onnx_model: {sys.argv[1]}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    graph = model.graph
    print(json.dumps({
        "ir_version": model.ir_version,
        "opset": [[o.domain, o.version] for o in model.opset_import],
        "inputs": [{"name": v.name, "dims": dims(v)} for v in graph.input],
        "outputs": [{"name": v.name, "dims": dims(v)} for v in graph.output],
        "initializers": [{"name": t.name, "dims": list(t.dims)} for t in graph.initializer],
        "nodes": [{"name": n.name, "op_type": n.op_type, "inputs": list(n.input),
                   "outputs": list(n.output)} for n in graph.node],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
