"""The ``xbar`` command line.

Usage::

    xbar devices list                    # shipped profiles, one line each
    xbar devices show NAME_OR_PATH       # a validated profile as YAML, plus derived values
    xbar devices validate FILE [FILE...] # ok, or every error, per file; exit status 1 on any error
    xbar devices fit MEASUREMENTS.csv --name NAME [-o NAME.yaml] [--plot FILE]  # a profile from data
    xbar reproduce [--quick] [--seeds N] [--workers N] [--scheduler ADDRESS]  # the whole EE 518 study
    xbar train | sweep {timesteps,rates} | constrain | energy   # one step of the study
    xbar sweep grid GRID.yaml [--workers N] [--scheduler ADDRESS] [--out DIR]   # a user-defined grid
    xbar robustness [--quick] [--chips N | --seeds N] [--workers N] [--scheduler ADDRESS]
                                         # accuracy under non-idealities, devices compared
    xbar bench [--model NAME] [--samples N] [--timesteps T...] [--torch-device cpu|cuda] [--skip-bptt]
                                         # speed side by side with spikingjelly

``--device`` is a device profile (a shipped name or a YAML file) wherever it appears, except in
``xbar bench``, where it is the deprecated spelling of ``--torch-device`` (it still works and
warns). Counts (``--seeds``, ``--chips``, ``--samples``, ``--repeats``, ``--timesteps``,
``--bptt-steps``) are checked by the parser: ``argument --seeds: must be >= 1, got 0``, exit 2.
``--workers``/``--scheduler`` (study commands, robustness, grids) choose where independent points
run (:mod:`xbar.executor`); every point runs on one torch thread whatever runs it.

The parser is built by :func:`build_parser`; each command group adds itself with an
``_add_<group>_parser(subparsers)`` helper and every leaf command sets ``func=``, which
:func:`main` calls with the parsed arguments. Heavy imports (torch) stay inside the command
functions so that ``xbar devices list`` starts fast.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any, Sequence

import yaml

from . import __version__
from .device import (DeviceProfile, DeviceProfileError, DeviceProfileWarning, list_devices, load_device,
                     load_device_file)

_DESCRIPTION_WIDTH = 80  # characters of a profile description shown by `devices list`


def _one_line(text: str, width: int = _DESCRIPTION_WIDTH) -> str:
    """Collapse whitespace and cut to ``width`` characters (ending in '...' when cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3].rstrip() + "..."


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _profile_errors(exc: DeviceProfileError) -> None:
    """One ``error:`` line per error of a profile (``path: field: reason``)."""
    for field_name, reason in exc.errors:
        _error(str(DeviceProfileError(exc.path, field_name, reason)))


