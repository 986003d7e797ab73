"""Architectures (docs/method.md §6): shapes, parameter counts, torchvision naming, pretrained loading."""

from __future__ import annotations

import sys
import types
from collections import OrderedDict

import pytest
import torch
from torch import nn

from limitlab.errors import LimitlabError
from limitlab.models import MODELS, ResNet, build_model


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a busy machine, thread contention makes small forwards ~10× slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def shell(*args, **kwargs) -> nn.Module:
    """build_model on the meta device: structure, names and shapes without allocating or initializing
    weights (fast), for tests that do not run the network."""
    with torch.device("meta"):
        return build_model(*args, **kwargs)


@pytest.fixture(scope="module")
def r50() -> nn.Module:
    """One resnet50 (10 classes), built once for the module; tests must not modify it."""
    torch.manual_seed(0)
    return build_model("resnet50", (3, 64, 64), 10).eval()


@pytest.fixture(scope="module")
def r50_shell() -> nn.Module:
    return shell("resnet50", (3, 64, 64), 10)


# ---------------------------------------------------------------------------------------- registry

def test_unknown_model_lists_known_names():
    with pytest.raises(LimitlabError) as e:
        build_model("vgg16", (3, 32, 32), 10)
    for name in MODELS:
        assert name in str(e.value)


# ---------------------------------------------------------------------------------------- cnn4 / mlp

def test_linear_is_one_affine_map_without_batchnorm():
    model = build_model("linear", (1, 8, 8), 10)
    assert [type(m).__name__ for m in model.modules() if not list(m.children())] == ["Flatten", "Linear"]
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(model(x), x.flatten(1) @ model.head.weight.T + model.head.bias)


@pytest.mark.parametrize("role", ["classifier", "q"])
def test_cnn4_shapes(role):
    model = build_model("cnn4", (1, 28, 28), 10, role=role).eval()
    x = torch.randn(2, 1, 28, 28)
    assert model.forward_features(x).shape == (2, 128)
    assert model(x).shape == (2, 10)
    assert isinstance(model.head, nn.Linear)
    has_bn1d = any(isinstance(m, nn.BatchNorm1d) for m in model.hidden)
    assert has_bn1d == (role == "q")


def test_cnn4_rejects_32x32_clearly():
    with pytest.raises(LimitlabError, match=r"cnn4 needs 28×28 images but the data are 32×32"):
        build_model("cnn4", (3, 32, 32), 10)


def test_mlp_shapes():
    model = build_model("mlp", (3, 8, 8), 7).eval()
    x = torch.randn(2, 3, 8, 8)
    assert model.forward_features(x).shape == (2, 512)
    assert model(x).shape == (2, 7)


@pytest.mark.parametrize("name,shape", [("cnn4", (1, 28, 28)), ("mlp", (1, 28, 28)),
                                        ("resnet18", (3, 32, 32)), ("resnet34", (3, 32, 32))])
def test_head_bias_false_has_no_bias(name, shape):
    model = shell(name, shape, 10, head_bias=False)
    assert model.head.bias is None
    assert not any(k.startswith("head.bias") for k in model.state_dict())
    assert shell(name, shape, 10).head.bias is not None


def test_resnet50_head_bias_false(r50_shell):
    model = shell("resnet50", (3, 64, 64), 10, head_bias=False)
    assert model.head.bias is None
    assert len(model.state_dict()) == len(r50_shell.state_dict()) - 1


# ---------------------------------------------------------------------------------------- ResNet shapes

@pytest.mark.parametrize("name,role", [("resnet18", "classifier"), ("resnet34", "q")])
def test_cifar_resnet_shapes(name, role):
    model = build_model(name, (3, 32, 32), 10, role=role).eval()
    assert model.stem == "cifar"
    x = torch.randn(2, 3, 32, 32)
    assert model.forward_features(x).shape == (2, 512)
    assert model(x).shape == (2, 10)
    assert model.head.in_features == 512 and model.head.out_features == 10


def test_resnet_q_role_is_the_same_architecture():
    a = shell("resnet18", (3, 32, 32), 10, role="classifier")
    b = shell("resnet18", (3, 32, 32), 10, role="q")
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}


def test_resnet50_shapes(r50):
    x = torch.randn(1, 3, 64, 64)
    seen = []
    handle = r50.head.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape))
    with torch.no_grad():
        assert r50(x).shape == (1, 10)
    handle.remove()
    assert seen == [(1, 2048)]  # the head's input, z = forward_features(x)
    assert r50.stem == "imagenet"


def test_resnet_accepts_one_channel_and_small_images():
    model = build_model("resnet18", (1, 8, 8), 3).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    with pytest.raises(LimitlabError, match=r"at least 8×8"):
        build_model("resnet18", (1, 4, 4), 3)


