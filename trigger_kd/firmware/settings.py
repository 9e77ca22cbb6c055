"""hls4ml project settings, taken from the ``hls:`` section of a model YAML."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HLSSettings:
    backend: str = "Vitis"  # Vivado | Vitis
    part: str = "xcvu13p-flga2577-2-e"
    clock_period: float = 5.0  # ns
    io_type: str = "io_parallel"
    strategy: str = "Latency"
    reuse_factor: int = 1
    # per-layer overrides: {layer name: {"result": "fixed<16,6>", "accum": ..., "weight": ..., "bias": ...}}
    layer_precision: dict = field(default_factory=dict)
