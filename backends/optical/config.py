"""The simulated 4f machine's parameters: the catalog spec (cost_models/specs/optical-4f.json) plus compile options.

Every physical figure comes from the spec's `optical` section (each with its source there); compile options only
switch effects on/off or override a figure for a what-if. Unknown options are an error that lists the known ones.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from ...cost_models.hardware import get_hardware
from ...cost_models.optical4f import Optical4fDevice
from .record import DEVICE

INPUT_MODES = ("amplitude", "bitplanes")          # grey-level amplitude SLM | binary DMD, one frame per bit
FILTER_MODES = ("complex", "amplitude", "phase")  # Fourier-plane filter modulation
DETECTIONS = ("intensity", "coherent")            # camera reads |E|^2 | heterodyne reads Re(E)
SIGN_POLICIES = ("two_pass", "bias")
PLACEMENTS = ("optical", "host")


class OpticalOptionError(ValueError):
    """A compile option of target 'optical' that is unknown or out of range."""


@dataclass(frozen=True)
class OpticalConfig:
    """What the simulator does. Bits are device bit depths; `None`/False switches an effect off."""

    aperture: tuple[int, int]            # usable rows x cols (min of input SLM, filter SLM, camera)
    input_bits: int                      # input SLM grey levels (DMD: bit-planes per grey frame)
    operand_bits: int                    # bits an operand is quantized to before slicing onto the device
    filter_bits: int                     # Fourier-plane filter levels (amplitude and/or phase)
    adc_bits: int                        # camera ADC
    input_mode: str = "amplitude"
    filter_mode: str = "complex"
    detection: str = "intensity"
    signed_weights: str = "two_pass"
    signed_inputs: str = "bias"
    quantize: bool = True                # input/filter/ADC quantization on or off (all together)
    shot_noise: bool = True
    read_noise: bool = True
    full_well_e: float = 10000.0         # photo-electrons at the brightest pixel of a frame (exposure fills the well)
    read_noise_e: float = 10.0           # rms read noise in electrons
    seed: int = 0
    attention: str = "optical"           # QK^T / PV: optical with data-dependent filter refresh, or host
    matmul_n_tile: int | None = None     # fixed output columns per filter tile (default: the cost model's choice)

    @property
    def slice_bits(self) -> int:
        """Bits one input frame carries: 1 on a binary bit-plane DMD, else the SLM's grey depth."""
        return 1 if self.input_mode == "bitplanes" else self.input_bits

    def describe(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_OPTION_KEYS = {f.name for f in fields(OpticalConfig)} | {"hardware", "filter", "noise", "bits"}


def config_from_options(options: dict[str, Any] | None) -> tuple[OpticalConfig, Optical4fDevice]:
    """The simulator config and the cost model's device for compile `options` (see docs/optical.md for the list).

    `bits=B` sets every bit depth (operand, input, filter, ADC) at once; `noise=False` switches shot and read
    noise off; `hardware` names another optical catalog entry; `filter` picks "lcos" | "dmd" from the spec."""
    opts = dict(options or {})
    unknown = sorted(set(opts) - _OPTION_KEYS)
    if unknown:
        raise OpticalOptionError(f"target 'optical': unknown option(s) {unknown}; known: {sorted(_OPTION_KEYS)}")
    hw = get_hardware(opts.pop("hardware", DEVICE))
    dev = Optical4fDevice.from_spec(hw, filter=opts.pop("filter", None))
    phys = hw.extra["optical"].get("physics", {})
    cam = hw.extra["optical"]["camera"]
    cfg = OpticalConfig(
        aperture=dev.aperture, input_bits=dev.input_bits, operand_bits=dev.operand_bits, filter_bits=dev.filter_bits,
        adc_bits=dev.adc_bits, input_mode=phys.get("input_modulation", "amplitude"),
        filter_mode=phys.get("filter_modulation", "complex"), detection=phys.get("detection", "intensity"),
        signed_weights=dev.signed_weights, signed_inputs=dev.signed_inputs,
        full_well_e=float(cam.get("full_well_e", 10000.0)), read_noise_e=float(cam.get("read_noise_e", 10.0)))
    if "bits" in opts:
        b = opts.pop("bits")
        cfg = replace(cfg, operand_bits=b, input_bits=b, filter_bits=b, adc_bits=b)
    if "noise" in opts:
        on = bool(opts.pop("noise"))
        cfg = replace(cfg, shot_noise=on, read_noise=on)
    if "aperture" in opts:
        a = opts.pop("aperture")
        opts["aperture"] = (int(a), int(a)) if isinstance(a, int) else tuple(int(x) for x in a)
    cfg = replace(cfg, **opts)
    _check(cfg)
    # the cost model's device follows the simulated machine (aperture, bits, sign policies) so frames agree
    dev = replace(dev, operand_bits=cfg.operand_bits, input_bits=cfg.input_bits, filter_bits=cfg.filter_bits,
                  adc_bits=cfg.adc_bits, signed_weights=cfg.signed_weights, signed_inputs=cfg.signed_inputs,
                  input_px=cfg.aperture, filter_px=cfg.aperture, camera_px=cfg.aperture)
    return cfg, dev


def _check(cfg: OpticalConfig) -> None:
    def bad(field: str, why: str):
        raise OpticalOptionError(f"target 'optical': option {field}={getattr(cfg, field)!r}: {why}")

    for name, allowed in (("input_mode", INPUT_MODES), ("filter_mode", FILTER_MODES), ("detection", DETECTIONS),
                          ("signed_weights", SIGN_POLICIES), ("signed_inputs", SIGN_POLICIES),
                          ("attention", PLACEMENTS)):
        if getattr(cfg, name) not in allowed:
            bad(name, f"must be one of {allowed}")
    for name in ("input_bits", "operand_bits", "filter_bits", "adc_bits"):
        if not isinstance(getattr(cfg, name), int) or not 1 <= getattr(cfg, name) <= 32:
            bad(name, "must be an integer bit depth in 1..32")
    if len(cfg.aperture) != 2 or min(cfg.aperture) < 1:
        bad("aperture", "must be a positive (rows, cols) pair")
    if cfg.full_well_e <= 0 or cfg.read_noise_e < 0:
        bad("full_well_e" if cfg.full_well_e <= 0 else "read_noise_e", "must be positive / non-negative")
