"""Timing and energy of a simulated free-space 4f optical correlator — a simulation estimate, never a measurement.

The device (numbers and sources in `specs/optical-4f.json`, key "optical", i.e. `HardwareSpec.extra["optical"]`):
an input DMD showing b_in-bit frames as b_in binary bit-planes at f_bin; a Fourier-plane filter SLM (phase LCoS,
refresh 1/f_lcos, or a DMD, b_f bit-planes at f_bin); a camera (f_cam frames/s, ADC bits) that reads intensity
|E|^2; electronic links host->SLM (B_in) and camera->host (B_out); an electronic host (R_host FLOP/s, B_host B/s)
for every nonlinear op. The usable aperture A_h x A_w is the elementwise minimum of the three resolutions.

Equations (per op; U filter updates, of which U_d carry data-dependent weights, F frames):
    t_in    = b_in / f_bin                     t_cam = 1 / f_cam
    t_frame = max(t_in, t_cam, in_bytes / F / B_in, out_bytes / F / B_out)          (frames pipeline)
    t_upd   = max(t_refresh, filter_bytes / U / B_in)    (the filter must be still while a frame is exposed)
    t_fft   = 5 N log2 N / R_host,  N = A_h·A_w           (host FFT of each dynamic filter; static spectra are
                                                          computed once at load time and not priced)
    T       = F·t_frame + U·t_cam (last readout of each run) + U·t_upd + U_d·t_fft + T_host
    T_host  = max(host_flops / R_host, host_bytes / B_host)
    E       = F·E_frame + U·P_opt·t_upd + U_d·(P_opt + P_host)·t_fft + P_host·T_host + e_io·(all link bytes)
    E_frame = P_opt·t_frame + camera pixels·2^adc_bits·FOM_adc,   P_opt = P_input + P_filter + P_camera + P_laser
(the optical bench stays powered while it waits for a filter refresh or a host FFT).

Policies: operands are quantized to `operand_bits` (spec, default 8); p bits on b-bit devices take
ceil(p / b_in) input slices x ceil(p / b_f) weight slices x ceil(p / adc_bits) camera exposures, recombined with
shifts on the host. Signed weights take two passes (W = W+ - W-, "two_pass") or a bias ("bias"); signed inputs
default to two passes as well (the "bias" option, x + c >= 0 corrected on the host by c·colsum(W), puts the signal on
a pedestal; docs/optical.md). The detector reads |E|^2 of a non-negative
field, so the host takes one square root per output per pass and combines passes and k-chunks.
Mappings (Goodman, Introduction to Fourier Optics, ch. 8: a 4f system correlates the input with the filter's kernel):
  * correlation of P planes (h x w) with one kernel (kh x kw): planes tile the aperture side by side (pitch h for
    valid padding, h+kh-1 otherwise); one frame per (aperture of planes x filter); larger planes use overlap-save.
  * matmul X(m x k) @ W(k x n): W's (k_t x n_t) tile is the kernel; X rows are laid out n_t apart vertically and k_t
    apart horizontally, so the zero-shift correlation outputs are the n_t dot products of every row:
    k_t = min(k, A_w), n_t = min(n, A_h), rows/frame = floor(A_h/n_t)·floor(A_w/k_t), filters = ceil(k/A_w)·ceil(n/A_h).
    Weight-stationary: each filter serves all m rows (and the whole batch) before the next is loaded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .hardware import HardwareError, HardwareSpec, get_hardware


@dataclass(frozen=True)
class Optical4fDevice:
    """The 4f system's timing and power figures (read from a spec's `extra["optical"]`)."""

    input_px: tuple[int, int]       # (rows, cols)
    input_bits: int
    binary_rate_hz: float
    filter_px: tuple[int, int]
    filter_name: str
    filter_bits: int
    filter_refresh_s: float
    camera_px: tuple[int, int]
    camera_rate_hz: float
    adc_bits: int
    adc_j_per_step: float
    host_to_slm_bps: float
    camera_to_host_bps: float
    io_j_per_byte: float
    host_flops: float
    host_bps: float
    host_power_w: float
    optical_power_w: float
    fft_flops_per_point_log2: float = 5.0
    operand_bits: int = 8
    signed_weights: str = "two_pass"
    signed_inputs: str = "bias"

    @classmethod
    def from_spec(cls, hw: HardwareSpec | str = "optical-4f", filter: str | None = None,
                  **overrides: Any) -> "Optical4fDevice":
        """Device of an optical spec; `filter` picks an entry of `filter_slms` ("lcos" | "dmd"); `overrides` replace fields."""
        hw = get_hardware(hw)
        o = hw.extra.get("optical")
        if not isinstance(o, dict):
            raise HardwareError(f"{hw.name} has no 'optical' section; the 4f model needs one (see specs/optical-4f.json)")
        try:
            name = filter or o["filter"]
            slms = o["filter_slms"]
            if name not in slms:
                raise HardwareError(f"{hw.name}: unknown filter SLM {name!r}; known: {', '.join(slms)}")
            f, i, c = slms[name], o["input_slm"], o["camera"]
            refresh = 1.0 / f["frame_rate_hz"] if "frame_rate_hz" in f else f["bits"] / f["binary_frame_rate_hz"]
            dev = cls(
                input_px=(int(i["height"]), int(i["width"])), input_bits=int(i["bits"]),
                binary_rate_hz=float(i["binary_frame_rate_hz"]),
                filter_px=(int(f["height"]), int(f["width"])), filter_name=name, filter_bits=int(f["bits"]),
                filter_refresh_s=float(refresh),
                camera_px=(int(c["height"]), int(c["width"])), camera_rate_hz=float(c["frame_rate_hz"]),
                adc_bits=int(c["adc_bits"]), adc_j_per_step=float(c["adc_energy_per_conversion_step_j"]),
                host_to_slm_bps=float(o["io"]["host_to_slm_bytes_per_s"]),
                camera_to_host_bps=float(o["io"]["camera_to_host_bytes_per_s"]),
                io_j_per_byte=float(o["io"]["energy_per_byte_j"]),
                host_flops=float(o["host"]["flops"]), host_bps=float(o["host"]["bytes_per_s"]),
                host_power_w=float(o["host"]["power_w"]),
                optical_power_w=float(i["power_w"] + f["power_w"] + c["power_w"] + o["laser"]["power_w"]),
                fft_flops_per_point_log2=float(o["host"].get("fft_flops_per_point_log2", 5)),
                operand_bits=int(o.get("operand_bits", 8)), signed_weights=o.get("signed_weights", "two_pass"),
                signed_inputs=o.get("signed_inputs", "bias"))
        except KeyError as e:
            raise HardwareError(f"{hw.name}: optical section misses field {e.args[0]!r}") from None
        dev = replace(dev, **overrides) if overrides else dev
        for pol in ("signed_weights", "signed_inputs"):
            if getattr(dev, pol) not in ("two_pass", "bias"):
                raise HardwareError(f"{hw.name}: {pol} must be 'two_pass' or 'bias', got {getattr(dev, pol)!r}")
        return dev

    # ---- derived figures -----------------------------------------------------------------------------
    @property
    def aperture(self) -> tuple[int, int]:
        """(rows, cols) usable by a correlation: the smallest of input SLM, filter SLM and camera."""
        return (min(self.input_px[0], self.filter_px[0], self.camera_px[0]),
                min(self.input_px[1], self.filter_px[1], self.camera_px[1]))

    @property
    def input_frame_s(self) -> float:
        return self.input_bits / self.binary_rate_hz

    @property
    def camera_frame_s(self) -> float:
        return 1.0 / self.camera_rate_hz

    @property
    def fft_s(self) -> float:
        """Host time of one aperture-sized 2-D FFT (a dynamic filter's spectrum)."""
        n = self.aperture[0] * self.aperture[1]
        return self.fft_flops_per_point_log2 * n * math.log2(n) / self.host_flops

    @property
    def adc_j_per_frame(self) -> float:
        return self.camera_px[0] * self.camera_px[1] * (2 ** self.adc_bits) * self.adc_j_per_step

    def passes(self, signed_weights: bool, signed_inputs: bool) -> tuple[int, int]:
        """(weight passes, input passes): bit slices and sign passes per the stated policies."""
        p = self.operand_bits
        wp = math.ceil(p / self.filter_bits) * (2 if signed_weights and self.signed_weights == "two_pass" else 1)
        ip = math.ceil(p / self.input_bits) * math.ceil(p / self.adc_bits)
        ip *= 2 if signed_inputs and self.signed_inputs == "two_pass" else 1
        return wp, ip


@dataclass
class OpticalWork:
    """What one op asks of the 4f system and of the host."""

    frames: int = 0
    filter_updates: int = 0
    dynamic_updates: int = 0          # updates whose filter depends on the input (host FFT each)
    in_bytes: float = 0.0             # host -> input SLM
    out_bytes: float = 0.0            # camera -> host
    filter_bytes: float = 0.0         # host -> filter SLM
    host_flops: float = 0.0
    host_bytes: float = 0.0
    optical_macs: float = 0.0         # useful multiply-accumulates done in light
    tile: tuple | None = None         # matmul: (k_t, n_t) of the weight tile on the filter
    notes: list[str] = field(default_factory=list)

    def __add__(self, other: "OpticalWork") -> "OpticalWork":
        out = OpticalWork(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)
                             if f.name not in ("notes", "tile")})
        out.notes = self.notes + [n for n in other.notes if n not in self.notes]
        return out


