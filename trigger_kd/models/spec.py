"""What a student is: architecture, sizes and fixed-point formats (framework-independent)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StudentSpec:
    arch: str = "mlp"  # mlp | deepset
    n_particles: int = 8
    n_features: int = 4
    mlp_hidden: tuple[int, ...] = (32, 16)
    phi_hidden: tuple[int, ...] = (16, 16)
    rho_hidden: tuple[int, ...] = (16,)
    weight_bits: int = 6  # signed, power-of-two scale per tensor
    act_bits: int = 8  # unsigned ReLU outputs ufixed<act_bits, act_int_bits>
    act_int_bits: int = 3
    input_bits: int = 10  # signed input fixed<input_bits, input_int_bits + 1>
    input_int_bits: int = 1
    bias_bits: int = 16
    n_classes: int = 2

    @property
    def input_frac_bits(self) -> int:
        return self.input_bits - 1 - self.input_int_bits

    @property
    def act_frac_bits(self) -> int:
        return self.act_bits - self.act_int_bits
