"""Bad input is refused with an error that names the argument, never a raw torch error.

One table of hand-picked cases (each a callable, the exception type and a pattern that must
name the argument or field), then Hypothesis fuzzing of layer inputs, network inputs, numeric
arguments and weights. Run with ``--hypothesis-show-statistics`` to see how many generated
inputs were refused versus accepted (``event`` labels).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import xbar
from xbar.cli import main as cli_main
from xbar.mapping import map_weights
from xbar.train import apply_constraints, train
from xbar.validation import check_network_input

NAN, INF = float("nan"), float("inf")


def _lin() -> xbar.CrossbarLinear:
    torch.manual_seed(0)
    return xbar.CrossbarLinear.from_linear(nn.Linear(8, 4), "seed-4bit")


def _ones_lin() -> xbar.CrossbarLinear:
    lin = nn.Linear(8, 4, bias=False)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    return xbar.CrossbarLinear.from_linear(lin, "ideal")


def _conv() -> xbar.CrossbarConv2d:
    torch.manual_seed(0)
    return xbar.CrossbarConv2d.from_conv2d(nn.Conv2d(2, 3, 3), "seed-4bit")


def _ann() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


def _cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3))


def _snn() -> xbar.SpikingNetwork:
    return xbar.to_snn(xbar.to_crossbar(_ann(), "seed-4bit"), norm="none", timesteps=3)


def _with_bad_weight(module: nn.Module, value: float, attr: str = "weight") -> nn.Module:
    with torch.no_grad():
        getattr(module, attr).view(-1)[0] = value
    return module


def _nan_weight_program() -> None:
    layer = _lin()
    with torch.no_grad():
        layer.weight[1, 2] = NAN
    layer.program()


def _nan_bias_program() -> None:
    layer = _lin()
    with torch.no_grad():
        layer.bias[0] = INF
    layer.program()


def _set_mapping() -> None:
    _lin().mapping = "diff"


def _calib(x: Any, norm: str = "max") -> Callable[[], Any]:
    return lambda: xbar.to_snn(_ann(), calibration=x, norm=norm)


def _empty_loader() -> DataLoader:
    return DataLoader(TensorDataset(torch.zeros(0, 1, 4, 4), torch.zeros(0)), batch_size=4)


def _collapsing_device() -> xbar.DeviceProfile:
    # 16 states spread over 1e-11 S around 100 uS: distinct in float64, one value in float32.
    return xbar.DeviceProfile(name="too-fine", g_min=1e-4, g_max=1.0000001e-4, levels=16)


def _pico_device() -> xbar.DeviceProfile:
    return xbar.load_device("seed-4bit").replace(name="pico", g_min=1e-13, g_max=1e-12)


def _huge_weight_on_pico() -> None:
    lin = nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.fill_(1e30)
    xbar.CrossbarLinear.from_linear(lin, _pico_device())


def _train(**kw: Any) -> Callable[[], Any]:
    loader = [(torch.rand(4, 1, 4, 4), torch.randint(0, 3, (4,)))]
    return lambda: train(_ann(), loader, progress=False, **kw)


CASES = [
    # crossbar layer input: shape, dtype, device kind, values
    ("linear wrong features", lambda: _lin()(torch.rand(2, 7)), ValueError, r"^x: expected \[\.\.\., 8\]"),
    ("linear 0-d input", lambda: _lin()(torch.tensor(1.0)), ValueError, r"^x: expected \[\.\.\., 8\]"),
    ("linear int64 input", lambda: _lin()(torch.ones(2, 8, dtype=torch.long)),
     TypeError, r"^x: .*floating-point.*int64"),
    ("linear bool input", lambda: _lin()(torch.ones(2, 8, dtype=torch.bool)), TypeError, r"^x: .*floating-point.*bool"),
    ("linear float64 input", lambda: _lin()(torch.ones(2, 8, dtype=torch.float64)),
     TypeError, r"^x: dtype torch.float64"),
    ("linear list input", lambda: _lin()([[0.0] * 8]), TypeError, r"^x: expected a torch.Tensor"),
    ("linear NaN input", lambda: _lin()(torch.full((2, 8), NAN)), ValueError, r"^x of CrossbarLinear.*NaN"),
    ("linear inf input", lambda: _lin()(torch.tensor([[INF] + [0.0] * 7])), ValueError, r"^x of .*1 NaN or infinite"),
    ("linear overflow", lambda: _ones_lin()(torch.full((1, 8), 3e38)), ValueError, r"overflowed.*max \|x\| = 3e\+38"),
    ("currents wrong features", lambda: _lin().currents(torch.rand(2, 9)), ValueError, r"^x: expected \[\.\.\., 8\]"),
    ("conv wrong channels", lambda: _conv()(torch.rand(2, 1, 5, 5)), ValueError, r"^x: expected \[B, 2, H, W\]"),
    ("conv 2-D input", lambda: _conv()(torch.rand(2, 5)), ValueError, r"^x: expected \[B, 2, H, W\]"),
    ("conv 5-D input", lambda: _conv()(torch.rand(1, 2, 2, 5, 5)), ValueError, r"^x: expected \[B, 2, H, W\]"),
    ("conv too small", lambda: _conv()(torch.rand(2, 2, 2, 2)), ValueError, r"^x: spatial size \(2, 2\) is smaller"),
    ("conv NaN input", lambda: _conv()(torch.full((1, 2, 4, 4), NAN)), ValueError, r"^x of CrossbarConv2d"),
    # weights
    ("NaN weight at program", _nan_weight_program, ValueError, r"^weight of CrossbarLinear\(8 -> 4\): contains 1 NaN"),
    ("inf weight from_linear", lambda: xbar.CrossbarLinear.from_linear(_with_bad_weight(nn.Linear(3, 2), INF)),
     ValueError, r"^weight of CrossbarLinear\(3 -> 2\)"),
    ("-inf weight from_conv2d", lambda: xbar.CrossbarConv2d.from_conv2d(_with_bad_weight(nn.Conv2d(1, 2, 3), -INF)),
     ValueError, r"^weight of CrossbarConv2d"),
    ("inf bias at program", _nan_bias_program, ValueError, r"^bias of CrossbarLinear"),
    ("NaN weight to_crossbar", lambda: xbar.to_crossbar(nn.Sequential(_with_bad_weight(nn.Linear(3, 2), NAN)), "ideal"),
     ValueError, r"^model: parameter '0\.weight' contains 1 NaN"),
    ("NaN bias to_crossbar", lambda: xbar.to_crossbar(_with_bad_weight(nn.Linear(3, 2), NAN, "bias"), "ideal"),
     ValueError, r"^model: parameter 'bias'"),
    ("NaN weight to_snn", lambda: xbar.to_snn(nn.Sequential(_with_bad_weight(nn.Linear(3, 2), NAN)), norm="none"),
     ValueError, r"^ann: parameter '0\.weight'"),
    ("NaN weight map_weights", lambda: map_weights(torch.tensor([NAN, 1.0]), 1e-6, 1e-5),
     ValueError, r"^weight: contains 1 NaN"),
    # network input
    ("snn images wrong features", lambda: _snn()(torch.rand(2, 1, 4, 5)), ValueError, r"^(images|x)\b.*16"),
    ("snn images int", lambda: _snn()(torch.ones(2, 1, 4, 4, dtype=torch.uint8)),
     TypeError, r"^images: .*floating-point"),
    ("snn images NaN", lambda: _snn()(torch.full((2, 1, 4, 4), NAN)), ValueError, r"^images: .*NaN"),
    ("snn images above 1", lambda: _snn()(torch.full((2, 1, 4, 4), 2.0)),
     ValueError, r"^images: Poisson input must lie in \[0, 1\]"),
    ("snn images negative", lambda: _snn()(torch.full((2, 1, 4, 4), -0.5)), ValueError, r"^images: Poisson input"),
    ("snn run 2-D", lambda: _snn().run(torch.rand(2, 16)), ValueError, r"^spike_seq: expected shape \[T, B, \.\.\.\]"),
    ("snn run wrong features", lambda: _snn().run(torch.rand(3, 2, 17)), ValueError, r"^(spike_seq|x)\b.*16"),
    ("snn run int", lambda: _snn().run(torch.ones(3, 2, 16, dtype=torch.int32)),
     TypeError, r"^spike_seq: .*floating-point"),
    ("snn run NaN", lambda: _snn().run(torch.full((3, 2, 16), NAN)), ValueError, r"^(spike_seq|x)\b.*NaN"),
    ("float net images shape", lambda: check_network_input(list(_ann()), torch.rand(2, 1, 4, 5), "images"),
     ValueError, r"^images: expected 16 values per sample for the first layer Linear\(16 -> 8\)"),
    ("conv net images channels", lambda: check_network_input(list(_cnn()), torch.rand(2, 3, 4, 4), "images"),
     ValueError, r"^images: expected \[B, 1, H, W\]"),
    ("conv net spike_seq dims", lambda: check_network_input(list(_cnn()), torch.rand(2, 1, 4, 4), "spike_seq", 2),
     ValueError, r"^spike_seq: expected \[T, B, 1, H, W\]"),
    # timesteps
    ("to_snn timesteps 0", lambda: xbar.to_snn(_ann(), norm="none", timesteps=0),
     ValueError, r"^timesteps: .*>= 1, got 0"),
    ("to_snn timesteps -3", lambda: xbar.to_snn(_ann(), norm="none", timesteps=-3), ValueError, r"^timesteps:"),
    ("to_snn timesteps float", lambda: xbar.to_snn(_ann(), norm="none", timesteps=2.0), ValueError, r"^timesteps:"),
    ("to_snn timesteps bool", lambda: xbar.to_snn(_ann(), norm="none", timesteps=True), ValueError, r"^timesteps:"),
    ("SpikingNetwork timesteps 0", lambda: xbar.SpikingNetwork(list(_snn().stages), timesteps=0),
     ValueError, r"^timesteps:"),
    ("encoder timesteps 0", lambda: xbar.PoissonEncoder(0.5)(torch.rand(2, 4), 0), ValueError, r"^timesteps:"),
    ("constant encoder timesteps 0", lambda: xbar.ConstantEncoder()(torch.rand(2, 4), 0), ValueError, r"^timesteps:"),
    # max_rate
    *[(f"max_rate {v!r}", (lambda v=v: xbar.PoissonEncoder(v)), ValueError, r"^max_rate: must be in \(0, 1\]")
      for v in (0, 0.0, -0.1, 1.5, 1 + 1e-9, NAN, INF, "0.5", None, True)],
    # norm, percentile, calibration, encoder
    ("norm bogus", lambda: xbar.to_snn(_ann(), calibration=torch.rand(4, 1, 4, 4), norm="bogus"), ValueError,
     r"^norm: unknown normalisation 'bogus'; choose one of none, max, percentile, spike-norm"),
    ("norm case", lambda: xbar.to_snn(_ann(), calibration=torch.rand(4, 1, 4, 4), norm="Max"), ValueError, r"^norm: "),
    ("percentile 0", lambda: xbar.to_snn(_ann(), calibration=torch.rand(4, 1, 4, 4), percentile=0), ValueError,
     r"^percentile: .*\(0\.0, 100\.0\]"),
    ("percentile 101", lambda: xbar.to_snn(_ann(), calibration=torch.rand(4, 1, 4, 4), percentile=101),
     ValueError, r"^percentile:"),
    ("percentile NaN", lambda: xbar.to_snn(_ann(), calibration=torch.rand(4, 1, 4, 4), percentile=NAN),
     ValueError, r"^percentile:"),
    ("percentile str", lambda: xbar.to_snn(_ann(), calibration=torch.rand(4, 1, 4, 4), percentile="99"),
     TypeError, r"^percentile:"),
    ("calibration missing", _calib(None), ValueError, r"^calibration: norm='max' needs calibration data"),
    ("calibration empty list", _calib([]), ValueError, r"^calibration: the loader yielded no samples"),
    ("calibration empty tensor", _calib(torch.rand(0, 1, 4, 4)),
     ValueError, r"^calibration: the batch is empty"),
    ("calibration empty loader", _calib(_empty_loader()), ValueError, r"^calibration: the loader yielded no samples"),
    ("calibration empty spike-norm", _calib([], "spike-norm"),
     ValueError, r"^calibration: the loader yielded no samples"),
    ("calibration empty percentile", _calib(iter([]), "percentile"),
     ValueError, r"^calibration: the loader yielded no"),
    ("calibration NaN", _calib(torch.full((4, 1, 4, 4), NAN)), ValueError, r"^calibration: contains 64 NaN"),
    ("calibration int", _calib(torch.ones(4, 1, 4, 4, dtype=torch.long)), TypeError, r"^calibration: .*floating-point"),
    ("calibration wrong shape", _calib(torch.rand(4, 1, 4, 5)),
     ValueError, r"^calibration: expected 16 values per sample"),
    ("calibration wrong shape spike-norm", _calib([torch.rand(4, 20)], "spike-norm"),
     ValueError, r"^calibration: expected 16"),
    ("calibration not iterable", _calib(42), TypeError, r"^calibration: expected a tensor, a DataLoader"),
    ("calibration list of str", _calib(["abc"]), TypeError, r"^calibration: expected a torch.Tensor"),
    ("encoder not callable", lambda: xbar.to_snn(_ann(), norm="none", encoder="poisson"), TypeError, r"^encoder: "),
    # devices
    *[(f"unknown device {name}", (lambda name=name: xbar.load_device(name)), xbar.DeviceProfileError,
       rf"^{name}: <name>: unknown device profile; did you mean '{hint}'")
      for name, hint in (("seed-4bitt", "seed-4bit"), ("idael", "ideal"), ("pcmm", "pcm"), ("neuram", "neurram"))],
    ("unknown device far", lambda: xbar.load_device("zzzz"),
     xbar.DeviceProfileError, r"^zzzz: <name>: .*shipped profiles: .*seed-4bit"),
    ("unknown device to_crossbar", lambda: xbar.to_crossbar(_ann(), "seed4bit"),
     xbar.DeviceProfileError, r"did you mean 'seed-4bit'"),
    ("unknown device layer", lambda: xbar.CrossbarLinear(2, 2, profile="Ideal"),
     xbar.DeviceProfileError, r"did you mean 'ideal'"),
    ("unknown device meter", lambda: xbar.EnergyMeter(_snn(), "seed_4bit"),
     xbar.DeviceProfileError, r"did you mean 'seed-4bit'"),
    ("device wrong type", lambda: xbar.CrossbarLinear(2, 2, profile=3),
     TypeError, r"^device: expected a DeviceProfile"),
    ("device single level", lambda: xbar.load_device("seed-4bit").replace(levels=1), xbar.DeviceProfileError,
     r"conductance\.levels: must be between 2"),
    ("device single state", lambda: xbar.load_device("seed-4bit").replace(states=(5e-5,)), xbar.DeviceProfileError,
     r"conductance\.states_us: needs 2 to"),
    ("device equal states", lambda: xbar.load_device("seed-4bit").replace(states=(5e-5, 5e-5)), xbar.DeviceProfileError,
     r"conductance\.states_us: must be strictly ascending"),
    ("device g_min == g_max", lambda: xbar.load_device("ideal").replace(g_min=1e-4, g_max=1e-4),
     xbar.DeviceProfileError, r"on/off ratio"),
    ("device states collapse in float32", lambda: xbar.CrossbarLinear(3, 2, profile=_collapsing_device()), ValueError,
     r"^device: 'too-fine' has 16 states that are not distinct in torch.float32"),
    ("device scale underflows", _huge_weight_on_pico,
     ValueError, r"^device: 'pico' .*cannot represent CrossbarLinear\(3 -> 2\)"),
    # mapping
    ("mapping to_crossbar", lambda: xbar.to_crossbar(_ann(), "ideal", mapping="bogus"), ValueError,
     r"^mapping: unknown mapping 'bogus'; choose one of differential, clip"),
    ("mapping layer", lambda: xbar.CrossbarLinear(2, 2, mapping="diff"),
     ValueError, r"^mapping: unknown mapping 'diff'"),
    ("mapping setter", _set_mapping, ValueError, r"^mapping: unknown mapping 'diff'"),
    ("mapping map_weights", lambda: map_weights(torch.ones(2), 1e-6, 1e-5, mapping="Clip"), ValueError, r"^mapping: "),
    ("mapping apply_constraints", lambda: apply_constraints(_ann(), "seed-4bit", mapping="linear"),
     ValueError, r"^mapping: "),
    ("map_weights g_max <= g_min", lambda: map_weights(torch.ones(2), 1e-5, 1e-6), ValueError, r"^g_max: "),
    ("map_weights g_min NaN", lambda: map_weights(torch.ones(2), NAN, 1e-6), ValueError, r"^g_min: "),
    ("map_weights g_min negative", lambda: map_weights(torch.ones(2), -1e-6, 1e-6), ValueError, r"^g_min: "),
    ("map_weights ratio", lambda: map_weights(torch.ones(2), 1e-6, 1e-5, on_off_ratio=0.5, mapping="clip"),
     ValueError, r"^on_off_ratio: "),
    # neurons, drift, training
    ("IF threshold 0", lambda: xbar.IFNeuron(threshold=0.0), ValueError, r"^threshold: must be finite and > 0"),
    ("IF threshold NaN", lambda: xbar.IFNeuron(threshold=NAN), ValueError, r"^threshold: "),
    ("IF threshold negative tensor", lambda: xbar.IFNeuron(threshold=torch.tensor([1.0, -1.0])),
     ValueError, r"^threshold: "),
    ("IF reset", lambda: xbar.IFNeuron(reset="hard"), ValueError, r"^reset: "),
    ("to_snn reset", lambda: xbar.to_snn(_ann(), norm="none", reset="soft"), ValueError, r"^reset: "),
    ("drift NaN", lambda: _lin().drift(NAN), ValueError, r"^t_seconds: "),
    ("drift negative", lambda: xbar.drift(nn.Sequential(_lin()), -5.0), ValueError, r"^t_seconds: "),
    ("train epochs -1", _train(epochs=-1), ValueError, r"^epochs: must be an integer >= 0"),
    ("train epochs float", _train(epochs=1.5), TypeError, r"^epochs: expected an integer"),
    ("train lr 0", _train(lr=0.0), ValueError, r"^lr: "),
    ("train lr NaN", _train(lr=NAN), ValueError, r"^lr: "),
    ("train empty loader", lambda: train(_ann(), [], epochs=1, progress=False),
     ValueError, r"^loader: yielded no samples"),
]


@pytest.mark.parametrize("call, exc, pattern", [pytest.param(c, e, p, id=i) for i, c, e, p in CASES])
def test_bad_input_is_refused_clearly(call: Callable[[], Any], exc: type, pattern: str) -> None:
    with pytest.raises(exc, match=pattern) as err:
        call()
    assert "\n" not in str(err.value), "one readable line"


@pytest.mark.parametrize("argv", [["reproduce", "--quick", "--seeds", "0"], ["reproduce", "--quick", "--seeds", "-2"]])
def test_cli_bad_counts_are_usage_errors_naming_the_argument(argv: list[str], tmp_path, capsys) -> None:
    """A count below 1 is refused by the parser (exit 2, argparse's usage line), naming the
    argument, not the configuration file."""
    status = cli_main([*argv, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2
    line = err.strip().splitlines()[-1]
    assert f"argument --seeds: must be >= 1, got {argv[-1]}" in line and "config" not in line.lower()


@pytest.mark.parametrize("argv, needle", [
    (["train", "--quick", "--device", "seed-4bitt"], "did you mean 'seed-4bit'"),
    (["reproduce", "--config", "no-such-config"], "unknown study configuration"),
    (["devices", "show", "idael"], "did you mean 'ideal'"),
])
def test_cli_bad_arguments_exit_1_with_one_line(argv: list[str], needle: str, tmp_path, capsys) -> None:
    status = cli_main([*argv, "--out", str(tmp_path)] if argv[0] != "devices" else argv)
    err = capsys.readouterr().err
    assert status == 1
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err and "Traceback" not in err


# -- Hypothesis ----------------------------------------------------------------------------

_DTYPES = [torch.float32, torch.float64, torch.float16, torch.int64, torch.int8, torch.bool, torch.uint8]


def _refused_clearly(call: Callable[[], Any], names: tuple[str, ...]) -> bool:
    """Run ``call``; True if it raised TypeError/ValueError naming one of ``names`` first."""
    try:
        call()
    except (TypeError, ValueError) as exc:
        msg = str(exc)
        assert msg.split(":")[0].split(" ")[0] in names or msg.startswith("output of"), msg
        assert "\n" not in msg
        event("refused")
        return True
    event("accepted")
    return False


@settings(max_examples=150, deadline=None)
@given(shape=st.lists(st.integers(0, 9), min_size=0, max_size=4), dtype=st.sampled_from(_DTYPES),
       fill=st.sampled_from([0.5, NAN, INF, -INF, 1e39, 3e38]))
def test_fuzz_linear_input(shape: list[int], dtype: torch.dtype, fill: float) -> None:
    layer = _LIN
    x64 = torch.full(shape, 0.5, dtype=torch.float64)
    if x64.numel():
        x64.view(-1)[0] = fill
    x = x64.to(dtype)  # 1e39 becomes inf in float32; NaN in an integer dtype is refused anyway
    ok = (dtype == torch.float32 and len(shape) >= 1 and shape[-1] == 8
          and (x.numel() == 0 or bool(torch.isfinite(x).all())))
    with torch.no_grad():
        refused = _refused_clearly(lambda: layer(x), ("x",))
    assert refused != ok, (shape, dtype, fill)


@settings(max_examples=120, deadline=None)
@given(shape=st.lists(st.integers(0, 6), min_size=0, max_size=5), dtype=st.sampled_from(_DTYPES[:4]),
       fill=st.sampled_from([0.5, NAN, INF]))
def test_fuzz_conv_input(shape: list[int], dtype: torch.dtype, fill: float) -> None:
    x64 = torch.full(shape, 0.5, dtype=torch.float64)
    if x64.numel():
        x64.view(-1)[-1] = fill
    x = x64.to(dtype)
    ok = (dtype == torch.float32 and len(shape) in (3, 4) and shape[-3] == 2 and min(shape[-2:]) >= 3
          and (len(shape) == 3 or shape[0] > 0) and bool(torch.isfinite(x).all()))
    with torch.no_grad():
        refused = _refused_clearly(lambda: _CONV(x), ("x",))
    if len(shape) == 4 and shape[0] == 0 and shape[1] == 2 and min(shape[-2:]) >= 3 and dtype == torch.float32:
        return  # an empty batch is torch's business either way (it returns an empty output)
    assert refused != ok, (shape, dtype, fill)


@settings(max_examples=120, deadline=None)
@given(shape=st.lists(st.integers(0, 5), min_size=0, max_size=5), lo=st.sampled_from([0.0, -0.5, NAN]),
       hi=st.sampled_from([1.0, 1.5, INF]), integer=st.booleans())
def test_fuzz_network_images(shape: list[int], lo: float, hi: float, integer: bool) -> None:
    x = torch.rand(shape) if shape else torch.rand(())
    if x.numel():
        x.view(-1)[0], x.view(-1)[-1] = lo, hi
    if integer:
        x = x.nan_to_num().clamp(-5, 5).to(torch.int64)
    n = math.prod(shape[1:]) if len(shape) >= 2 else -1
    ok = (not integer and len(shape) >= 2 and n == 16 and (x.numel() == 0 or (lo == 0.0 and hi == 1.0)))
    with torch.no_grad():
        refused = _refused_clearly(lambda: _SNN(x), ("images", "x", "spike_seq"))
    if ok and x.numel() == 0:
        return  # an empty batch may run or be refused; either is clear
    assert refused != ok, (shape, lo, hi, integer)


_ANY_VALUE = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 300), st.booleans(),
                       st.none(), st.text(max_size=3), st.just([0.5]))


def _valid(v: Any, low: float, high: float, low_open: bool, integer: bool = False) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
        return False
    return math.isfinite(v) and (v > low if low_open else v >= low) and v <= high


@settings(max_examples=150, deadline=None)
@given(value=_ANY_VALUE, which=st.sampled_from(["max_rate", "percentile", "timesteps", "lr", "t_seconds"]))
def test_fuzz_numeric_arguments(value: Any, which: str) -> None:
    calls: dict[str, tuple[Callable[[], Any], bool]] = {
        "max_rate": (lambda: xbar.PoissonEncoder(value), _valid(value, 0, 1, True)),
        "percentile": (lambda: xbar.to_snn(_ANN, calibration=_CAL, percentile=value), _valid(value, 0, 100, True)),
        "timesteps": (lambda: xbar.to_snn(_ANN, norm="none", timesteps=value), _valid(value, 1, 1e9, False, True)),
        "lr": (lambda: train(_ANN, [], epochs=0, lr=value, progress=False), _valid(value, 0, math.inf, True)),
        "t_seconds": (lambda: _LIN_DRIFT.drift(value), _valid(value, 0, math.inf, False)),
    }
    call, ok = calls[which]
    assert _refused_clearly(call, (which,)) != ok, (which, value)


@settings(max_examples=60, deadline=None)
@given(value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)))
def test_fuzz_threshold(value: float) -> None:
    as_f32 = torch.tensor(float(value)).item()  # the threshold is stored in float32
    ok = math.isfinite(as_f32) and as_f32 > 0
    assert _refused_clearly(lambda: xbar.IFNeuron(threshold=value, surrogate=None), ("threshold",)) != ok, value


@settings(max_examples=100, deadline=None)
@given(rows=st.integers(1, 6), cols=st.integers(1, 6), bad=st.sampled_from([NAN, INF, -INF]),
       pos=st.integers(0, 35), conv=st.booleans())
def test_fuzz_nonfinite_weights(rows: int, cols: int, bad: float, pos: int, conv: bool) -> None:
    module: nn.Module = nn.Conv2d(cols, rows, 1) if conv else nn.Linear(cols, rows)
    with torch.no_grad():
        module.weight.view(-1)[pos % module.weight.numel()] = bad
    with pytest.raises(ValueError, match=r"^model: parameter '0\.weight' contains 1 NaN or infinite"):
        xbar.to_crossbar(nn.Sequential(module), "seed-4bit")
    build = xbar.CrossbarConv2d.from_conv2d if conv else xbar.CrossbarLinear.from_linear
    with pytest.raises(ValueError, match=r"^weight of Crossbar(Linear|Conv2d)\("):
        build(module, "seed-4bit")  # type: ignore[arg-type]
    event("refused")


_LIN = _lin()
_CONV = _conv()
_SNN = _snn()
_ANN = _ann()
_CAL = torch.rand(4, 1, 4, 4)
_LIN_DRIFT = _lin()