def test_resnet_channels_last_matches_contiguous():
    torch.manual_seed(0)
    model = build_model("resnet18", (3, 32, 32), 10).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        y = model(x)
        y_cl = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    assert torch.allclose(y, y_cl, atol=1e-4, rtol=1e-4)


def test_resnet_dropout_before_head():
    model = build_model("resnet18", (3, 32, 32), 10, dropout=0.5)
    assert isinstance(model.dropout, nn.Dropout) and model.dropout.p == 0.5
    model.train()
    z = torch.ones(4, 512)
    # forward = head(dropout(z)): in training some z entries are zeroed before the head.
    calls = []
    model.head.register_forward_hook(lambda m, inp, out: calls.append(inp[0]))
    model.forward_features = lambda x: z
    model(torch.zeros(4, 3, 32, 32))
    assert (calls[0] == 0).any() and (calls[0] == 2).any()


class _Stop(Exception):
    pass


def _layer1_hw(model: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """Spatial size of layer1's output (the forward stops there)."""
    seen = []

    def hook(m, inp, out):
        seen.append(tuple(out.shape[-2:]))
        raise _Stop

    handle = model.layer1.register_forward_hook(hook)
    with torch.no_grad(), pytest.raises(_Stop):
        model(x)
    handle.remove()
    return seen[0]


def test_cifar_stem_keeps_resolution_imagenet_stem_divides_by_4():
    cifar = build_model("resnet18", (3, 32, 32), 10).eval()
    assert isinstance(cifar.maxpool, nn.Identity) and cifar.conv1.kernel_size == (3, 3)
    assert cifar.conv1.stride == (1, 1)
    assert _layer1_hw(cifar, torch.randn(2, 3, 32, 32)) == (32, 32)

    imnet = build_model("resnet18", (3, 64, 64), 10, stem="imagenet").eval()
    assert isinstance(imnet.maxpool, nn.MaxPool2d) and imnet.conv1.kernel_size == (7, 7)
    assert _layer1_hw(imnet, torch.randn(1, 3, 64, 64)) == (16, 16)
    with torch.no_grad():
        assert imnet(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_stem_chosen_by_image_size():
    assert shell("resnet34", (3, 64, 64), 10).stem == "cifar"
    big = shell("resnet18", (3, 96, 96), 10)
    assert big.stem == "imagenet" and isinstance(big.maxpool, nn.MaxPool2d) and big.conv1.kernel_size == (7, 7)
    assert shell("resnet18", (3, 32, 65), 10).stem == "imagenet"
    assert shell("resnet50", (3, 32, 32), 10).stem == "imagenet"
    with pytest.raises(LimitlabError, match="stem"):
        shell("resnet18", (3, 32, 32), 10, stem="tiny")


def test_init_kaiming_and_bn():
    model = build_model("resnet18", (3, 32, 32), 10)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    # kaiming normal, fan_out, relu: std = sqrt(2 / (out_channels * k * k))
    w = model.layer4[0].conv1.weight
    assert abs(w.std().item() - (2 / (512 * 9)) ** 0.5) < 0.1 * (2 / (512 * 9)) ** 0.5
    zero = build_model("resnet18", (3, 32, 32), 10, zero_init_residual=True)
    assert torch.all(zero.layer1[0].bn2.weight == 0) and torch.all(zero.layer1[0].bn1.weight == 1)


# ---------------------------------------------------------------------------------------- parameter counts

def cifar_resnet_basic_count(blocks: list[int], in_channels: int = 3, num_classes: int = 10) -> int:
    """Parameters of the CIFAR BasicBlock ResNet, from its layer sizes (convs are bias-free)."""
    def conv(c_in, c_out, k):
        return c_in * c_out * k * k

    def bn(c):
        return 2 * c

    total = conv(in_channels, 64, 3) + bn(64)
    c_in = 64
    for stage, (width, n) in enumerate(zip((64, 128, 256, 512), blocks)):
        for j in range(n):
            total += conv(c_in, width, 3) + bn(width) + conv(width, width, 3) + bn(width)
            if c_in != width or (stage > 0 and j == 0):
                total += conv(c_in, width, 1) + bn(width)
            c_in = width
    return total + 512 * num_classes + num_classes


def test_resnet34_cifar_param_count():
    model = shell("resnet34", (3, 32, 32), 10)
    expected = cifar_resnet_basic_count([3, 4, 6, 3])
    assert expected == 21_282_122
    assert n_params(model) == expected


def test_resnet18_cifar_param_count():
    model = shell("resnet18", (3, 32, 32), 10)
    expected = cifar_resnet_basic_count([2, 2, 2, 2])
    assert expected == 11_173_962
    assert n_params(model) == expected


# ---------------------------------------------------------------------------------------- resnet50 = torchvision

def torchvision_resnet50_keys() -> list[str]:
    """torchvision's resnet50 state-dict keys, written out from its naming scheme (fc excluded)."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    keys = ["conv1.weight"] + [f"bn1.{s}" for s in bn]
    for layer, n in zip(range(1, 5), (3, 4, 6, 3)):
        for b in range(n):
            p = f"layer{layer}.{b}."
            for i in (1, 2, 3):
                keys += [f"{p}conv{i}.weight"] + [f"{p}bn{i}.{s}" for s in bn]
            if b == 0:
                keys += [f"{p}downsample.0.weight"] + [f"{p}downsample.1.{s}" for s in bn]
    return keys


def test_resnet50_keys_match_torchvision(r50_shell):
    r50 = r50_shell
    sd = r50.state_dict()
    keys = [k for k in sd if not k.startswith("head.")]
    assert set(keys) == set(torchvision_resnet50_keys())
    assert len(keys) + 2 == 320  # torchvision's 320 entries include fc.weight and fc.bias
    assert len(sd) == 320 and {"head.weight", "head.bias"} <= set(sd)
    for k in ["conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer1.0.downsample.0.weight",
              "layer2.3.bn2.num_batches_tracked", "layer3.5.bn3.running_var", "layer4.0.downsample.1.weight",
              "layer4.2.bn3.bias"]:
        assert k in sd
    for k in ["fc.weight", "layer1.1.downsample.0.weight", "layer3.6.conv1.weight", "layer4.3.bn1.weight"]:
        assert k not in sd
    shapes = {
        "conv1.weight": (64, 3, 7, 7),
        "layer1.0.conv1.weight": (64, 64, 1, 1),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer2.0.conv2.weight": (128, 128, 3, 3),
        "layer3.5.bn3.running_var": (1024,),
        "layer4.0.downsample.0.weight": (2048, 1024, 1, 1),
        "layer4.2.conv3.weight": (2048, 512, 1, 1),
        "head.weight": (10, 2048),
    }
    for k, s in shapes.items():
        assert tuple(sd[k].shape) == s, k
    # v1.5: the stride sits on the 3×3 conv, not the first 1×1
    assert r50.layer2[0].conv2.stride == (2, 2) and r50.layer2[0].conv1.stride == (1, 1)
    assert n_params(r50) == 25_557_032 - 1000 * 2049 + 10 * 2049  # torchvision's count, fc 1000 → 10


# ---------------------------------------------------------------------------------------- pretrained

def test_pretrained_only_for_resnet50():
    for name, shape in [("resnet18", (3, 32, 32)), ("resnet34", (3, 32, 32)), ("cnn4", (1, 28, 28))]:
        with pytest.raises(LimitlabError, match="only for resnet50"):
            build_model(name, shape, 10, pretrained=True)


def test_pretrained_without_torchvision_warns_and_builds(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision` raise ImportError
    with pytest.warns(UserWarning, match=r"random weights.*limitlab\[pretrained\]"):
        model = shell("resnet50", (3, 64, 64), 10, pretrained=True)
    assert isinstance(model, ResNet) and model.head.out_features == 10


def fake_torchvision(monkeypatch, resnet50):
    fake = types.ModuleType("torchvision")
    fake.models = types.SimpleNamespace(resnet50=resnet50)
    monkeypatch.setitem(sys.modules, "torchvision", fake)


def torchvision_like_state(r50: nn.Module) -> OrderedDict:  # r50 may be a meta-device shell
    """A state dict named like torchvision's resnet50 (fc with 1000 classes), with known values."""
    g = torch.Generator().manual_seed(123)
    sd = OrderedDict()
    for k, v in r50.state_dict().items():
        if k.startswith("head."):
            continue
        sd[k] = (torch.randint(0, 100, v.shape, generator=g) if v.dtype == torch.long
                 else torch.randn(v.shape, generator=g))
    sd["fc.weight"] = torch.full((1000, 2048), 7.0)
    sd["fc.bias"] = torch.full((1000,), 7.0)
    return sd


def test_pretrained_copies_torchvision_weights_except_fc(monkeypatch, r50_shell):
    source = torchvision_like_state(r50_shell)
    calls = []

    def resnet50(weights=None):
        calls.append(weights)
        return types.SimpleNamespace(state_dict=lambda: source)

    fake_torchvision(monkeypatch, resnet50)
    model = build_model("resnet50", (3, 64, 64), 1000, pretrained=True)
    assert len(calls) == 1 and str(calls[0]) in ("IMAGENET1K_V1", "ResNet50_Weights.IMAGENET1K_V1")
    sd = model.state_dict()
    for k, v in source.items():
        if not k.startswith("fc."):
            assert torch.equal(sd[k], v), k
    assert not torch.equal(sd["head.weight"], source["fc.weight"])
    assert not torch.equal(sd["head.bias"], source["fc.bias"])


def test_pretrained_download_failure_is_one_sentence(monkeypatch):
    def resnet50(weights=None):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>\nmore detail")

    fake_torchvision(monkeypatch, resnet50)
    with pytest.raises(LimitlabError, match="could not load torchvision's ImageNet ResNet-50 weights") as e:
        build_model("resnet50", (3, 64, 64), 10, pretrained=True)
    assert "\n" not in str(e.value)


def test_pretrained_mismatch_is_a_clear_error(monkeypatch, r50_shell):
    source = torchvision_like_state(r50_shell)
    fake_torchvision(monkeypatch, lambda weights=None: types.SimpleNamespace(state_dict=lambda: source))
    with pytest.raises(LimitlabError, match=r"shape mismatch in conv1\.weight"):
        shell("resnet50", (1, 64, 64), 10, pretrained=True)  # 1-channel input: conv1 differs
    del source["layer4.2.bn3.bias"]
    with pytest.raises(LimitlabError, match=r"missing \['layer4\.2\.bn3\.bias'\]"):
        shell("resnet50", (3, 64, 64), 10, pretrained=True)


# ---------------------------------------------------------------------------------------- evaluation copy

def _randomize_batchnorm(model: nn.Module, seed: int = 0) -> None:
    """BatchNorm weights, biases and running statistics far from their initial 1/0, so a wrong fold shows."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=g) + 0.5
            m.bias.data = torch.randn(n, generator=g)
            m.running_mean = torch.randn(n, generator=g)
            m.running_var = torch.rand(n, generator=g) + 0.5


@pytest.mark.parametrize("name, role", [(name, "classifier") for name in sorted(MODELS)] + [("cnn4", "q")])
def test_fuse_for_eval_folds_every_batchnorm_and_keeps_the_outputs(name, role):
    from limitlab.models import fuse_for_eval

    shape = (1, 28, 28) if name in ("cnn4", "mlp", "linear") else (3, 32, 32)
    torch.manual_seed(0)
    model = build_model(name, shape, 10, role=role, dropout=0.3).to(memory_format=torch.channels_last)
    _randomize_batchnorm(model)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = fuse_for_eval(model)
    assert model.training  # the trained model is left as it was
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fused.modules())
    assert not fused.training and not any(p.requires_grad for p in fused.parameters())

    x = torch.randn(5, *shape).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = model.eval()(x)
    torch.testing.assert_close(fused(x), expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    assert fused(x).argmax(1).tolist() == expected.argmax(1).tolist()


def test_cnn4_last_conv_as_matrix_product_matches_the_convolution():
    from limitlab.models import WholeInputConv2d

    torch.manual_seed(0)
    conv = WholeInputConv2d(64, 256, 3, 1, 0, bias=True)
    plain = nn.Conv2d(64, 256, 3, 1, 0, bias=True)
    plain.load_state_dict(conv.state_dict())
    for x in (torch.randn(4, 64, 3, 3), torch.randn(4, 64, 3, 3).contiguous(memory_format=torch.channels_last),
              torch.randn(4, 64, 5, 5)):  # the last: not the kernel's size, the convolution itself
        x.requires_grad_()
        y, y_plain = conv(x), plain(x)
        assert y.shape == y_plain.shape
        torch.testing.assert_close(y, y_plain, rtol=1e-5, atol=1e-5)
        g = torch.randn_like(y)
        grads = torch.autograd.grad(y, (x, conv.weight, conv.bias), g)
        grads_plain = torch.autograd.grad(y_plain, (x, plain.weight, plain.bias), g)
        for a, b in zip(grads, grads_plain):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_fuse_for_eval_leaves_batchnorms_it_cannot_prove_adjacent():
    """A user's network named conv1/bn1 whose forward does not apply bn1 right after conv1 keeps
    its BatchNorm (the copy stays exact); a plain Sequential inside it is folded."""
    from limitlab.models import fuse_for_eval

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 3, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(3)  # applied to the input, before conv1: folding it into conv1 would be wrong
            self.block = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())

        def forward(self, x):
            return self.block(self.conv1(self.bn1(x))).mean((2, 3))

    torch.manual_seed(0)
    net = Net()
    _randomize_batchnorm(net)
    fused = fuse_for_eval(net)
    assert isinstance(fused.bn1, nn.BatchNorm2d) and isinstance(fused.block[1], nn.Identity)
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), net.eval()(x), rtol=1e-4, atol=1e-5)
