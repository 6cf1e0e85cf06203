"""Checks residual blocks against PyTorch: the files `torch_parity write DIR` wrote (two
torchvision BasicBlocks in a row, in double) are recomputed with torch and compared.

  forward y, dL/dx and every parameter's gradient of L = sum(r * y) in training mode, and
  the weights and running statistics after 5 Adam steps (lr 0.01) on L: equal to 1e-10
  (relative to each tensor's largest value); and the cross-entropy with label smoothing 0.15
  (torch.nn.functional.cross_entropy's label_smoothing), its value and gradient.

Usage: torch_parity.py DIR   (exit code 0 when everything matches, 1 otherwise, 77 when torch
is not installed: the test is then reported as skipped)
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_numpy as st  # noqa: E402

try:
    import torch
    from torch import nn
except ImportError:
    print("torch_parity: torch is not installed (Debian python3-torch); skipped")
    sys.exit(77)

import torch_models  # noqa: E402

TOLERANCE = 1e-10


def compare(name, ours, theirs, worst):
    theirs = theirs.detach().numpy()
    ours = np.asarray(ours, dtype=np.float64).reshape(theirs.shape)
    scale = max(1e-30, float(np.abs(theirs).max()))
    error = float(np.abs(ours - theirs).max()) / scale
    worst[name] = error
    if not error <= TOLERANCE:
        print(f"torch_parity: FAILED: {name} differs by {error:.3g} (relative to its largest value)")
        return False
    return True


def main(directory):
    torch.set_default_dtype(torch.float64)
    weights, metadata = st.read(os.path.join(directory, "block.safetensors"))
    inputs, _ = st.read(os.path.join(directory, "inputs.safetensors"))
    results, _ = st.read(os.path.join(directory, "results.safetensors"))

    model = nn.Sequential()
    model.add_module("block1", torch_models.BasicBlock(3, 4, 2))
    model.add_module("block2", torch_models.BasicBlock(4, 4, 1))
    report = torch_models.load_state(model, weights)
    print(f"torch_parity: load_state_dict(strict=True): {report}")
    model.train()

    x = torch.from_numpy(inputs["x"].copy()).requires_grad_(True)
    r = torch.from_numpy(inputs["r"].copy())
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    ok = True
    worst = {}
    for step in range(1, 6):
        optimizer.zero_grad()
        if x.grad is not None:
            x.grad = None
        y = model(x)
        (r * y).sum().backward()
        if step == 1:
            ok &= compare("y", results["y"], y, worst)
            ok &= compare("dx", results["dx"], x.grad, worst)
            for name, parameter in model.named_parameters():
                ok &= compare("grad." + name, results["grad." + name], parameter.grad, worst)
        optimizer.step()
    for name, tensor in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            ok &= int(results["after." + name]) == int(tensor)
            continue
        ok &= compare("after." + name, results["after." + name], tensor, worst)
    logits = torch.from_numpy(inputs["loss.logits"].reshape(-1, inputs["loss.logits"].shape[-1]).copy())
    logits.requires_grad_(True)
    labels = torch.from_numpy(inputs["loss.labels"].reshape(-1).astype(np.int64))
    loss = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.15)
    loss.backward()
    ok &= compare("loss.value", results["loss.value"], loss.reshape(1), worst)
    ok &= compare("loss.dlogits", results["loss.dlogits"], logits.grad, worst)
    print(f"torch_parity: {len(worst)} tensors compared, worst relative difference "
          f"{max(worst.values()):.3g} ({max(worst, key=worst.get)})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
