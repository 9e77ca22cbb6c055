"""trigger_kd: FPGA trigger deployment toolchain for knowledge-distilled jet taggers."""

__version__ = "0.1.0"
