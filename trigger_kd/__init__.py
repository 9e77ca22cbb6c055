"""trigger_kd: FPGA trigger deployment toolchain for knowledge-distilled jet taggers."""
from .numerics import pin as _pin_numerics

_pin_numerics()  # before any stage imports torch or TensorFlow: the same bits on every AVX2 CPU (numerics.py)

__version__ = "0.1.0"
