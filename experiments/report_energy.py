"""The energy part of ``xbar reproduce``'s report: per-mode energy per sample from the device
model, what each column counts, which terms are zero, and the totals with a cited periphery."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xbar.experiments.report_format import DASH, NOT_RUN, _modes, _num, _plot, _table, count, plain, sci


def _encoder_spikes(energy: Mapping[str, Any]) -> Any:
    """The input events of the first synaptic layer (the encoder's spikes), per sample."""
    first = next((l for l in energy.get("layers") or [] if l.get("kind") not in ("if", "digital", "output")), None)
    return None if first is None else first.get("input_events")


def _zero_terms(modes: Mapping[str, Mapping[str, Any]]) -> str:
    """A clause naming the terms of Total J that are zero in every mode (the device profile
    gives them no energy, or the network has no such work), e.g. ``"; here the ADC, neuron and
    digital terms are 0, so Total J, device model = Crossbar J"``."""
    names = (("adc_j", "ADC"), ("neuron_j", "neuron"), ("digital_j", "digital"))
    terms = [name for key, name in names if all(not _num((e.get("totals") or {}).get(key)) for e in modes.values())]
    if not terms:
        return ""
    tail = ", so Total J, device model = Crossbar J" if len(terms) == len(names) else ""
    listed = ", ".join(terms[:-1]) + (" and " if len(terms) > 1 else "") + terms[-1]
    return f"; here the {listed} term{'s are' if len(terms) > 1 else ' is'} 0{tail}"


def _sample_phrase(results: Mapping[str, Any], energies: Mapping[str, Mapping[str, Any]]) -> str:
    """Which images and spike trains the energy figures are averaged over, from the data."""
    images = sorted({int(e.get("samples") or 0) for e in energies.values()})
    limit = ((results.get("config") or {}).get("data") or {}).get("test_limit")
    which = f"the first {', '.join(f'{n:,}' for n in images)}" if limit is not None else \
        f"all {', '.join(f'{n:,}' for n in images)}"
    sets = [e.get("sample_set") or {} for e in energies.values()]
    seeds = sorted({plain(e.get("seed", 0)) for e in energies.values()})
    text = f"Per test sample, averaged over {which} MNIST test images, seed {', '.join(seeds)} networks"
    if sets and all(s.get("source") for s in sets):
        enc = sorted({plain(s.get("encoder_seed")) for s in sets})
        text += (f", at each mode's best T, measured in the timestep sweep's test pass (encoder seed "
                 f"{', '.join(enc)}): the same images and spike trains as `timesteps.csv`, whose "
                 "`joules` at the best T equals Total J here")
    else:
        text += ", at each mode's best T"
    return text + "."


def _periphery_phrase(results: Mapping[str, Any]) -> str:
    """The cited periphery the "with periphery" column prices, from the configuration."""
    est = (results.get("config") or {}).get("periphery_estimate") or {}
    if not est:
        return ""
    return (f" \"Total J, cited periphery\" prices the same counts with an ADC conversion per column read "
            f"({plain(est.get('adc_pj'))} pJ: {est.get('adc_source')}), a digital IF update per neuron and "
            f"timestep ({plain(est.get('neuron_update_pj'))} pJ: {est.get('neuron_source')}) and a spike "
            f"({plain(est.get('spike_pj'))} pJ: {est.get('spike_source')}), configuration "
            "`periphery_estimate`.")


def _device_phrase(results: Mapping[str, Any], energies: Mapping[str, Mapping[str, Any]]) -> str:
    """What the device model's Total J counts and which of its terms are zero."""
    devices = sorted({str(e.get("device")) for e in energies.values()})
    dev = results.get("device") if isinstance(results.get("device"), Mapping) else {}
    pj = (dev.get("energy") or {}) if isinstance(dev, Mapping) else {}
    adc_bits = ((dev.get("periphery") or {}) if isinstance(dev, Mapping) else {}).get("adc_bits")
    consts = ""
    if pj:
        consts = (f" (profile: ADC {'none' if adc_bits is None else f'{adc_bits} bits'}, "
                  f"{plain(pj.get('adc_pj'))} pJ per conversion; neuron update {plain(pj.get('neuron_update_pj'))} pJ; "
                  f"spike {plain(pj.get('spike_pj'))} pJ; digital add {plain(pj.get('digital_ac_pj'))} pJ, "
                  f"multiply-add {plain(pj.get('digital_mac_pj'))} pJ)")
    return (f" Device `{', '.join(devices)}`{consts}. \"Total J, device model\" is crossbar reads plus ADC "
            "conversions, neuron updates, spikes and digital work (bias adds, merges) as the profile prices "
            f"them{_zero_terms(energies)}.")


def _energy_section(results: Mapping[str, Any], plots: Mapping[str, str]) -> list[str]:
    """Energy per sample per mode from the device model, with a cited periphery, against
    digital ACs and MACs."""
    modes = {m: d["energy"] for m, d in _modes(results).items() if (d.get("energy") or {}).get("totals")}
    lines = ["## Energy", ""]
    if not modes:
        return lines + [NOT_RUN, ""]
    lines += _plot(plots, "energy_per_layer", "Energy per layer") + [""]
    rows = []
    priced = any((e.get("with_periphery") or {}).get("joules") is not None for e in modes.values())
    for mode, energy in modes.items():
        tot = energy["totals"]
        snn, ann = _num(tot.get("digital_snn_j")), _num(tot.get("digital_ann_j"))
        ratio = f"{ann / snn:.2f}×" if snn and ann is not None else DASH
        row = [mode, plain(energy.get("T", _modes(results)[mode].get("best_T"))),
               count(energy.get("encoder_spikes", _encoder_spikes(energy))),
               count(tot.get("input_events")), count(tot.get("acs")), sci(tot.get("crossbar_j")),
               sci(tot.get("joules"))]
        if priced:
            row.append(sci((energy.get("with_periphery") or {}).get("joules")))
        rows.append(row + [sci(snn), sci(ann), ratio])
    head = ["Mode", "T", "Encoder spikes", "Input events, all crossbar layers", "ACs", "Crossbar J",
            "Total J, device model"] + (["Total J, cited periphery"] if priced else []) + \
        ["Digital SNN J", "Digital ANN J", "ANN/SNN digital"]
    lines += _table(head, rows)
    return lines + ["", _sample_phrase(results, modes) + " \"Encoder spikes\" are the Poisson "
                    "encoder's spikes (the input events of the first layer); \"Input events, all "
                    "crossbar layers\" adds the spikes entering every later layer; ACs are input "
                    "events × fan-out." + _device_phrase(results, modes)
                    + (_periphery_phrase(results) if priced else "")
                    + " Neither total counts the output layer's accumulation over T, spike routing, "
                    "input drivers (DACs) or control. Digital SNN J is ACs × the AC energy (plus bias adds, if "
                    "any); digital ANN J is the ANN's dense MACs × the MAC energy (both from the device profile).", ""]
