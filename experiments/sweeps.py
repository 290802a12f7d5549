"""Sweeps over timesteps and firing rates, with several networks sharing one input stream.

Timestep sweep (``timestep_sweep``): one simulation of ``T_max`` steps per batch; the
accuracy at ``T`` is read from the output averaged over the first ``T`` steps. Because the IF
state starts at zero and nothing looks ahead, the first ``T`` steps of a ``T_max`` run *are* a
``T``-step run on the same spike trains, so every ``T`` of the sweep is an honest ``T``-step
evaluation, at half the cost of separate runs. All networks of a sweep see the same Poisson
spike trains (common random numbers), which makes mode-to-mode differences less noisy.

Firing-rate sweep (``rate_sweep``): per batch one draw of uniform numbers ``u`` ``[T, B, ...]``;
the spikes at rate ``r`` are ``u < r * pixel`` (again common random numbers across rates).
"""

from __future__ import annotations

import time
from contextlib import ExitStack, contextmanager
from typing import Any, Iterable, Iterator

import torch

import xbar
from xbar.snn import SpikingNetwork


class TensorLoader:
    """Batches of ``(images, labels)`` from in-memory tensors; optional seeded shuffling.

    Much faster than a ``DataLoader`` over per-item ``__getitem__`` for MNIST-sized data.

    Args:
        images: ``[N, ...]`` float tensor.
        labels: ``[N]`` int64 tensor.
        batch_size: rows per batch (the last batch may be smaller).
        shuffle: reshuffle every pass with a generator seeded by ``seed``.
        seed: the shuffling seed.
        limit: use only the first ``limit`` rows.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, shuffle: bool = False,
                 seed: int = 0, limit: int | None = None) -> None:
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        self.images, self.labels = images, labels
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)
        self.per_pass = len(labels)

    def take(self, n: int) -> "TensorLoader":
        """Yield only the first ``n`` rows of each (shuffled) pass; returns self."""
        self.per_pass = min(int(n), len(self.labels))
        return self

    def __len__(self) -> int:
        return (self.per_pass + self.batch_size - 1) // self.batch_size

    @property
    def num_samples(self) -> int:
        """Number of rows per pass."""
        return int(self.per_pass)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.per_pass
        order = torch.randperm(len(self.labels), generator=self.generator) if self.shuffle else None
        for i in range(0, n, self.batch_size):
            j = min(i + self.batch_size, n)
            if order is None:
                yield self.images[i:j], self.labels[i:j]
            else:
                idx = order[i:j]
                yield self.images[idx], self.labels[idx]


@contextmanager
def _metering(nets: dict[str, SpikingNetwork], device: xbar.DeviceProfile) -> Iterator[dict[str, xbar.EnergyMeter]]:
    """One active :class:`~xbar.EnergyMeter` per network, all removed on exit."""
    with ExitStack() as stack:
        yield {n: stack.enter_context(xbar.EnergyMeter(net, device)) for n, net in nets.items()}


def _boundaries(checkpoints: list[int], chunk: int) -> list[int]:
    t_max = max(checkpoints)
    return sorted(set(checkpoints) | set(range(chunk, t_max, chunk)))


@torch.no_grad()
def timestep_sweep(nets: dict[str, SpikingNetwork], loader: Iterable, checkpoints: list[int],
                   max_rate: float, seed: int, device: xbar.DeviceProfile, chunk: int = 32,
                   progress: bool = False, desc: str = "timesteps",
                   reports: dict[str, int] | None = None) -> dict[str, list[dict]]:
    """Accuracy, input spikes, ACs, joules and wall time at every ``T`` in ``checkpoints``.

    Args:
        nets: the networks to evaluate, by name (their own ``timesteps`` are ignored).
        loader: ``(images, labels)`` batches.
        checkpoints: ascending ``T`` values; the simulation runs ``max(checkpoints)`` steps.
        max_rate: Poisson encoder's maximum firing rate.
        seed: seed of the encoder's generator.
        device: profile for the energy meter (float layers are charged as if on it).
        chunk: simulate at most this many steps at once (memory bound).
        progress: show a progress bar over batches.
        desc: the progress bar's label.
        reports: ``{net name: T}`` (``T`` one of ``checkpoints``): also meter the first ``T``
            steps of every batch of that net layer by layer, on the same spike trains as the
            rows, so the report's totals equal the row at ``T``.

    Returns:
        For each net, one row per ``T``: ``T``, ``acc``, ``input_spikes``, ``acs``, ``joules``
        (per sample) and ``wall_s`` (seconds to simulate ``T`` steps of the whole loader with
        this net, its share of the encoding included). With ``reports``, the key
        ``"reports"`` maps each named net to ``{"T": T, "encoder_spikes": ..., "report":
        EnergyReport}`` (per sample).
    """
    from tqdm.auto import tqdm

    enc = xbar.PoissonEncoder(max_rate, torch.Generator().manual_seed(seed))
    bounds = _boundaries(checkpoints, chunk)
    keys = ("correct", "acs", "joules", "wall_s")
    acc = {n: {t: dict.fromkeys(keys, 0.0) for t in checkpoints} for n in nets}
    spikes_at = dict.fromkeys(checkpoints, 0.0)
    samples = 0
    reports = dict(reports or {})
    for n, t in reports.items():
        if n not in nets or t not in checkpoints:
            raise ValueError(f"reports: {n!r} at T={t} is not a net and checkpoint of this sweep")
    if "reports" in nets and reports:
        raise ValueError("reports: a net named 'reports' clashes with the key of the layer reports")
    layer_meters = {n: xbar.EnergyMeter(nets[n], device) for n in reports}
    with _metering(nets, device) as meters, ExitStack() as cleanup:
        for m in layer_meters.values():
            cleanup.callback(m.stop)
        for x, y in tqdm(loader, desc=desc, disable=not progress, leave=False):
            samples += int(y.shape[0])
            for m in layer_meters.values():
                m.start()
            base = {n: m.raw_totals() for n, m in meters.items()}
            sums = {n: None for n in nets}
            elapsed = dict.fromkeys(nets, 0.0)
            for net in nets.values():
                net.reset()
                net.sync_thresholds()
            t_prev, spikes = 0, 0.0
            for b in bounds:
                t0 = time.perf_counter()
                s = enc(x, b - t_prev)
                enc_s = time.perf_counter() - t0
                spikes += float(s.sum())
                for n, net in nets.items():
                    t0 = time.perf_counter()
                    out = net.run(s, return_sequence=True, binary=True, keep_state=True).sum(0)
                    sums[n] = out if sums[n] is None else sums[n] + out
                    elapsed[n] += time.perf_counter() - t0 + enc_s
                    if b in acc[n]:
                        row = acc[n][b]
                        row["correct"] += float((sums[n].argmax(1) == y).sum())
                        tot = meters[n].raw_totals()
                        row["acs"] += tot["acs"] - base[n]["acs"]
                        row["joules"] += tot["joules"] - base[n]["joules"]
                        row["wall_s"] += elapsed[n]
                    if reports.get(n) == b:
                        layer_meters[n].stop()
                if b in spikes_at:
                    spikes_at[b] += spikes
                t_prev = b
            for net in nets.values():
                net.reset()
    out: dict[str, Any] = {}
    for n in nets:
        out[n] = [{"T": t, "acc": r["correct"] / samples, "input_spikes": spikes_at[t] / samples,
                   "acs": r["acs"] / samples, "joules": r["joules"] / samples, "wall_s": r["wall_s"]}
                  for t, r in acc[n].items()]
    if reports:
        out["reports"] = {}
        for n, m in layer_meters.items():
            m.samples = samples  # the network counts a sample per chunk; the sweep knows the truth
            out["reports"][n] = {"T": reports[n], "encoder_spikes": spikes_at[reports[n]] / samples,
                                 "report": m.report()}
    return out


@torch.no_grad()
def rate_sweep(nets: dict[str, SpikingNetwork], loader: Iterable, timesteps: int, rates: list[float],
               seed: int, device: xbar.DeviceProfile, progress: bool = False,
               desc: str = "rates") -> dict[str, list[dict]]:
    """Accuracy, input spikes and ACs per sample at every maximum firing rate, at fixed ``T``.

    Returns:
        For each net, one row per rate: ``rate``, ``acc``, ``input_spikes``, ``acs``.
    """
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(seed)
    stats = {n: {r: [0.0, 0.0, 0.0] for r in rates} for n in nets}
    spikes_at = dict.fromkeys(rates, 0.0)
    samples = 0
    with _metering(nets, device) as meters:
        for x, y in tqdm(loader, desc=desc, disable=not progress, leave=False):
            samples += int(y.shape[0])
            u = torch.rand((timesteps, *x.shape), generator=gen, dtype=x.dtype)
            for r in rates:
                s = (u < r * x).to(x.dtype)
                spikes_at[r] += float(s.sum())
                for n, net in nets.items():
                    before = meters[n].raw_totals()["acs"]
                    pred = net.run(s).argmax(1)
                    stats[n][r][0] += float((pred == y).sum())
                    stats[n][r][1] += meters[n].raw_totals()["acs"] - before
    return {n: [{"rate": r, "acc": v[0] / samples, "input_spikes": spikes_at[r] / samples,
                 "acs": v[1] / samples} for r, v in stats[n].items()] for n in nets}
