"""Tests of the model zoo xbar.models: shapes, biases, layer types, residual wiring, tracing."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from xbar.models import MODELS, BasicBlock, bn_cnn, build_model, lenet, mlp, res_cnn

ALLOWED = (nn.Flatten, nn.Linear, nn.Conv2d, nn.ReLU, nn.AvgPool2d)
#: The plain bias-free Sequential models; "bn-cnn" and "res-cnn" use BatchNorm, max-pooling
#: and residual blocks and are tested below.
PLAIN = ("lenet", "mlp")


@pytest.mark.parametrize("name", PLAIN)
def test_output_shape(name):
    model = build_model(name)
    assert isinstance(model, nn.Sequential)
    out = model(torch.rand(3, 1, 28, 28))
    assert out.shape == (3, 10)


@pytest.mark.parametrize("name", PLAIN)
def test_no_biases_by_default(name):
    model = build_model(name)
    assert all(n.endswith("weight") for n, _ in model.named_parameters())
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            assert m.bias is None


@pytest.mark.parametrize("name", PLAIN)
def test_bias_option(name):
    model = build_model(name, bias=True)
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert layers and all(m.bias is not None for m in layers)


@pytest.mark.parametrize("name", PLAIN)
def test_only_allowed_layer_types(name):
    model = build_model(name)
    children = list(model.children())
    assert children
    for m in children:
        assert type(m) in ALLOWED, type(m)


def test_mlp_is_the_study_network():
    model = mlp()
    assert [type(m) for m in model] == [nn.Flatten, nn.Linear, nn.ReLU, nn.Linear]
    assert model[1].weight.shape == (100, 784) and model[3].weight.shape == (10, 100)
    assert sum(p.numel() for p in model.parameters()) == 784 * 100 + 100 * 10


def test_mlp_options():
    model = mlp(hidden=32, in_features=20, classes=3)
    assert model(torch.rand(5, 20)).shape == (5, 3)
    assert model[1].weight.shape == (32, 20)


def test_lenet_layers_and_classes():
    model = lenet(classes=7)
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [c.out_channels for c in convs] == [6, 16]
    assert [(m.in_features, m.out_features) for m in linears] == [(400, 120), (120, 84), (84, 7)]
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 7)


def test_build_model_passes_kwargs():
    assert build_model("mlp", hidden=16)[1].out_features == 16


def test_build_model_unknown_name():
    with pytest.raises(ValueError, match="name='resnet'") as info:
        build_model("resnet")
    assert "lenet" in str(info.value) and "mlp" in str(info.value)


# bn-cnn and res-cnn -------------------------------------------------------------------------

def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_names():
    assert set(MODELS) == {"mlp", "lenet", "bn-cnn", "res-cnn"}
    assert MODELS["bn-cnn"] is bn_cnn and MODELS["res-cnn"] is res_cnn


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_output_shape(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("name", ["bn-cnn", "res-cnn"])
def test_new_models_train_mode_and_classes(name):
    model = build_model(name, classes=7)
    out = model(torch.rand(4, 1, 28, 28))
    assert out.shape == (4, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_build_model_new_names_pass_kwargs():
    assert build_model("bn-cnn", width=8).features[0].out_channels == 8
    assert build_model("res-cnn", width=8).stem[0].out_channels == 8


def test_bn_cnn_layers_and_parameter_count():
    model = bn_cnn()
    assert [type(m) for m in model.features] == [
        nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d,
        nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d,
    ]
    assert [type(m) for m in model.classifier] == [
        nn.Flatten, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear,
    ]
    names = dict(model.named_modules())
    assert isinstance(names["features.0"], nn.Conv2d) and isinstance(names["classifier.1"], nn.Linear)
    assert names["classifier.1"].in_features == 64 * 7 * 7
    # Docstring: 422,090 parameters with the defaults, counted by hand here.
    conv1, bn1 = 32 * 1 * 9 + 32, 2 * 32
    conv2, bn2 = 64 * 32 * 9 + 64, 2 * 64
    fc1, bn3, fc2 = 3136 * 128 + 128, 2 * 128, 128 * 10 + 10
    assert conv1 + bn1 + conv2 + bn2 + fc1 + bn3 + fc2 == 422_090
    assert _n_params(model) == 422_090


def test_bn_cnn_has_biases_and_batchnorm_after_every_weight_layer():
    model = bn_cnn()
    weighted = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert len(weighted) == 4 and all(m.bias is not None for m in weighted)
    seq = list(model.features) + list(model.classifier)
    for i, m in enumerate(seq[:-1]):
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            assert isinstance(seq[i + 1], (nn.BatchNorm1d, nn.BatchNorm2d)), (i, seq[i + 1])


def test_res_cnn_layers_and_parameter_count():
    model = res_cnn()
    assert isinstance(model.layer2.shortcut, nn.Identity)
    for block in (model.layer1, model.layer3):
        conv, bn = block.shortcut
        assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
        assert conv.kernel_size == (1, 1) and conv.stride == (2, 2)
    assert [b.conv1.out_channels for b in (model.layer1, model.layer2, model.layer3)] == [32, 32, 64]
    assert model.fc.in_features == 64
    # Docstring: 91,642 parameters with the defaults, counted by hand here.
    stem = 16 * 9 + 2 * 16
    layer1 = 32 * 16 * 9 + 2 * 32 + 32 * 32 * 9 + 2 * 32 + 32 * 16 + 2 * 32
    layer2 = 2 * (32 * 32 * 9 + 2 * 32)
    layer3 = 64 * 32 * 9 + 2 * 64 + 64 * 64 * 9 + 2 * 64 + 64 * 32 + 2 * 64
    fc = 64 * 10 + 10
    assert stem + layer1 + layer2 + layer3 + fc == 91_642
    assert _n_params(model) == 91_642


def test_res_cnn_intermediate_shapes():
    model = res_cnn().eval()
    x = model.stem(torch.rand(2, 1, 28, 28))
    assert x.shape == (2, 16, 28, 28)
    x = model.layer1(x)
    assert x.shape == (2, 32, 14, 14)
    x = model.layer2(x)
    assert x.shape == (2, 32, 14, 14)
    assert model.layer3(x).shape == (2, 64, 7, 7)


@pytest.mark.parametrize("in_ch,out_ch,stride", [(8, 8, 1), (8, 16, 2), (8, 16, 1)])
def test_basic_block_forward_is_residual(in_ch, out_ch, stride):
    torch.manual_seed(0)
    block = BasicBlock(in_ch, out_ch, stride).eval()
    x = torch.randn(2, in_ch, 9, 9)
    residual = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))
    torch.testing.assert_close(block(x), F.relu(residual + block.shortcut(x)))
    assert isinstance(block.shortcut, nn.Identity) == (in_ch == out_ch and stride == 1)


class _Scale(nn.Module):
    def __init__(self, inner: nn.Module, factor: float) -> None:
        super().__init__()
        self.inner, self.factor = inner, factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.factor * self.inner(x)


@pytest.mark.parametrize("layer", ["layer1", "layer2", "layer3"])
def test_res_cnn_output_depends_on_shortcut(layer):
    torch.manual_seed(0)
    model = res_cnn().eval()
    x = torch.rand(4, 1, 28, 28)
    before = model(x)
    block = getattr(model, layer)
    block.shortcut = _Scale(block.shortcut, 0.0)   # drop the shortcut
    dropped = model(x)
    block.shortcut = _Scale(block.shortcut.inner, 1.0)   # the same shortcut again
    torch.testing.assert_close(model(x), before)
    assert not torch.allclose(dropped, before, atol=1e-4)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_are_fx_traceable(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(traced(x), model(x))


def test_res_cnn_graph_has_adds_and_both_relu_forms():
    graph = torch.fx.symbolic_trace(res_cnn()).graph
    functions = [n.target for n in graph.nodes if n.op == "call_function"]
    modules = [n.target for n in graph.nodes if n.op == "call_module"]
    assert functions.count(operator.add) == 3
    assert functions.count(F.relu) == 3
    assert F.adaptive_avg_pool2d in functions and torch.flatten in functions
    assert "layer1.relu1" in modules and "stem.2" in modules
    assert "layer1.shortcut.0" in modules and "layer2.shortcut" in modules
