"""The one hls4ml configuration path (firmware/hls_config.py) on a stand-in front end: no model, no g++."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from trigger_kd.config import HLSConfig
from trigger_kd.errors import TriggerKDError
from trigger_kd.firmware import hls_config
from trigger_kd.fixedpoint import FixedFormat


class StandIn(hls_config.FrontEnd):
    """A front end whose 'model' is three layers; records which hooks ran."""

    name = "StandIn"

    def __init__(self, reference=None):
        self.calls, self.reference = [], reference or {}

    def hls4ml_config(self, settings):
        self.calls.append("hls4ml_config")
        return {"Model": {"Precision": {"default": "fixed<16,6>"}, "ReuseFactor": 1, "Strategy": "Latency"},
                "LayerName": {"in": {"Trace": False, "Precision": {"result": "auto"}},
                              "fc1": {"Trace": False, "Precision": {"result": "auto"}, "ReuseFactor": 1},
                              "pool": {"Trace": False, "Precision": {"result": "auto", "accum": "auto"}, "ReuseFactor": 1}}}

    def input_precision(self, layers):
        return "in", "fixed<8,3,RND_CONV,SAT>", "type of q_in"

    def precision_rules(self, layers):
        return [hls_config.set_pooling_precision(layers, "pool", FixedFormat(False, 6, 3), 4)]

    def convert(self, **kwargs):
        raise AssertionError("not converted in these tests")

    def reference_outputs(self, hls_model, x):
        return self.reference


def test_every_setting_is_applied_once_for_any_front_end():
    settings = HLSConfig(strategy="Resource", reuse_factor=4, layer_precision={"fc1": {"accum": "fixed<20,8>"}})
    config, rules = hls_config.hls_config(StandIn(), settings)
    assert config["Model"]["Strategy"] == "Resource" and config["Model"]["ReuseFactor"] == 4
    layers = config["LayerName"]
    assert all(lc["Trace"] for lc in layers.values())
    assert layers["fc1"]["ReuseFactor"] == 4 and "ReuseFactor" not in layers["in"]
    assert layers["in"]["Precision"]["result"] == "fixed<8,3,RND_CONV,SAT>"
    assert layers["pool"]["Precision"] == {"result": "fixed<11,6>", "accum": "fixed<11,6>"}
    assert rules == ["input in: fixed<8,3,RND_CONV,SAT> (type of q_in)",
                     "pooling pool: accum/result fixed<11,6> (mean of 4 x ufixed<6,3>, exact)"]
    assert config["Flows"][0] == "trigger_kd:exactness_standin"
    assert config["Model"]["TriggerKD"] == {"layer_precision": {"fc1": {"accum": "fixed<20,8>"}}, "applied": []}


def test_unknown_precision_key_is_refused_before_hls4ml_reads_the_model():
    """Refused where the settings are made (the config's check); settings made without it are checked again."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"fc1 has unknown keys \['width'\]"):
        HLSConfig(layer_precision={"fc1": {"width": "8"}})
    front = StandIn()
    with pytest.raises(TriggerKDError, match=r"fc1 has unknown keys \['width'\]"):
        hls_config.hls_config(front, HLSConfig.model_construct(layer_precision={"fc1": {"width": "8"}}))
    assert front.calls == []


def _graph(names, trace):
    layers = [SimpleNamespace(name=n) for n in names]
    return SimpleNamespace(get_layers=lambda: layers, trace=lambda x: (None, trace))


def test_unknown_layer_is_named_with_the_layers_there_are():
    with pytest.raises(hls_config.FirmwareError, match=r"\['fc9'\].*its layers: in, fc1, pool"):
        hls_config.check_override_names(_graph(["in", "fc1", "pool"], {}), {"fc9": {"result": "fixed<8,3>"}, "fc1": {}})
    hls_config.check_override_names(_graph(["in", "fc1"], {}), {"fc1": {"result": "fixed<8,3>"}})


def test_first_mismatch_is_matched_by_layer_name_in_graph_order():
    x = np.zeros((2, 3))
    a, b = np.arange(6.0).reshape(2, 3), np.ones((2, 3))
    trace = {"fc1": a, "act1": b, "fc2": b, "fc3": a}
    # act1 has no reference (skipped); fc2 differs; fc3 differs too but comes later in the graph
    hls_model = _graph(["in", "fc1", "act1", "fc2", "fc3"], trace)
    assert hls_config.first_mismatch_layer(hls_model, StandIn({"fc3": b, "fc2": a, "fc1": a.reshape(2, 1, 3)}), x) == "fc2"
    # a value equal to another layer's reference is no match: each layer is compared with its own
    assert hls_config.first_mismatch_layer(hls_model, StandIn({"fc1": b, "act1": a}), x) == "fc1"
    assert hls_config.first_mismatch_layer(hls_model, StandIn({"fc1": a, "act1": b}), x) is None
    assert hls_config.first_mismatch_layer(hls_model, StandIn({"fc1": a[:, :2]}), x) == "fc1"  # other shape
    assert hls_config.first_mismatch_layer(hls_model, StandIn(), x[:0]) is None
    with pytest.raises(TriggerKDError, match="shares no layer name with the StandIn model"):
        hls_config.first_mismatch_layer(hls_model, StandIn({"other": a}), x)
