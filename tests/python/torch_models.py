"""The PyTorch twins of DLBlocks' models, written as a PyTorch user writes them, so that a
DLBlocks model file loads into them with load_state_dict(strict=True) and no renaming.

  BasicBlock   torchvision's BasicBlock (conv1 bn1 relu conv2 bn2, downsample, ReLU)
  ResNet       dlb::MakeResNet: conv1 bn1 relu, layer1..layerN of BasicBlocks, avgpool, fc

Needs torch (Debian's python3-torch).
"""

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, inputs, outputs, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(outputs, outputs, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.downsample = None
        if stride != 1 or inputs != outputs:
            self.downsample = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(outputs))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    def __init__(self, channels=1, classes=10, widths=(16, 32, 64), blocks_per_stage=2):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        inputs = widths[0]
        for stage, width in enumerate(widths):
            blocks = []
            for block in range(blocks_per_stage):
                blocks.append(BasicBlock(inputs, width, 2 if stage > 0 and block == 0 else 1))
                inputs = width
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inputs, classes)
        self.stages = len(widths)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        for stage in range(self.stages):
            x = getattr(self, f"layer{stage + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def load_state(module, tensors):
    """Loads numpy arrays (name -> array, from safetensors_numpy.read) into `module` with the
    strict load_state_dict; returns its report."""
    state = {name: torch.from_numpy(array.copy()) for name, array in tensors.items()}
    return module.load_state_dict(state, strict=True)
