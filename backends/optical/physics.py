"""One exposure of the simulated 4f correlator, with every effect that bounds a real one (each switchable).

    input SLM   a(x) = quantized, bit-sliced, non-negative amplitude frame (zero outside the used aperture)
    lens 1      A(u) = F{a}                       (numpy FFT on a grid padded by the kernel: linear correlation)
    filter SLM  H(u) = Q_filter(F{h flipped})     (complex | amplitude-only | phase-only, filter_bits levels)
    lens 2      E(x) = F^-1{A·H} = (a ⋆ h)(x)      (correlation, valid where the kernel lies inside the frame)
    camera      N_e  = Poisson(FW·|E|²/max|E|²) + N(0, σ_read²),  code = ADC(N_e)  (adc_bits over the full well)
    host        |E|^ = sqrt(code·max|E|²/FW-scale)  (intensity) or Re E^ from a heterodyne read (coherent)
The exposure is set so the brightest pixel of each frame fills the full well (an ideal per-frame calibration,
stated in docs/optical.md). Shot noise is Poisson in photo-electrons, read noise Gaussian in electrons.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .config import OpticalConfig


@dataclass
class Counters:
    """What the simulated machine did (summed over an op)."""

    frames: int = 0             # camera exposures
    filter_loads: int = 0       # Fourier-plane filter refreshes
    dynamic_loads: int = 0      # ... of which the filter depended on the input (a host FFT each at run time)
    in_bytes: int = 0           # host -> input SLM
    out_bytes: int = 0          # camera -> host
    filter_bytes: int = 0       # host -> filter SLM
    host_flops: float = 0.0     # sign recovery, bias corrections, slice/chunk recombination
    optical_macs: float = 0.0   # useful multiply-accumulates done in light
    notes: list[str] = field(default_factory=list)

    def add(self, other: "Counters") -> None:
        for name in ("frames", "filter_loads", "dynamic_loads", "in_bytes", "out_bytes", "filter_bytes",
                     "host_flops", "optical_macs"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.notes.extend(n for n in other.notes if n not in self.notes)


def fast_len(n: int) -> int:
    """The smallest 2^a·3^b·5^c >= n (FFT sizes numpy transforms fastest; more zero padding changes nothing)."""
    best = 1 << max(n - 1, 0).bit_length()
    p5 = 1
    while p5 < 2 * n:
        p35 = p5
        while p35 < 2 * n:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _levels(bits: int) -> int:
    return (1 << bits) - 1


def quantize_filter(H: np.ndarray, cfg: OpticalConfig) -> tuple[np.ndarray, float]:
    """The filter SLM's pattern for spectrum H and the scale the host multiplies back (max |H|).

    complex: amplitude and phase each on `filter_bits` levels; amplitude: |H| only (phase lost); phase: the
    phase-only filter exp(i·arg H) (amplitude lost) - the last two compute a different correlation, by design."""
    peak = float(np.max(np.abs(H))) or 1.0
    amp, phase = np.abs(H) / peak, np.angle(H)
    if cfg.quantize:
        L = _levels(cfg.filter_bits)
        amp = np.round(amp * L) / L
        step = 2 * math.pi / (1 << cfg.filter_bits)
        phase = np.round(phase / step) * step
    if cfg.filter_mode == "amplitude":
        return amp.astype(np.complex128), peak
    if cfg.filter_mode == "phase":
        return np.exp(1j * phase), peak
    return amp * np.exp(1j * phase), peak


class Simulator:
    """The 4f machine of `cfg`: `correlate` runs frames through it; `stats` counts what it did."""

    def __init__(self, cfg: OpticalConfig):
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)

    # ---- input encoding -------------------------------------------------------------------------------------
    def slices(self, frames: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Split non-negative (or, coherent, signed) frames into device frames: (amplitudes in [-1, 1], weight)
        with frames = Σ weight·slice. operand_bits codes are cut into slices of `slice_bits` (1 on a DMD)."""
        cfg = self.cfg
        peak = float(np.max(np.abs(frames))) if frames.size else 0.0
        if peak == 0.0:
            return []
        if not cfg.quantize:
            return [(frames / peak, peak)]
        L = _levels(cfg.operand_bits)
        codes = np.round(np.abs(frames) / peak * L).astype(np.int64)
        sign = np.sign(frames)
        sb = min(cfg.slice_bits, cfg.operand_bits)
        out = []
        for s in range(math.ceil(cfg.operand_bits / sb)):
            part = (codes >> (s * sb)) & _levels(sb)
            out.append((sign * part / _levels(sb), peak * _levels(sb) * (1 << (s * sb)) / L))
        return out

    @property
    def slices_per_frame(self) -> int:
        """Device frames one operand frame takes (each exposed and read on its own)."""
        cfg = self.cfg
        return math.ceil(cfg.operand_bits / min(cfg.slice_bits, cfg.operand_bits)) if cfg.quantize else 1

    # ---- one exposure ---------------------------------------------------------------------------------------
    def expose(self, frame: np.ndarray, Hq: np.ndarray, kshape: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
        """Camera estimate of E = frame ⋆ kernel (up to the filter scale) on the frame's own pixel grid.
        Real FFTs: a real frame and a real kernel have a Hermitian spectrum, every filter quantizer keeps it
        Hermitian, so the output field is real (exact, not an approximation; half the work of complex FFTs)."""
        (fh, fw), (kh, kw) = frame.shape, kshape
        E = np.fft.irfft2(np.fft.rfft2(frame, grid) * Hq, grid)[kh - 1:kh - 1 + fh, kw - 1:kw - 1 + fw]
        return self.detect(E)

    def detect(self, E: np.ndarray) -> np.ndarray:
        """The camera: |E|² (or Re E by heterodyne) in electrons, shot + read noise, ADC; back in field units."""
        cfg = self.cfg
        if cfg.detection == "coherent":  # reference beam: signal rides on FW/2, reads Re(E) with its sign
            peak = float(np.max(np.abs(E.real))) or 1.0
            ne = (E.real / peak + 1.0) * (cfg.full_well_e / 2)
        else:
            I = np.abs(E) ** 2
            peak = float(np.max(I)) or 1.0
            ne = I / peak * cfg.full_well_e
        if cfg.shot_noise:
            ne = self.rng.poisson(ne).astype(np.float64)
        if cfg.read_noise and cfg.read_noise_e > 0:
            ne = ne + self.rng.normal(0.0, cfg.read_noise_e, ne.shape)
        if cfg.quantize:
            L = _levels(cfg.adc_bits)
            ne = np.clip(np.round(ne / cfg.full_well_e * L), 0, L) * (cfg.full_well_e / L)
        if cfg.detection == "coherent":
            return (ne / (cfg.full_well_e / 2) - 1.0) * peak
        return np.sqrt(np.maximum(ne, 0.0) / cfg.full_well_e * peak)

    # ---- a correlation over many frames with one filter -----------------------------------------------------
    def correlate(self, frames: list[np.ndarray], kernel: np.ndarray, stats: Counters,
                  dynamic: bool = False) -> list[np.ndarray]:
        """Each frame (fh, fw) ⋆ kernel (kh, kw) under ONE filter load, valid wherever the kernel lies inside
        the frame. Operands must be non-negative under intensity detection (mapping.py's sign encodings)."""
        cfg = self.cfg
        kh, kw = kernel.shape
        if cfg.detection == "intensity" and (np.min(kernel) < 0 or any(np.min(f, initial=0) < 0 for f in frames)):
            raise ValueError("optical: intensity detection needs non-negative operands (apply a sign encoding)")
        outs = [np.zeros(f.shape) for f in frames]
        stats.filter_loads += 1
        stats.dynamic_loads += int(dynamic)
        stats.filter_bytes += cfg.aperture[0] * cfg.aperture[1] * math.ceil(cfg.filter_bits / 8)
        n = self.slices_per_frame
        in_b, out_b = math.ceil(cfg.slice_bits / 8), math.ceil(cfg.adc_bits / 8)
        spectra: dict[tuple[int, int], tuple[np.ndarray, float]] = {}  # one filter, sampled per frame grid
        for frame, out in zip(frames, outs):
            fh, fw = frame.shape
            stats.frames += n
            stats.in_bytes += n * fh * fw * in_b
            stats.out_bytes += n * fh * fw * out_b
            if not np.any(kernel):
                continue
            grid = (fast_len(fh + kh - 1), fast_len(fw + kw - 1))  # >= frame + kernel - 1: linear, not circular
            if grid not in spectra:
                spectra[grid] = quantize_filter(np.fft.rfft2(kernel[::-1, ::-1], grid), cfg)
            Hq, hscale = spectra[grid]
            for amp, weight in self.slices(frame):
                if np.any(amp):  # a dark slice reads dark (its exposure is still counted above)
                    out += weight * hscale * self.expose(amp, Hq, (kh, kw), grid)
        return outs
