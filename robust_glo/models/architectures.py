"""The registered architectures: small CNNs for 28x28 (small-cnn, LeNet-5) and 8x8, an MLP, AllCNN-C and ResNet-20."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from robust_glo.data.registry import DatasetInfo
from robust_glo.errors import ModelError
from robust_glo.models.registry import register_model


def _require_size(info: DatasetInfo, name: str, sizes: tuple[int, ...]) -> None:
    if info.image_shape[1] not in sizes:
        raise ModelError(
            f"model {name!r} needs {' or '.join(f'{s}x{s}' for s in sizes)} images; "
            f"dataset {info.name!r} has {info.image_shape[1]}x{info.image_shape[2]}"
        )


@register_model("small-cnn", "2 conv + 2 dense layers for 28x28 images (fashion-mnist, mnist default)")
def small_cnn(info: DatasetInfo) -> nn.Module:
    _require_size(info, "small-cnn", (28, 32))
    c, h, _ = info.image_shape
    side = h // 4
    return nn.Sequential(
        nn.Conv2d(c, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * side * side, 128),
        nn.ReLU(),
        nn.Linear(128, info.num_classes),
    )


@register_model("lenet5", "LeNet-5 (LeCun et al. 1998), dense variant, 28x28 or 32x32: a tenth of small-cnn's work")
def lenet5(info: DatasetInfo) -> nn.Module:
    # The modern LeNet-5 (ReLU, max-pool, C3 fully connected to S2, a linear output; the 1998 paper used tanh,
    # trainable subsampling, a sparse C3 and an RBF output): on 1x28x28 inputs 61,706 parameters and about 0.42M
    # multiply-adds per 28x28 image against small-cnn's 4.2M, which is what lets the quick suite run its
    # AutoAttack cascade in minutes on a 2-core CPU.
    _require_size(info, "lenet5", (28, 32))
    c, h, _ = info.image_shape
    side = (h // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(c, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * side * side, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, info.num_classes),
    )


@register_model("mlp", "2 hidden layers of 256 units, any input size")
def mlp(info: DatasetInfo) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(info.image_shape), 256),
        nn.ReLU(),
        nn.Linear(256, 256),
        nn.ReLU(),
        nn.Linear(256, info.num_classes),
    )


@register_model("digits-cnn", "tiny CNN for scikit-learn's 8x8 digits")
def digits_cnn(info: DatasetInfo) -> nn.Module:
    _require_size(info, "digits-cnn", (8,))
    return nn.Sequential(
        nn.Conv2d(info.image_shape[0], 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, info.num_classes),
    )


@register_model("allcnn-c", "All-CNN-C (Springenberg et al. 2015) for 32x32, as in the TaylorGLO paper")
def allcnn_c(info: DatasetInfo) -> nn.Module:
    _require_size(info, "allcnn-c", (32,))

    def block(cin: int, cout: int, k: int, stride: int = 1, pad: int = 1) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, k, stride=stride, padding=pad), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        nn.Dropout(0.2),
        *block(info.image_shape[0], 96, 3),
        *block(96, 96, 3),
        *block(96, 96, 3, stride=2),
        nn.Dropout(0.5),
        *block(96, 192, 3),
        *block(192, 192, 3),
        *block(192, 192, 3, stride=2),
        nn.Dropout(0.5),
        *block(192, 192, 3, pad=0),
        *block(192, 192, 1, pad=0),
        nn.Conv2d(192, info.num_classes, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetCifar(nn.Module):
    """He et al. (2016) CIFAR ResNet with 6n+2 layers; n=3 gives ResNet-20."""

    def __init__(self, info: DatasetInfo, n: int = 3):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(info.image_shape[0], 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        layers: list[nn.Module] = []
        cin = 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                layers.append(_BasicBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(64, info.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


@register_model("resnet20", "ResNet-20 (He et al. 2016) for 32x32, as in the TaylorGLO paper")
def resnet20(info: DatasetInfo) -> nn.Module:
    _require_size(info, "resnet20", (32,))
    return ResNetCifar(info, n=3)
