"""The import-qonnx corpus: published QONNX/ONNX files (tests/fixtures/qonnx_corpus, see SOURCES.md)
plus small Brevitas models made the way a new user would, with Brevitas' default quantisers."""
from __future__ import annotations

import warnings
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "fixtures" / "qonnx_corpus"


def _mlp(act, weight, bias_quant, input_quant: bool, bias: bool = True, n_in=16, hidden=16, n_out=5):
    import torch
    from brevitas import nn as qnn

    torch.manual_seed(0)
    layers = [qnn.QuantIdentity(act_quant=act[0], return_quant_tensor=True)] if input_quant else []
    layers += [qnn.QuantLinear(n_in, hidden, bias=bias, weight_quant=weight, bias_quant=bias_quant,
                               return_quant_tensor=input_quant),
               qnn.QuantReLU(act_quant=act[1], return_quant_tensor=True),
               qnn.QuantLinear(hidden, n_out, bias=bias, weight_quant=weight, bias_quant=bias_quant)]
    model = torch.nn.Sequential(*layers).eval()
    with torch.no_grad():  # calibrate the activation scales on a few inputs, as a trained model would have them
        model.train()
        for _ in range(4):
            model(torch.randn(64, n_in))
        model.eval()
    return model


def brevitas_models() -> dict:
    """name -> (torch module, input width): Brevitas defaults and the fixed-point variants next to them."""
    from brevitas.quant import (Int8ActPerTensorFixedPoint, Int8ActPerTensorFloat, Int8WeightPerTensorFixedPoint,
                                Int8WeightPerTensorFloat, Int16Bias, Uint8ActPerTensorFixedPoint,
                                Uint8ActPerTensorFloat)

    pow2 = (Int8ActPerTensorFixedPoint, Uint8ActPerTensorFixedPoint)
    return {
        # QuantIdentity/QuantLinear/QuantReLU with nothing but their defaults: float scales, float bias
        "brevitas_defaults": _mlp((Int8ActPerTensorFloat, Uint8ActPerTensorFloat), Int8WeightPerTensorFloat, None, True),
        # power-of-two quantisers but Brevitas' default bias_quant=None: a float bias
        "brevitas_pow2_float_bias": _mlp(pow2, Int8WeightPerTensorFixedPoint, None, True),
        # power-of-two quantisers, no bias, no input quantiser: a float input
        "brevitas_pow2_float_input": _mlp(pow2, Int8WeightPerTensorFixedPoint, None, False, bias=False),
        # what this project's students do: power-of-two everything, Int16 bias
        "brevitas_pow2_int16_bias": _mlp(pow2, Int8WeightPerTensorFixedPoint, Int16Bias, True),
    }


def export_brevitas(name: str, out_dir: Path) -> Path:
    import torch
    from brevitas.export import export_qonnx

    model = brevitas_models()[name]
    path = Path(out_dir) / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(model, torch.zeros(1, 16), export_path=str(path), dynamo=False)
    return path