def _sign_host_flops(outputs: float, reads: int, signed_inputs: bool, dev: Optical4fDevice) -> float:
    """sqrt of |E|^2 per output per read, combining reads, and the input-offset correction."""
    return outputs * (2 * reads - 1) + (outputs if signed_inputs and dev.signed_inputs == "bias" else 0)


def correlate(dev: Optical4fDevice, planes: int, image: tuple[int, int], kernel: tuple[int, int], filters: int = 1,
              padding: str = "valid", signed_weights: bool = True, signed_inputs: bool = True,
              dynamic: bool = False) -> OpticalWork:
    """`planes` (h x w) maps each correlated with each of `filters` (kh x kw) kernels (a shared-kernel depthwise conv
    is filters=1). One frame per aperture of tiled planes per filter and pass."""
    (h, w), (kh, kw) = image, kernel
    if kh > h or kw > w or min(h, w, kh, kw, planes, filters) <= 0:
        raise ValueError(f"correlate: kernel {kernel} must fit image {image}; planes={planes}, filters={filters}")
    if padding not in ("valid", "same"):
        raise ValueError(f"correlate: padding must be 'valid' or 'same', got {padding!r}")
    ah, aw = dev.aperture
    oh, ow = (h - kh + 1, w - kw + 1) if padding == "valid" else (h, w)
    ph, pw = (h, w) if padding == "valid" else (h + kh - 1, w + kw - 1)  # same padding needs a zero guard band
    if ph <= ah and pw <= aw:
        tiles, per_frame = 1, (ah // ph) * (aw // pw)
    else:  # overlap-save: aperture-sized tiles, each yielding (A - k + 1) valid outputs per axis
        if kh > ah or kw > aw:
            raise ValueError(f"correlate: kernel {kernel} exceeds the {ah}x{aw} aperture")
        tiles, per_frame = math.ceil(oh / (ah - kh + 1)) * math.ceil(ow / (aw - kw + 1)), 1
    wp, ip = dev.passes(signed_weights, signed_inputs)
    per_filter = math.ceil(planes * tiles / per_frame)
    updates = filters * wp
    outputs = float(planes * filters * oh * ow)
    in_b, out_b = math.ceil(dev.input_bits / 8), math.ceil(dev.adc_bits / 8)
    work = OpticalWork(frames=updates * per_filter * ip, filter_updates=updates,
                       dynamic_updates=updates if dynamic else 0,
                       in_bytes=float(planes * h * w * in_b * updates * ip), out_bytes=outputs * out_b * wp * ip,
                       filter_bytes=float(updates * ah * aw * math.ceil(dev.filter_bits / 8)),
                       host_flops=_sign_host_flops(outputs, wp * ip, signed_inputs, dev),
                       optical_macs=outputs * kh * kw)
    work.host_bytes = work.out_bytes + outputs * 4  # read the camera values, write float results
    return work


# Accuracy bound on the filter tile (docs/optical.md "Why the filter tile is capped"). The Fourier filter is
# quantized against its largest spectral amplitude, the DC term = the sum of all n_t·k_t non-negative weights of
# the tile, while each output reads one k_t-long row of it; by Parseval the quantization noise of a product is
# then ≈ n_t / ((2^b_f − 1)·√12) of its value (uniform rounding, step/√12). Capping n_t at FILTER_ERROR·(2^b_f − 1)·√12
# keeps it near FILTER_ERROR per sign pass whatever k is: 17 columns at 8 bits, 4,540 at 16 (no cap in practice).
# Measured (benchmarks/optical_accuracy.py, 256x256 @ 256x384, 8 bits, noise off, two-pass inputs): n_t 384 -> 0.15,
# n_t 16 -> 0.038.
FILTER_ERROR = 0.02


def filter_n_tile_max(dev: Optical4fDevice) -> int:
    """The widest filter tile (output columns) whose filter quantization error stays near FILTER_ERROR."""
    return max(1, int(FILTER_ERROR * ((1 << dev.filter_bits) - 1) * math.sqrt(12)))


def _best_n_tile(dev: Optical4fDevice, m: int, k_t: int, n: int, dynamic: bool) -> int:
    """Output columns per filter tile: the widest tile the filter's precision allows (`filter_n_tile_max`; fewest
    refreshes) unless narrower tiles, which pack more rows per frame, save more frame time than their extra
    refreshes cost."""
    ah, aw = dev.aperture
    cap = min(ah, filter_n_tile_max(dev))
    t_frame = max(dev.input_frame_s, dev.camera_frame_s)
    t_upd = dev.filter_refresh_s + (dev.fft_s if dynamic else 0.0)
    best, best_t = min(n, cap), float("inf")
    first = math.ceil(n / cap)
    for tiles in range(first, min(n, first + 64) + 1):
        n_t = math.ceil(n / tiles)
        t = math.ceil(n / n_t) * (t_upd + math.ceil(m / ((ah // n_t) * (aw // k_t))) * t_frame)
        if t < best_t:
            best, best_t = n_t, t
    return best


def matmul(dev: Optical4fDevice, m: int, k: int, n: int, batch: int = 1, dynamic: bool = False,
           signed_weights: bool = True, signed_inputs: bool = True, n_tile: int | None = None) -> OpticalWork:
    """`batch` products X(m x k) @ W(k x n) with W as the filter (see the module docstring for the layout).
    Static W: filters load once and serve all rows (weight-stationary; fold a Linear's leading dims into m).
    Dynamic W (attention's K, V): one set of filters per batch element, each needing a host FFT.
    `n_tile` fixes the output columns per filter tile (default: the fastest, see `_best_n_tile`)."""
    if min(m, k, n, batch) <= 0:
        raise ValueError(f"matmul: m, k, n, batch must be positive, got {(m, k, n, batch)}")
    ah, aw = dev.aperture
    k_t, k_chunks = min(k, aw), math.ceil(k / aw)
    n_t = _best_n_tile(dev, m, k_t, n, dynamic) if n_tile is None else n_tile
    if not 0 < n_t <= min(n, ah):
        raise ValueError(f"matmul: n_tile must be in 1..{min(n, ah)}, got {n_t}")
    n_tiles = math.ceil(n / n_t)
    rows_per_frame = (ah // n_t) * (aw // k_t)
    wp, ip = dev.passes(signed_weights, signed_inputs)
    updates = batch * k_chunks * n_tiles * wp
    outputs = float(batch * m * n)
    in_b, out_b = math.ceil(dev.input_bits / 8), math.ceil(dev.adc_bits / 8)
    reads = k_chunks * wp * ip
    work = OpticalWork(frames=updates * math.ceil(m / rows_per_frame) * ip, filter_updates=updates,
                       dynamic_updates=updates if dynamic else 0,
                       in_bytes=float(batch * m * k * in_b * n_tiles * wp * ip), out_bytes=outputs * out_b * reads,
                       filter_bytes=float(updates * ah * aw * math.ceil(dev.filter_bits / 8)),
                       host_flops=_sign_host_flops(outputs, reads, signed_inputs, dev) + batch * m * (k + n),  # + row scales
                       optical_macs=outputs * k,
                       tile=(k_t, n_t))
    if dynamic and signed_inputs and dev.signed_inputs == "bias":
        work.host_flops += batch * k * n  # column sums of the new weights for the offset correction
    work.host_bytes = work.out_bytes + outputs * 4
    return work


def host(flops: float, nbytes: float) -> OpticalWork:
    """Work done on the electronic host (softmax, norms, activations, layout)."""
    return OpticalWork(host_flops=float(flops), host_bytes=float(nbytes))


def price_work(dev: Optical4fDevice, w: OpticalWork) -> dict[str, Any]:
    """Time (s) and energy (J) of `w`, with the parts and the bound (see the module docstring)."""
    t_frame = 0.0
    if w.frames:
        t_frame = max(dev.input_frame_s, dev.camera_frame_s, w.in_bytes / w.frames / dev.host_to_slm_bps,
                      w.out_bytes / w.frames / dev.camera_to_host_bps)
    t_upd = max(dev.filter_refresh_s, w.filter_bytes / w.filter_updates / dev.host_to_slm_bps) if w.filter_updates else 0.0
    frames_s = w.frames * t_frame + (max(w.filter_updates, 1) * dev.camera_frame_s if w.frames else 0.0)
    refresh_s = w.filter_updates * t_upd
    fft_s = w.dynamic_updates * dev.fft_s
    host_s = max(w.host_flops / dev.host_flops, w.host_bytes / dev.host_bps)
    e_frame = dev.optical_power_w * t_frame + dev.adc_j_per_frame if w.frames else 0.0
    parts_j = {"frames": w.frames * e_frame, "filter_refresh": dev.optical_power_w * refresh_s,
               "host_fft": (dev.optical_power_w + dev.host_power_w) * fft_s, "host": dev.host_power_w * host_s,
               "io": dev.io_j_per_byte * (w.in_bytes + w.out_bytes + w.filter_bytes)}
    parts_s = {"frames": frames_s, "filter_refresh": refresh_s, "host_fft": fft_s, "host": host_s}
    limiter = "input-slm"
    if w.frames:
        limiter = max((("input-slm", dev.input_frame_s), ("camera", dev.camera_frame_s),
                       ("io", max(w.in_bytes / w.frames / dev.host_to_slm_bps, w.out_bytes / w.frames / dev.camera_to_host_bps))),
                      key=lambda x: x[1])[0]
    top = max(parts_s, key=parts_s.get)
    bound = {"frames": f"optical({limiter})", "filter_refresh": "filter-refresh", "host_fft": "host-fft",
             "host": "host"}[top] if any(parts_s.values()) else "none"
    return {"time_s": sum(parts_s.values()), "energy_j": sum(parts_j.values()), "bound": bound,
            "frame_period_s": t_frame, "energy_per_frame_j": e_frame, "update_s": t_upd,
            "energy_per_update_j": dev.optical_power_w * t_upd, "time_parts_s": parts_s, "energy_parts_j": parts_j}


def optical_variant(hw: HardwareSpec | str = "optical-4f", **changes: Any) -> HardwareSpec:
    """A copy of an optical spec with top-level `optical` keys changed (e.g. filter="dmd", operand_bits=16,
    signed_weights="bias"), for what-if reports through `analyze_graph`."""
    hw = get_hardware(hw)
    optical = dict(hw.extra.get("optical") or {})
    unknown = set(changes) - set(optical)
    if unknown:
        raise HardwareError(f"{hw.name}: unknown optical keys {sorted(unknown)}; known: {sorted(optical)}")
    optical.update(changes)
    spec = replace(hw, extra={**hw.extra, "optical": optical})
    Optical4fDevice.from_spec(spec)  # validates the change
    return spec
