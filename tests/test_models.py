"""Tests of the model zoo xbar.models: shapes, no biases, only convertible layer types."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from xbar.models import MODELS, build_model, lenet, mlp

ALLOWED = (nn.Flatten, nn.Linear, nn.Conv2d, nn.ReLU, nn.AvgPool2d)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_shape(name):
    model = build_model(name)
    assert isinstance(model, nn.Sequential)
    out = model(torch.rand(3, 1, 28, 28))
    assert out.shape == (3, 10)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_no_biases_by_default(name):
    model = build_model(name)
    assert all(n.endswith("weight") for n, _ in model.named_parameters())
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            assert m.bias is None


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bias_option(name):
    model = build_model(name, bias=True)
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert layers and all(m.bias is not None for m in layers)


@pytest.mark.parametrize("name", sorted(MODELS))
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
