"""Everything one `laneway bench engine` run measured, as plain data (JSON-ready)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from workers.bench.decode_curve import DecodePoint
from workers.bench.offline import ThroughputResult


@dataclass(frozen=True)
class Machine:
    cpu: str
    num_cores: int
    num_threads: int  # torch intra-op threads used
    load_before: tuple[float, float, float]  # os.getloadavg(): other work sharing the cores
    load_after: tuple[float, float, float]
    torch_version: str
    accelerator: str = ""  # the GPU the model ran on ("": the CPU)


@dataclass(frozen=True)
class OfflineComparison:
    num_requests: int
    prompt_lens: tuple[int, int]
    output_lens: tuple[int, int]
    seed: int
    laneway: ThroughputResult
    laneway_max_num_seqs: int
    hf: ThroughputResult | None
    hf_batch_size: int

    @property
    def ratio(self) -> float | None:
        return None if self.hf is None else self.laneway.tokens_per_s / self.hf.tokens_per_s


@dataclass(frozen=True)
class EngineBenchResult:
    command: str
    model: str
    dtype: str
    machine: Machine
    # Best copy bandwidth of the run (read + write): MBU is taken against it, so a slow
    # sample on a busy machine never flatters the engine.
    bandwidth_gbps: float
    bandwidth_samples: tuple[float, ...]  # measured before and after the engine runs
    weight_bytes: int
    kv_bytes_per_token: int
    context: int
    decode: list[DecodePoint]
    hf_decode_step_ms: float | None  # transformers generate, batch 1, same context
    offline: OfflineComparison | None
    profiles: list[str] = field(default_factory=list)  # torch profiler tables, one per profiled batch size

    def mbu(self, point: DecodePoint) -> float:
        return point.mbu(self.bandwidth_gbps)

    def point(self, batch_size: int) -> DecodePoint | None:
        return next((p for p in self.decode if p.batch_size == batch_size), None)

    @property
    def hf_mbu(self) -> float | None:
        if self.hf_decode_step_ms is None:
            return None
        moved = self.weight_bytes + self.context * self.kv_bytes_per_token
        return moved / (self.hf_decode_step_ms / 1e3) / (self.bandwidth_gbps * 1e9)

    def to_json(self) -> dict:
        data = asdict(self)
        data["hf_mbu"] = self.hf_mbu
        for point, row in zip(self.decode, data["decode"]):
            row["mbu"] = self.mbu(point)
        if self.offline is not None:
            data["offline"]["ratio"] = self.offline.ratio
            for name in ("laneway", "hf"):
                run = getattr(self.offline, name)
                if run is not None:
                    data["offline"][name]["tokens_per_s"] = run.tokens_per_s
        return data
