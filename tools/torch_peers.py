"""PyTorch versions of kerasnets networks that neither timm nor pytorchcv
has, for speed comparisons only (tools/bench_vs_timm.py, tools/gpu_timm.py).

- ``igc_l4m32``: IGC-L4M32+Ident. (Zhang et al., "Interleaved Group
  Convolutions for Deep Neural Networks", ICCV 2017, arXiv:1707.02725),
  the layout of kerasnets' ``IGC_L4M32`` (the authors' released MXNet symbol):
  ResNet-18 stages with each 3x3 convolution an interleaved group
  convolution (primary 3x3 group conv with L partitions, channel
  permutation, secondary 1x1 group conv with M partitions, permutation
  back). Same parameter count as kerasnets' builder (12,251,240; checked in
  tests/test_benchmark.py). Random initialisation; no weights are loaded.
"""

import torch
from torch import nn

BN_EPSILON = 2e-5


def _shuffle(x, groups):
    """out[b * groups + a] = in[a * M + b] (channels, M = C / groups)."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class InterleavedGroupConv(nn.Module):
    def __init__(self, in_channels, filters, primary_groups, stride=1):
        super().__init__()
        self.primary_groups = primary_groups
        self.secondary_groups = filters // primary_groups
        self.primary = nn.Conv2d(in_channels, filters, 3, stride, 1, groups=primary_groups,
                                 bias=False)
        self.secondary = nn.Conv2d(filters, filters, 1, groups=self.secondary_groups,
                                   bias=False)

    def forward(self, x):
        x = _shuffle(self.primary(x), self.primary_groups)
        return _shuffle(self.secondary(x), self.secondary_groups)


class ResidualBlock(nn.Module):
    def __init__(self, in_channels, filters, primary_groups, stride):
        super().__init__()
        self.proj = None
        if in_channels != filters or stride != 1:
            self.proj = nn.Sequential(
                nn.Conv2d(in_channels, filters, 1, stride, groups=primary_groups, bias=False),
                nn.BatchNorm2d(filters, eps=BN_EPSILON))
        self.conv1 = InterleavedGroupConv(in_channels, filters, primary_groups, stride)
        self.bn1 = nn.BatchNorm2d(filters, eps=BN_EPSILON)
        self.conv2 = InterleavedGroupConv(filters, filters, primary_groups)
        self.bn2 = nn.BatchNorm2d(filters, eps=BN_EPSILON)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        shortcut = x if self.proj is None else self.proj(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + shortcut)


class IGCV1(nn.Module):
    def __init__(self, stem_filters, widths, primary_groups, blocks=(2, 2, 2, 2),
                 num_classes=1000):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem_filters, 7, 2, 3, bias=False),
            nn.BatchNorm2d(stem_filters, eps=BN_EPSILON), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1))
        stages, channels = [], stem_filters
        for index, (width, groups, count) in enumerate(zip(widths, primary_groups, blocks)):
            for block in range(count):
                stride = 2 if index > 0 and block == 0 else 1
                stages.append(ResidualBlock(channels, width, groups, stride))
                channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.pool(self.stages(self.stem(x)))
        return self.fc(torch.flatten(x, 1))


def igc_l4m32(num_classes=1000):
    return IGCV1(128, (128, 256, 512, 1024), (4, 4, 4, 4), num_classes=num_classes)


MODELS = {"igc_l4m32": igc_l4m32}
