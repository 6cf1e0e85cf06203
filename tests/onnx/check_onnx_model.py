#!/usr/bin/env python3
"""Checks ONNX models with the onnx package's own checker, as strictly as it goes.

    check_onnx_model.py MODEL.onnx [MODEL.onnx ...]

For each model: onnx.load, then onnx.checker.check_model(model, full_check=True), which also
runs shape inference in strict mode with type checks (a declared input or output shape that
contradicts the inferred one is an error). Prints one line per model and exits 1 when any
model is rejected, with the checker's message; 2 on a usage error.

The model is loaded first and checked as a ModelProto on purpose: given a path,
check_model(path, full_check=True) of onnx 1.12 (Debian 12's python3-onnx) writes the
shape-inferred model back over the file.
"""

import sys

import onnx


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: check_onnx_model.py MODEL.onnx [MODEL.onnx ...]", file=sys.stderr)
        return 2
    status = 0
    for path in sys.argv[1:]:
        try:
            model = onnx.load(path)
            onnx.checker.check_model(model, full_check=True)
        except Exception as error:  # the checker raises several types; report them all
            message = str(error).strip() or repr(error)
            print(f"check_onnx_model: {path}: REJECTED by onnx {onnx.__version__}: "
                  f"{type(error).__name__}: {message}", file=sys.stderr)
            status = 1
            continue
        opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
        print(f"check_onnx_model: {path}: OK (onnx {onnx.__version__}, ir_version "
              f"{model.ir_version}, opset {opsets}, {len(model.graph.node)} nodes)")
    return status


if __name__ == "__main__":
    sys.exit(main())
