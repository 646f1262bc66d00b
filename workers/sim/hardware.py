"""Accelerators from public datasheets: memory, bandwidth, peak math, per device.

Efficiencies (how much of the peak a real stack gets) belong to the cost model, not here:
the same GPU reaches 75% of its bandwidth on a dense 8B decode and ~10% on a long-context
MoE (seed 003), so they are per preset.
"""

from __future__ import annotations

from dataclasses import dataclass

GB = 10**9
TB = 10**12


@dataclass(frozen=True)
class Hardware:
    name: str
    num_devices: int
    memory_bytes: int  # per device (HBM)
    bandwidth: float  # bytes/s per device (HBM, raw)
    peak_flops: float  # FLOP/s per device, dense, at the precision the preset computes in
    source: str = ""

    @property
    def total_memory_bytes(self) -> int:
        return self.num_devices * self.memory_bytes

    @property
    def total_bandwidth(self) -> float:
        return self.num_devices * self.bandwidth

    @property
    def total_peak_flops(self) -> float:
        return self.num_devices * self.peak_flops

    def times(self, n: int) -> Hardware:
        """n of these devices working as one replica (tensor parallel)."""
        return Hardware(f"{n}x{self.name}", n * self.num_devices, self.memory_bytes, self.bandwidth,
                        self.peak_flops, self.source)


H100_SXM = Hardware("h100", 1, 80 * GB, 3.35 * TB, 989e12,
                    "NVIDIA H100 SXM5 datasheet: 80 GB HBM3, 3.35 TB/s, 989 TFLOPS BF16 dense")
B200 = Hardware("b200", 1, 180 * GB, 8 * TB, 9e15,
                "NVIDIA DGX B200: 8 GPUs, 1,440 GB HBM3e, 64 TB/s; 9 PFLOPS FP4 dense per GPU "
                "(the precision seed 003's 6.4% MFU is quoted against)")