def _positive_int(text: str) -> int:
    """argparse type of a count: an integer >= 1 (argparse prefixes ``argument --NAME: ``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _cmd_devices_list(args: argparse.Namespace) -> int:
    """Print every shipped profile: name and one-line description, aligned.

    Args:
        args: parsed arguments (unused).

    Returns:
        0, or 1 when a shipped profile fails validation (it is listed with its error).
    """
    names = list_devices()
    width = max((len(n) for n in names), default=0)
    status = 0
    for name in names:
        try:
            text = _one_line(load_device(name).description or "(no description)")
        except DeviceProfileError as exc:
            text, status = f"INVALID: {exc}", 1
        print(f"{name:<{width}}  {text}")
    return status


def _derived(profile: DeviceProfile) -> dict[str, Any]:
    """Values that follow from a profile, in the units a reader expects (µS, ns)."""
    out: dict[str, Any] = {
        "g_min_us": float(f"{profile.g_min * 1e6:.12g}"),
        "g_max_us": float(f"{profile.g_max * 1e6:.12g}"),
        "on_off_ratio": float(f"{profile.on_off_ratio:.12g}"),
        "levels": profile.levels if profile.levels is not None else "continuous",
    }
    if profile.states is not None:
        out["states_us"] = [float(f"{g * 1e6:.12g}") for g in profile.states]
    out["read_time_s"] = profile.read_time
    out["path"] = profile.path
    return out


def _cmd_devices_show(args: argparse.Namespace) -> int:
    """Print a validated profile as YAML, then a second YAML document of derived values.

    Args:
        args: ``args.device``, a shipped name or a YAML path.

    Returns:
        0 (errors raise :class:`DeviceProfileError`, reported by :func:`main`).
    """
    profile = load_device(args.device)
    print(profile.to_yaml(), end="")
    print("---")
    print(yaml.safe_dump({"derived": _derived(profile)}, sort_keys=False, width=100,
                         default_flow_style=None), end="")
    return 0


def _cmd_devices_validate(args: argparse.Namespace) -> int:
    """Validate YAML profile files: ``ok: FILE (name)`` on stdout, or one ``error:`` line per
    error of the file on stderr; a ``warning:`` line (stderr) for an implausible value.

    Args:
        args: ``args.files``, paths of YAML files.

    Returns:
        0 when every file is a valid profile, else 1.
    """
    status = 0
    for path in args.files:
        try:
            profile = load_device_file(path)
        except DeviceProfileError as exc:
            _profile_errors(exc)
            status = 1
        else:
            print(f"ok: {path} ({profile.name})")
    return status


def _cmd_devices_fit(args: argparse.Namespace) -> int:
    """Fit a profile to a measurement CSV (:mod:`xbar.device_fit`), print the per-state fit and
    its residuals, write the YAML (validated by loading it back) and optionally a plot.

    Returns:
        0, or 1 when the measurements cannot be fitted (the reason on stderr).
    """
    from pathlib import Path

    from .device_fit import MeasurementError, fit_profile, plot_fit, read_measurements

    try:
        rows = read_measurements(args.measurements)
        fit = fit_profile(rows, args.name, t0=args.t0, read_voltage=args.read_voltage,
                          read_time=args.pulse_ns * 1e-9, source=f"fitted by xbar devices fit to {args.measurements}")
    except MeasurementError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(fit.report())
    out = args.output or f"{args.name}.yaml"
    Path(out).write_text(fit.profile.to_yaml(), encoding="utf-8")
    load_device_file(out)
    print(f"wrote {out}")
    if args.plot:
        plot_fit(fit, rows, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _add_devices_parser(subparsers: Any) -> None:
    """Add the ``devices`` command group (list, show, validate) to ``subparsers``.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers``.
    """
    devices = subparsers.add_parser("devices", help="list, show and validate device profiles",
                                    description="Device profiles (YAML, schema 1: docs/devices.md).")
    actions = devices.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    p = actions.add_parser("list", help="shipped profiles with a one-line description")
    p.set_defaults(func=_cmd_devices_list)
    p = actions.add_parser("show", help="a profile as validated YAML plus derived values")
    p.add_argument("device", metavar="NAME_OR_PATH", help="shipped profile name or YAML file")
    p.set_defaults(func=_cmd_devices_show)
    p = actions.add_parser("validate", help="check YAML profile files: every error of each (exit 1 on any)",
                           description="Check YAML profile files (schema: docs/devices.md). Every error of "
                           "a file is reported, one line each naming the field; implausible values (a "
                           "conductance outside 1 nS to 10 mS) are warnings. Exit status 1 on any error.")
    p.add_argument("files", metavar="FILE", nargs="+", help="YAML profile file(s)")
    p.set_defaults(func=_cmd_devices_validate)
    p = actions.add_parser("fit", help="fit a profile to measured device reads (CSV; docs/devices.md)",
                           description="Fit a profile to measurements: one CSV row per device read with "
                           "columns level or target_us, measured_us, optionally time_s and device "
                           "(docs/devices.md). Writes the state table (measured means), per-state "
                           "programming sigma and, with later reads, per-state drift exponents.")
    p.add_argument("measurements", metavar="MEASUREMENTS.csv", help="the measurement CSV")
    p.add_argument("--name", required=True, help="the profile's name")
    p.add_argument("-o", "--output", default=None, metavar="FILE", help="YAML file to write (default NAME.yaml)")
    p.add_argument("--plot", default=None, metavar="FILE", help="also write a plot of the fit (PNG, PDF, ...)")
    p.add_argument("--t0", type=float, default=20.0, help="reference time, s: reads at or before it are "
                   "the programmed conductance (default 20)")
    p.add_argument("--read-voltage", type=float, default=0.2, help="read voltage written to the profile, V "
                   "(not measured; default 0.2)")
    p.add_argument("--pulse-ns", type=float, default=10.0, help="compute read pulse written to the profile, ns "
                   "(not measured; default 10)")
    p.set_defaults(func=_cmd_devices_fit)


def _study_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, metavar="NAME_OR_PATH",
                   help="study configuration: a shipped name (ee518, quick) or a YAML file (default ee518)")
    p.add_argument("--quick", action="store_true", help="the reduced grid (configuration 'quick') for smoke tests")
    p.add_argument("--device", default=None, metavar="NAME_OR_PATH",
                   help="device profile for every constrained step (default: the configuration's, seed-4bit)")
    p.add_argument("--out", default=None, metavar="DIR", help="results folder (default results/CONFIG_NAME)")
    p.add_argument("--seeds", type=_positive_int, default=None, metavar="N",
                   help="number of seeds (0, 1, ..., N-1) for the headline table (default: the configuration's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _executor_options(p)


def _cmd_study(args: argparse.Namespace) -> int:
    """Run the whole study or one of its steps, then write CSVs, plots and report.md."""
    import time

    from xbar.data import MNISTIntegrityError
    from xbar.executor import describe
    from xbar.experiments.config import ConfigError, load_config
    from xbar.grid_run import PointsFailed
    from xbar.experiments.report import summary_lines
    from xbar.experiments.study import Study, command_line

    try:
        name = args.config or ("quick" if args.quick else "ee518")
        cfg = load_config(name, {"seeds": args.seeds} if args.seeds is not None else None)
        out = args.out or f"results/{cfg['name']}"
        study = Study(cfg, out, device=args.device, progress=not args.no_progress, command=command_line())
        executor = _executor(args)
        if executor is None:
            return 1
        t0 = time.perf_counter()
        steps = {"reproduce": study.run_all, "train": study.step_train, "energy": study.step_energy,
                 "constrain": study.step_constrain, "timesteps": study.step_timesteps, "rates": study.step_rates}
        key = args.sweep if args.command == "sweep" else args.command
        with executor:
            if not args.no_progress:
                print(f"{key}: points on {describe(executor)}; results in {study.out}")
            steps[key](executor)
        report = study.write_outputs()
    except (ConfigError, MNISTIntegrityError, PointsFailed) as exc:
        _error(str(exc))
        return 1
    except KeyboardInterrupt:
        where = args.out or "the results folder"
        _error(f"interrupted; completed steps are saved in {where}; run the same command again to resume")
        return 130
    print()
    for line in summary_lines(study.results):
        print(line)
    print(f"{key}: {time.perf_counter() - t0:.0f} s this run; results, plots and report in {study.out} ({report.name})")
    return 0


def _add_study_parsers(subparsers: Any) -> None:
    """Add ``reproduce``, ``train``, ``sweep``, ``constrain`` and ``energy``."""
    p = subparsers.add_parser("reproduce", help="run the whole EE 518 study: results.json, CSVs, plots, report.md",
                              description="Reproduce the EE 518 study (MNIST 784-100-10): ANN baseline, six modes, "
                              "timestep and firing-rate sweeps, constrained finetuning, energy. Resumes from the "
                              "results folder if interrupted.")
    _study_options(p)
    p.set_defaults(func=_cmd_study)
    helps = {"train": "train the ANN baseline (every seed) and the BPTT modes",
             "constrain": "constrained finetuning on the device (each mapping and procedure)",
             "energy": "per-layer energy of every mode at its best T"}
    for name, text in helps.items():
        p = subparsers.add_parser(name, help=text, description=text + " (one step of `xbar reproduce`).")
        _study_options(p)
        p.set_defaults(func=_cmd_study)
    p = subparsers.add_parser("sweep", help="timestep or firing-rate sweep of the study, or a grid file",
                              description="Timestep sweep (best T chosen on validation) or firing-rate sweep at each "
                              "mode's best T (one step of `xbar reproduce`), or a user-defined grid (README, Sweeps).")
    kinds = p.add_subparsers(dest="sweep", metavar="SWEEP", required=True)
    for name, text in (("timesteps", "the study's timestep sweep"), ("rates", "the study's firing-rate sweep")):
        q = kinds.add_parser(name, help=text, description=text + " (one step of `xbar reproduce`).")
        _study_options(q)
        q.set_defaults(func=_cmd_study)
    _add_sweep_grid_parser(kinds)


def _cmd_sweep_grid(args: argparse.Namespace) -> int:
    """Run a grid file (:mod:`xbar.grid`) on the executor the options choose; write table and plots."""
    import time

    from xbar.data import MNISTIntegrityError
    from xbar.executor import describe
    from xbar.grid import GridError, expand, load_grid
    from xbar.grid_run import run_grid

    try:
        grid = load_grid(args.grid)
    except GridError as exc:
        for key, reason in exc.errors:
            _error(f"{exc.path}: {key}: {reason}")
        return 1
    out = args.out or f"results/grid-{grid['name']}"
    executor = _executor(args)
    if executor is None:
        return 1
    t0 = time.perf_counter()
    try:
        with executor:
            print(f"{grid['name']}: {len(expand(grid))} points on {describe(executor)}; results in {out}")
            run, paths = run_grid(grid, out, executor, progress=not args.no_progress)
    except MNISTIntegrityError as exc:
        _error(str(exc))
        return 1
    except KeyboardInterrupt:
        _error(f"interrupted; finished points are saved in {out}/points; run the same command again to resume")
        return 130
    print(f"{len(run.computed)} points computed, {len(run.skipped)} already done, {len(run.failures)} failed "
          f"in {time.perf_counter() - t0:.1f} s; wrote {', '.join(str(p) for p in paths)}")
    for f in run.failures:
        values = ", ".join(f"{k}={f['point'][k]}" for k in grid["axes"])
        _error(f"point {values}: {f['error']}")
    return 1 if run.failures else 0


def _add_sweep_grid_parser(kinds: Any) -> None:
    """Add ``sweep grid GRID.yaml``."""
    q = kinds.add_parser("grid", help="a user-defined grid file, run in parallel (local processes or Dask)",
                         description="Run every point of a grid file (README, Sweeps): one row per point in "
                         "OUT/grid.csv, a plot per axis pair asked for. Finished points are kept in OUT/points "
                         "and skipped on a rerun.")
    q.add_argument("grid", metavar="GRID.yaml", help="the grid file")
    _executor_options(q)
    q.add_argument("--out", default=None, metavar="DIR", help="results folder (default results/grid-NAME)")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    q.set_defaults(func=_cmd_sweep_grid)


def _executor_options(p: argparse.ArgumentParser) -> None:
    """``--workers`` and ``--scheduler``: where the independent points run (:mod:`xbar.executor`)."""
    p.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                   help="local worker processes, one torch thread each (default: one per core; 1: serially in "
                        "this process, also on one torch thread)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="a Dask scheduler (tcp://HOST:8786) to run the points on (default $DASK_SCHEDULER_ADDRESS; "
                        "needs pip install 'xbar[dask]')")


def _executor(args: argparse.Namespace) -> Any:
    """The executor ``--workers``/``--scheduler`` ask for, or None after printing why not."""
    from xbar.executor import make_executor

    try:
        return make_executor(args.workers, args.scheduler)
    except (ImportError, OSError, ValueError) as exc:
        _error(f"--scheduler {args.scheduler}: {exc}" if args.scheduler else str(exc))
        return None


def _cmd_robustness(args: argparse.Namespace) -> int:
    """Run the robustness study (:mod:`xbar.experiments.robustness`) and write its outputs."""
    import time

    from xbar.data import MNISTIntegrityError
    from xbar.experiments.config import ConfigError
    from xbar.executor import describe
    from xbar.grid_run import PointsFailed
    from xbar.experiments.robustness import Robustness, load_robustness_config
    from xbar.experiments.robustness_report import summary_lines
    from xbar.experiments.study import command_line

    overrides: dict[str, Any] = {}
    if args.device is not None:
        load_device(args.device)  # a bad name or file fails here, before any training
        overrides["base_device"] = args.device
    if args.chips is not None:
        overrides["chips"] = args.chips
    if args.ideal_periphery:
        overrides["devices.periphery"] = ["ideal"]
    try:
        cfg = load_robustness_config(args.config or ("robustness-quick" if args.quick else "robustness"), overrides)
        study = Robustness(cfg, args.out or f"results/{cfg['name']}", progress=not args.no_progress,
                           command=command_line())
    except (ConfigError, MNISTIntegrityError) as exc:
        _error(str(exc))
        return 1
    executor = _executor(args)
    if executor is None:
        return 1
    try:
        t0 = time.perf_counter()
        with executor:
            if not args.no_progress:
                print(f"robustness: points on {describe(executor)}; results in {study.out}")
            report = study.run_all(executor)
    except (MNISTIntegrityError, PointsFailed) as exc:
        _error(str(exc))
        return 1
    except KeyboardInterrupt:
        _error(f"interrupted; finished points are saved in {args.out or 'the results folder'}; "
               "run the same command again to resume")
        return 130
    print()
    for line in summary_lines(study.results):
        print(line)
    print(f"robustness: {time.perf_counter() - t0:.0f} s this run; results, plots and report in {study.out} "
          f"({report.name})")
    return 0


def _add_robustness_parser(subparsers: Any) -> None:
    """Add the ``robustness`` command."""
    text = ("accuracy under programming noise, stuck devices, drift, ADC bits and tiles, conversion only "
            "vs hardware-aware finetuned; every device profile compared (accuracy, energy)")
    p = subparsers.add_parser("robustness", help=text, description=text[0].upper() + text[1:] + ". Resumes from the "
                              "results folder if interrupted.")
    p.add_argument("--config", default=None, metavar="NAME_OR_PATH",
                   help="configuration: robustness, robustness-quick or a YAML file (default robustness)")
    p.add_argument("--quick", action="store_true", help="the reduced grid (robustness-quick) for smoke tests")
    p.add_argument("--device", default=None, metavar="NAME_OR_PATH",
                   help="base device of the sweeps (default: the configuration's, seed-4bit)")
    p.add_argument("--chips", type=_positive_int, default=None, metavar="N",
                   help="chips averaged per point (default: the configuration's); a chip is a seed of the "
                        "programming noise and the defect map")
    p.add_argument("--seeds", dest="chips", type=_positive_int, default=None, metavar="N",
                   help="the same as --chips (in this study a seed is a chip), the spelling the study commands use")
    p.add_argument("--ideal-periphery", action="store_true",
                   help="compare the devices with ideal periphery only (no ADC, DAC, IR drop)")
    _executor_options(p)
    p.add_argument("--out", default=None, metavar="DIR", help="results folder (default results/CONFIG_NAME)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_robustness)


def _cmd_bench(args: argparse.Namespace) -> int:
    """Run the side-by-side speed benchmarks and print the table (see :mod:`xbar.bench`)."""
    import torch

    from xbar.bench import format_result, run_bench
    from xbar.models import MODELS

    if args.model not in MODELS:
        _error(f"--model: unknown model {args.model!r}; known: {', '.join(sorted(MODELS))}")
        return 2
    device = args.torch_device
    if args.old_device is not None:
        print("warning: `xbar bench --device` is deprecated: use --torch-device (elsewhere --device names "
              "a device profile)", file=sys.stderr)
        if device is not None and device != args.old_device:
            _error(f"--device {args.old_device} contradicts --torch-device {device}; give --torch-device only")
            return 2
        device = args.old_device
    device = device or "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        _error("--torch-device cuda: no CUDA device is available")
        return 1
    result = run_bench(samples=args.samples, timesteps=tuple(args.timesteps), device=device,
                       repeats=args.repeats, bptt_steps=args.bptt_steps, progress=not args.quiet,
                       model=args.model, bptt=not args.skip_bptt)
    print(format_result(result))
    return 0


def _add_bench_parser(subparsers: Any) -> None:
    """Add the ``bench`` command (speed against spikingjelly and a plain torch loop).

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers``.
    """
    p = subparsers.add_parser(
        "bench", help="speed side by side: xbar, spikingjelly, a plain torch loop",
        description="Time a converted zoo model on MNIST (xbar with seed-4bit crossbars and an "
                    "energy meter, xbar float, spikingjelly's converter; for the MLP also a plain "
                    "torch loop and one BPTT step); print times, ratios, accuracies and peak memory.")
    p.add_argument("--model", default="mlp", metavar="NAME",
                   help="a model of the zoo, xbar.models.MODELS (mlp, lenet, ...; default mlp: "
                        "the 784-100-10 MLP); trained one epoch and cached on first use")
    p.add_argument("--samples", type=_positive_int, default=None, metavar="N",
                   help="MNIST test images (default $XBAR_BENCH_SAMPLES or 10000)")
    p.add_argument("--timesteps", type=_positive_int, nargs="+", default=[8, 32, 128], metavar="T",
                   help="simulation lengths (default 8 32 128)")
    p.add_argument("--torch-device", choices=("cpu", "cuda"), default=None,
                   help="the torch device the benchmark runs on (default cpu); the crossbars always use "
                        "the seed-4bit device profile")
    p.add_argument("--device", dest="old_device", choices=("cpu", "cuda"), default=None,
                   help="deprecated spelling of --torch-device (a torch device here, not a device profile "
                        "as in the study commands); still works, with a warning")
    p.add_argument("--repeats", type=_positive_int, default=3, metavar="R", help="timed rounds, best kept (default 3)")
    p.add_argument("--bptt-steps", type=_positive_int, default=10, metavar="S",
                   help="BPTT steps per round (default 10)")
    p.add_argument("--skip-bptt", action="store_true",
                   help="leave out the BPTT comparison (run for the MLP only in any case)")
    p.add_argument("--quiet", action="store_true", help="print only the table")
    p.set_defaults(func=_cmd_bench)


def build_parser() -> argparse.ArgumentParser:
    """The ``xbar`` argument parser with every command group.

    Returns:
        An :class:`argparse.ArgumentParser`; each leaf command sets ``func``.
    """
    parser = argparse.ArgumentParser(
        prog="xbar", description="Memristor crossbars under spiking neural networks.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_devices_parser(subparsers)
    _add_study_parsers(subparsers)
    _add_robustness_parser(subparsers)
    _add_bench_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``xbar`` command.

    Args:
        argv: arguments without the program name; None means ``sys.argv[1:]``.

    Returns:
        The exit status: 0 success, 1 a failed command, 2 a usage error.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else 2
    with warnings.catch_warnings():
        warnings.simplefilter("default", DeviceProfileWarning)  # each distinct warning once per command
        warnings.showwarning = _show_warning
        try:
            return int(args.func(args))
        except DeviceProfileError as exc:
            _profile_errors(exc)
            return 1
        except BrokenPipeError:
            return 1


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Device profile warnings as one ``warning:`` line on stderr; others as Python prints them."""
    if issubclass(category, DeviceProfileWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        (file or sys.stderr).write(warnings.formatwarning(message, category, filename, lineno, line))


if __name__ == "__main__":
    sys.exit(main())
