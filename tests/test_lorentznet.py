"""LorentzNet: symmetries, masking, input convention.

What is invariant: every LorentzNet input is a Minkowski product or a mass, and the
coordinate update is equivariant, so the model is invariant under any Lorentz
transformation applied to all nodes, beams included. In use the beams are fixed at
(sqrt(2), 0, 0, +-1); the transformations that keep that pair fixed are rotations about
the beam (z) axis and the pi rotations about a transverse axis (they swap the two beams,
which the model cannot tell apart). Boosts, even along z, move the beams: with beams the
output changes under them.
"""
from __future__ import annotations

import contextlib
import copy
import math

import numpy as np
import pytest
import torch

from lorentznet_reference import edge_list, reference_forward
from trigger_kd.data.boost import boost, random_lorentz_transform, rotate
from trigger_kd.errors import TriggerKDError
from trigger_kd.models import edge_kernel
from trigger_kd.models.lorentznet import INFER_ELEMENTS, LorentzNet, group_jets, prepare_batch

P = 10


def jets(n=6, p=P, seed=0):
    """Jet-like massive constituents (pT 1-60 GeV, pion mass), varied multiplicity, zero-padded."""
    rng = np.random.default_rng(seed)
    pt = rng.exponential(15, (n, p)) + 1
    eta, phi = rng.normal(0.4, 0.4, (n, p)), rng.normal(1.0, 0.4, (n, p))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    c = np.stack([np.sqrt(px ** 2 + py ** 2 + pz ** 2 + 0.14 ** 2), px, py, pz], -1)
    for k in range(n):
        c[k, p - k:] = 0  # jet k has p - k constituents
    return c


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny graphs: one thread avoids OpenMP stalls on a shared, loaded machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = LorentzNet(n_scalar=2, n_hidden=16, n_class=2, n_layers=3, c_weight=0.5, dropout=0.2).double().eval()
    with torch.no_grad():  # phi_x starts near zero (gain 1e-3): enlarge it so the coordinate update matters
        for block in m.LGEBs[:-1]:
            block.phi_x[-1].weight *= 1000
    return m


def test_coordinate_update_matters(model):
    c = jets()
    ref = run(model, c)
    weights = [b.c_weight for b in model.LGEBs]
    try:
        for b in model.LGEBs:
            b.c_weight = 0.0
        assert_differs(run(model, c), ref)
    finally:
        for b, w in zip(model.LGEBs, weights):
            b.c_weight = w


def run(model, c, n=P, beams=True):
    with torch.no_grad():
        return model(prepare_batch(c, n, add_beams=beams, dtype=torch.float64)).numpy()


def run_x(model, batch, x):
    with torch.no_grad():
        return model({**batch, "x": torch.as_tensor(x)}).numpy()


def assert_same(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def assert_differs(a, b):
    assert np.abs(a - b).max() > 1e-4


def test_outputs_depend_on_the_jet(model):
    out = run(model, jets())
    assert out.shape == (6, 2) and np.isfinite(out).all()
    assert np.abs(out - out[0]).max() > 1e-3  # not a constant model
    assert_differs(run(model, jets() * np.array([1.0, 1.3, 1.3, 1.3])), out)  # not a Lorentz map: changes masses


def test_full_lorentz_invariance_without_beams(model):
    c = jets()
    ref = run(model, c, beams=False)
    for seed in range(4):
        moved = random_lorentz_transform(c, np.random.default_rng(seed), max_beta=0.9)
        assert_same(run(model, moved, beams=False), ref)


def test_full_lorentz_invariance_with_beams_transformed_too(model):
    batch = prepare_batch(jets(), P, dtype=torch.float64)
    x = batch["x"].numpy()
    ref = run_x(model, batch, x)
    for seed in range(4):
        assert_same(run_x(model, batch, random_lorentz_transform(x, np.random.default_rng(seed), max_beta=0.9)), ref)
    assert_differs(run_x(model, batch, x * np.array([1.0, 1.0, 1.0, 1.2])), ref)


def test_beam_preserving_symmetries_with_fixed_beams(model):
    c = jets()
    ref = run(model, c)
    for angle in (0.3, 2.0, -1.1):
        assert_same(run(model, rotate(c, angle, "z")), ref)
    assert_same(run(model, rotate(c, math.pi, "x")), ref)  # z -> -z swaps the beams
    assert_same(run(model, rotate(c, math.pi, "y")), ref)


def test_fixed_beams_break_other_transformations(model):
    c = jets()
    ref = run(model, c)
    assert_differs(run(model, boost(c, 0.5, "z")), ref)
    assert_differs(run(model, boost(c, 0.5, "x")), ref)
    assert_differs(run(model, rotate(c, 0.5, "x")), ref)
    # the same boost is a symmetry once the beams are not there
    assert_same(run(model, boost(c, 0.5, "z"), beams=False), run(model, c, beams=False))


def test_permutation_invariance(model):
    c = jets()
    ref = run(model, c)
    rng = np.random.default_rng(5)
    shuffled = c.copy()
    for k in range(len(c)):
        n_real = int((c[k, :, 0] != 0).sum())
        shuffled[k, :n_real] = c[k, rng.permutation(n_real)]
    assert_same(run(model, shuffled), ref)
    assert_same(run(model, c[:, ::-1].copy()), ref)  # padding first, particles reversed


def test_padding_does_not_change_the_output(model):
    c = jets()
    ref = run(model, c)
    padded = np.concatenate([c, np.zeros((len(c), 7, 4))], axis=1)
    assert_same(run(model, padded, n=P + 7), ref)
    for k in range(len(c)):  # each jet alone gives what it gets in the batch
        assert_same(run(model, c[k:k + 1]), ref[k:k + 1])


@pytest.mark.slow  # builds the kernel for hidden 8, float64 (g++)
def test_padding_stays_out_of_batchnorm_in_training():
    torch.manual_seed(1)
    m = LorentzNet(n_scalar=2, n_hidden=8, n_class=2, n_layers=2, c_weight=5e-3, dropout=0.0).double().train()
    c = jets()
    padded = np.concatenate([c, np.zeros((len(c), 5, 4))], axis=1)
    a = m(prepare_batch(c, P, dtype=torch.float64))
    b = m(prepare_batch(padded, P + 5, dtype=torch.float64))
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-9, atol=1e-9)
    a.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_prepare_batch_convention():
    c = jets()
    batch = prepare_batch(c, 6)
    x, s, mask = batch["x"], batch["scalars"], batch["node_mask"]
    assert x.shape == (6, 8, 4) and x.dtype == torch.float32 and s.shape == (6, 8, 2)
    beam = torch.tensor([math.sqrt(2), 0, 0, 1], dtype=torch.float32)
    assert torch.equal(x[:, 0], beam.expand(6, 4))
    assert torch.equal(x[:, 1], (beam * torch.tensor([1, 1, 1, -1.0])).expand(6, 4))
    np.testing.assert_allclose(x[:, 2:].numpy(), c[:, :6], rtol=1e-6)  # leading 6 constituents, GeV, scale 1
    np.testing.assert_allclose(s[:, :2, 1].numpy(), math.log(2), rtol=1e-6)  # psi(beam mass 1)
    assert torch.all(s[:, :2, 0] == 0) and torch.all(s[:, 2:, 1] == 0)
    real = c[:, :6, 0] != 0
    np.testing.assert_allclose(s[:, 2:, 0].numpy()[real], math.log1p(0.14), rtol=1e-4)  # psi(particle mass)
    assert torch.equal(mask[:, 2:], torch.from_numpy(real)) and mask[:, :2].all()
    n_real = mask.sum(1)
    assert torch.equal(batch["edge_mask"].sum((1, 2)), n_real * (n_real - 1))
    i, j = edge_list(mask)  # the reference implementation's edges
    assert i.numel() == int((n_real * (n_real - 1)).sum())
    assert not torch.any(i == j) and mask.reshape(-1)[i].all() and mask.reshape(-1)[j].all()
    assert torch.equal(prepare_batch(torch.from_numpy(c), 6)["x"], x)
    short = prepare_batch(c[:, :3], 6)  # fewer stored constituents than asked: zero-padded
    assert short["x"].shape == (6, 8, 4) and not short["node_mask"][:, 5:].any()
    with pytest.raises(TriggerKDError):
        prepare_batch(c[..., :3], 6)


def test_published_size():
    """The original top-tagging model (72 hidden, 6 LGEBs) has 224,072 parameters (ANCHORS: 224k)."""
    m = LorentzNet(n_scalar=2, n_hidden=72, n_class=2, n_layers=6, c_weight=5e-3, dropout=0.2)
    assert sum(p.numel() for p in m.parameters()) == 224_072
    assert not hasattr(m.LGEBs[-1], "phi_x") and hasattr(m.LGEBs[0], "phi_x")


def test_parameter_names_are_the_originals():
    """sdogsq/LorentzNet-release names: its published checkpoint loads into this model."""
    m = LorentzNet(n_scalar=2, n_hidden=8, n_class=2, n_layers=2)
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    block = (["phi_e.0.weight"] + [f"phi_e.1.{k}" for k in bn] + ["phi_e.3.weight", "phi_e.3.bias"]
             + ["phi_h.0.weight", "phi_h.0.bias"] + [f"phi_h.1.{k}" for k in bn] + ["phi_h.3.weight", "phi_h.3.bias"]
             + ["phi_m.0.weight", "phi_m.0.bias"])
    expected = (["embedding.weight", "embedding.bias"] + [f"LGEBs.0.{k}" for k in block]
                + ["LGEBs.0.phi_x.0.weight", "LGEBs.0.phi_x.0.bias", "LGEBs.0.phi_x.2.weight"]
                + [f"LGEBs.1.{k}" for k in block]
                + ["graph_dec.0.weight", "graph_dec.0.bias", "graph_dec.3.weight", "graph_dec.3.bias"])
    assert sorted(m.state_dict()) == sorted(expected)


def realistic_jets(n, p, seed=0):
    """Collimated massless constituents with 20-60 per jet: the float32 conditions of real jets."""
    rng = np.random.default_rng(seed)
    pt = -np.sort(-(rng.exponential(10, (n, p)) + 0.5), axis=1)
    eta, phi = rng.normal(0, 0.3, (n, p)), rng.normal(0, 0.3, (n, p))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    c = np.stack([np.sqrt(px ** 2 + py ** 2 + pz ** 2), px, py, pz], -1).astype(np.float32)
    c[np.arange(p)[None] >= rng.integers(20, 61, n)[:, None]] = 0
    return c


def twins(dtype, hidden, layers, seed=0):
    """The same LorentzNet twice (identical weights): one runs dense, the other the edge-list reference."""
    torch.manual_seed(seed)
    m = LorentzNet(n_scalar=2, n_hidden=hidden, n_class=2, n_layers=layers, c_weight=0.5, dropout=0.0).to(dtype)
    with torch.no_grad():  # a coordinate update that matters, as in the `model` fixture
        for block in m.LGEBs[:-1]:
            block.phi_x[-1].weight *= 1000
    return m, copy.deepcopy(m)


def rel(a, b):
    return float((a - b).detach().abs().max() / b.detach().abs().max())


@contextlib.contextmanager
def edges(path: str, threads: int = 1, hidden: int = 16, dtype=torch.float64):
    """Run LorentzNet's edges on `path`: "kernel" (the compiled edge kernel, which must build here:
    g++ is part of the toolchain) or "torch" (PyTorch ops), with `threads` torch / OpenMP threads."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if path == "kernel":
            ok, why = edge_kernel.available(hidden, dtype)
            assert ok, f"the compiled edge kernel did not build: {why}"
            yield
        else:
            with edge_kernel.torch_edges():
                assert not edge_kernel.available(hidden, dtype)[0]
                yield
    finally:
        torch.set_num_threads(old)


# hidden 12 in float64: with AVX-512, one 512-bit vector per row in the main tiles and the 4 columns left in
# the tall 256-bit tiles (the float32 test at 72 covers the same split in float)
EDGE_PATHS = [("kernel", 1, 16), ("kernel", 2, 16), pytest.param("kernel", 1, 6, marks=pytest.mark.slow),
              pytest.param("kernel", 1, 12, marks=pytest.mark.slow), ("torch", 1, 16)]  # slow: one g++ build each


@pytest.mark.parametrize("path,threads,hidden", EDGE_PATHS)
@pytest.mark.parametrize("budget,n_groups", [(3 * 14 ** 2 * 16, 3), (10 ** 9, 1)])
def test_dense_equals_edge_list_reference_in_float64(budget, n_groups, path, threads, hidden):
    """Outputs, gradients and BatchNorm running statistics of one training step, then eval outputs: both
    edge paths, the kernel on 1 and 2 threads, at a hidden size that is no multiple of the vector width and at one
    that splits into main and tall register tiles."""
    with edges(path, threads, hidden):
        _dense_equals_edge_list_reference_in_float64(budget, n_groups, hidden)


def _dense_equals_edge_list_reference_in_float64(budget, n_groups, hidden):
    new, ref = twins(torch.float64, hidden=hidden, layers=3)
    new.train_elements = new.infer_elements = budget * hidden // 16
    c = jets(8, 12)
    c[3] = c[3, ::-1].copy()  # padding first in one jet
    batch = prepare_batch(c, 12, dtype=torch.float64)
    assert len(group_jets(batch, budget * hidden // 16, hidden)) == n_groups  # 8 jets of 14 nodes: 3 + 3 + 2 or all in one
    a, b = new.train()(batch), reference_forward(ref.train(), batch)
    assert rel(a, b) < 1e-12
    (a * torch.tensor([1.0, -2.0], dtype=a.dtype)).square().sum().backward()
    (b * torch.tensor([1.0, -2.0], dtype=b.dtype)).square().sum().backward()
    scale = max(float(p.grad.abs().max()) for p in ref.parameters())
    for (name, p), q in zip(new.named_parameters(), ref.parameters()):
        assert float((p.grad - q.grad).abs().max()) < 1e-12 * scale, name
    sd_new, sd_ref = new.state_dict(), ref.state_dict()
    for k in sd_ref:
        assert torch.allclose(sd_new[k], sd_ref[k], rtol=1e-12, atol=1e-14), k
    with torch.no_grad():
        assert rel(new.eval()(batch), reference_forward(ref.eval(), batch)) < 1e-12


@pytest.mark.parametrize("path", ["kernel", "torch"])
def test_dense_equals_reference_on_unpadded_jets_in_float64(path):
    """Jets with no padding (one group without gather / scatter of nodes): training outputs and gradients."""
    new, ref = twins(torch.float64, hidden=16, layers=3)
    batch = prepare_batch(realistic_jets(6, 16, seed=3), 16, dtype=torch.float64)
    assert bool(batch["node_mask"].all())
    with edges(path):
        a = new.train()(batch)
        a.square().sum().backward()
    b = reference_forward(ref.train(), batch)
    b.square().sum().backward()
    assert rel(a, b) < 1e-12
    scale = max(float(q.grad.abs().max()) for q in ref.parameters())
    for (name, p), q in zip(new.named_parameters(), ref.parameters()):
        assert float((p.grad - q.grad).abs().max()) < 1e-12 * scale, name


@pytest.mark.parametrize("path", [pytest.param("kernel", marks=pytest.mark.slow), "torch"])  # slow: g++ builds
@pytest.mark.parametrize("hidden,layers,particles", [(32, 3, 32), pytest.param(72, 6, 64, marks=pytest.mark.slow)])
def test_dense_equals_edge_list_reference_in_float32(hidden, layers, particles, path):
    """float32 (as used) on jet-like inputs at the quick and a paper-like size, both edge paths.

    Eval: relative difference to the float32 reference < 1e-5. Training: both are compared with
    the float64 result, because the reference's float32 BatchNorm over ~10^4 edges is itself off by
    up to 1e-3 (seen: 8.6e-4 at 72 x 6); the dense statistics are summed in float64."""
    new, ref = twins(torch.float64, hidden, layers)
    c = realistic_jets(40, particles)
    truth = reference_forward(copy.deepcopy(ref).train(), prepare_batch(c, particles, dtype=torch.float64)).detach()
    new, ref = new.float(), ref.float()
    batch = prepare_batch(c, particles)
    with edges(path, hidden=hidden, dtype=torch.float32):
        with torch.no_grad():  # before the training pass below, which moves the running statistics
            assert rel(new.eval()(batch), reference_forward(ref.eval(), batch)) < 1e-5
        dense_error = rel(new.train()(batch).detach().double(), truth)
    assert dense_error < 1e-5
    assert dense_error <= rel(reference_forward(ref.train(), batch).detach().double(), truth)


def _kernel_outputs(lib, model, batch, hidden, dtype=torch.float32, threads=1):
    """Eval logits, training logits and every parameter's gradient of one step with the kernel `lib`."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    saved = edge_kernel._libs.get((hidden, dtype))
    edge_kernel._libs[(hidden, dtype)] = lib
    try:
        m = copy.deepcopy(model)
        with torch.no_grad():
            logits = m.eval()(batch)
        out = m.train()(batch)
        out.square().sum().backward()
        return [logits, out.detach(), *(p.grad for p in m.parameters())]
    finally:
        edge_kernel._libs[(hidden, dtype)] = saved
        torch.set_num_threads(old)


# Builds that vectorise differently: for AVX2 only (256-bit tiles; on an AVX-512 CPU the native build uses
# 512-bit tiles), with 128-bit vectors preferred by the auto-vectoriser, and at -O2 (other loops vectorised).
# Before -ffp-contract=off and explicit FMAs, the -O2 build differed from -O3 by 1e-5 here (an AMD EPYC with
# AVX2), and an AVX2-only build from the native one on an AMD CPU with AVX-512.
OTHER_BUILDS = {"avx2 only": ("x86-64-v3", ()), "128-bit vectors": ("native", ("-mprefer-vector-width=128",)),
                "-O2": ("native", ("-O2",))}


@pytest.mark.slow
@pytest.mark.skipif(not {"avx2", "fma"} <= set(edge_kernel._cpu_id().split()),
                    reason="needs an x86-64 CPU with AVX2 and FMA")
@pytest.mark.parametrize("dtype,hidden,builds", [(torch.float32, 72, tuple(OTHER_BUILDS)),
                                                  (torch.float64, 12, ("avx2 only", "-O2"))])
def test_edge_kernel_bits_do_not_depend_on_how_it_was_built(dtype, hidden, builds):
    """The kernel's results do not depend on the CPU or on the compiler's vectorisation: builds for AVX2 only,
    with 128-bit vectors and at -O2 give the native build's eval logits, training logits and gradients bit
    for bit (float32 at hidden 72: 64 + 8 columns, main and tall tiles with AVX-512; float64 at hidden 12)."""
    model, _ = twins(dtype, hidden, 2)
    batch = prepare_batch(realistic_jets(6, 40), 40, dtype=dtype)
    ctype = edge_kernel.TYPES[dtype]
    native = _kernel_outputs(edge_kernel._build(hidden, ctype), model, batch, hidden, dtype)
    for name in builds:  # float64: two of the three (each build costs ~14 s of CPU)
        march, extra = OTHER_BUILDS[name]
        other = _kernel_outputs(edge_kernel._build(hidden, ctype, march=march, extra=extra), model, batch, hidden, dtype)
        same = [torch.equal(a, b) for a, b in zip(native, other)]
        assert all(same), f"{name}: {same.count(False)} of {len(same)} outputs differ"


@pytest.mark.slow  # builds the kernel for hidden 32, float32 (g++)
def test_edge_kernel_bits_do_not_depend_on_the_thread_count():
    """Sums over jets (weight gradients, BatchNorm sums) run over a fixed number of chunks: the kernel's
    operators give the same outputs and gradients bit for bit on 1, 2 and 3 threads (float32, hidden 32,
    70 jets: more jets than chunks). torch's own reductions elsewhere in LorentzNet may still depend on it."""
    lib = edge_kernel.library(32, torch.float32)
    assert not isinstance(lib, str), lib
    torch.manual_seed(0)
    G, N, H = 70, 9, 32
    x = torch.randn(G, N, 4)
    e = (torch.ones(G, N, N) - torch.eye(N)).float()
    e[:, :, -2:] = e[:, -2:, :] = 0  # two padded nodes
    node = torch.ones(G, N, 1)
    node[:, -2:] = 0
    deg = e.sum(-1, keepdim=True)
    leaves = [torch.randn(G, N, H), torch.randn(G, N, H), torch.randn(2, H), torch.randn(H, H) / 6, torch.randn(H),
              torch.randn(H) / 6, torch.randn(1), torch.randn(H, H) / 6, torch.randn(H), torch.randn(H), torch.randn(H, 2)]

    def run(threads):
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            xs = x.clone().requires_grad_()
            ws = [t.clone().requires_grad_() for t in leaves]
            a, b, w2s, W, bW, wg, bg, Wx, bx, wo, w2 = ws
            pairs = edge_kernel.pair_table(lib, xs, e)
            r, mom = edge_kernel.EdgeStats.apply(lib, xs, e, pairs)
            s1, s2 = edge_kernel.EdgeNorm.apply(lib, a, b, node, deg, r, mom, w2)
            agg, xsum = edge_kernel.EdgeBlock.apply(lib, xs, e, pairs, a, b, w2s, W, bW, wg, bg, Wx, bx, wo)
            loss = agg.square().sum() + xsum.square().sum() + (s1.sum() + s2.sum() / 100).float()
            loss.backward()
            return [agg, xsum, s1, s2, xs.grad, *(w.grad for w in ws)]
        finally:
            torch.set_num_threads(old)

    one = run(1)
    for threads in (2, 3):
        same = [torch.equal(u, v) for u, v in zip(one, run(threads))]
        assert all(same), f"{threads} threads: outputs {[k for k, ok in enumerate(same) if not ok]} differ"


@pytest.mark.slow
def test_edge_kernel_is_clean_under_address_and_undefined_behaviour_sanitizers(tmp_path):
    """The kernel built with -fsanitize=address,undefined runs the float64 comparison with the edge-list
    reference (padded jets, 1 and 2 threads, hidden 10: the vector columns and the columns left over) in a Python process with libasan preloaded:
    no out-of-bounds access, use after free or undefined behaviour, and the same results."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    libasan = subprocess.run(["g++", "-print-file-name=libasan.so"], capture_output=True, text=True,
                             check=True).stdout.strip()
    if not Path(libasan).is_file():
        pytest.skip("libasan is not installed with this g++")
    env = dict(os.environ, LD_PRELOAD=libasan, ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1", TRIGGER_KD_CACHE=str(tmp_path))
    script = Path(__file__).with_name("sanitized_kernel_check.py")
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=900,
                          cwd=Path(__file__).parent)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert "sanitized kernel: 2 comparisons passed" in done.stdout, done.stdout[-3000:]


@pytest.mark.slow  # builds the kernel for hidden 16, float32 (g++)
def test_edge_kernel_elementwise_functions_match_torch():
    """The kernel's vectorised float32 psi (log1p by polynomial) and sigmoid (exp by polynomial) against
    float64 torch: psi within 3 ulp over 1e-30 .. 1e30 and both signs, with 0, inf and NaN as log1p gives
    them; sigmoid within 4 ulp where it is above 1e-30 (-69 .. 88), and 0 <= sigmoid <= 1 everywhere."""
    from trigger_kd.models.lorentznet import psi
    lib = edge_kernel.library(16, torch.float32)
    assert not isinstance(lib, str), lib
    v = torch.cat([torch.logspace(-30, 30, 20001, dtype=torch.float64), torch.rand(5000, dtype=torch.float64) * 10])
    v = torch.cat([v, -v]).float()
    got, want = edge_kernel.elementwise_values(lib, "psi", v).double(), psi(v.double())
    assert float(((got - want).abs() / want.abs()).max()) < 3 * 2 ** -24
    special = edge_kernel.elementwise_values(lib, "psi", torch.tensor([0.0, float("inf"), float("-inf"), float("nan")]))
    assert special[0] == 0 and special[1] == float("inf") and special[2] == float("-inf") and special[3].isnan()
    s = torch.cat([torch.linspace(-69, 88, 200001), torch.tensor([0.0, 1e-8, -1e-8])])
    got, want = edge_kernel.elementwise_values(lib, "sigmoid", s).double(), torch.sigmoid(s.double())
    assert float(((got - want).abs() / want).max()) < 4 * 2 ** -24
    wide = edge_kernel.elementwise_values(lib, "sigmoid", torch.tensor([-1e4, -200.0, -90.0, 90.0, 200.0, 1e4]))
    assert bool((wide >= 0).all() and (wide <= 1).all()) and wide[-1] == 1 and float(wide[0]) < 1e-37


@pytest.mark.parametrize("bad", ["fractional", "one-sided", "diagonal"])
def test_edge_kernel_refuses_edge_weights_it_cannot_represent(bad):
    """The kernel treats any non-zero weight as an edge of both directions: other weights are refused."""
    lib = edge_kernel.library(16, torch.float64)
    assert not isinstance(lib, str), lib
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    e = (torch.ones(2, 5, 5) - torch.eye(5)).double()
    assert edge_kernel.pair_table(lib, x, e).shape == (2, 5, 5, 8)
    if bad == "fractional":
        e[0, 1, 2] = e[0, 2, 1] = 0.5
    elif bad == "one-sided":
        e[1, 3, 4] = 0
    else:
        e[1, 2, 2] = 1
    with pytest.raises(ValueError, match="edge weights must be 0 or 1"):
        edge_kernel.pair_table(lib, x, e)


def test_edge_kernel_refuses_tensors_of_another_size_or_type():
    """The kernel reads raw memory: a hidden size or dtype other than it was built for is refused."""
    lib = edge_kernel.library(16, torch.float64)
    assert not isinstance(lib, str), lib
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    e = (torch.ones(2, 5, 5) - torch.eye(5)).double()
    pairs = edge_kernel.pair_table(lib, x, e)
    weights = [torch.randn(2, 16), torch.randn(16, 16), torch.randn(16), torch.randn(16), torch.randn(1)]
    weights = [w.double() for w in weights]
    a = torch.randn(2, 5, 16, dtype=torch.float64)
    agg, _ = edge_kernel.EdgeBlock.apply(lib, x, e, pairs, a, a, *weights, None, None, None)
    assert agg.shape == (2, 5, 16)
    with pytest.raises(ValueError, match="hidden 16.*for a where torch.float64 \\[2, 5, 16\\]"):
        edge_kernel.EdgeBlock.apply(lib, x, e, pairs, a[..., :8], a[..., :8], *weights, None, None, None)
    with pytest.raises(ValueError, match="torch.float32 tensor of shape"):
        edge_kernel.pair_table(lib, x.float(), e.float())
    with pytest.raises(ValueError, match="wg"):
        edge_kernel.EdgeBlock.apply(lib, x, e, pairs, a, a, *weights[:3], weights[3][:8], weights[4], None, None, None)
    with pytest.raises(ValueError, match="on meta.*CPU only"):
        edge_kernel.pair_table(lib, x.to("meta"), e.to("meta"))


@pytest.mark.slow  # builds the kernel for hidden 8, float64 (g++)
def test_edge_kernel_is_differentiable_once_only_and_curvature_uses_torch_edges():
    """A second derivative through the compiled kernel raises (never a silently wrong Hessian);
    train.curvature switches to PyTorch edges, and its Hessian-vector product matches a central
    difference of gradients."""
    from trigger_kd.train.curvature import hessian_vector_product
    model, _ = twins(torch.float64, hidden=8, layers=2)
    batch = prepare_batch(jets(4, 8), 8, dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1])
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    with pytest.raises(RuntimeError, match="second derivatives through LorentzNet's compiled edge kernel"):
        torch.autograd.grad(torch.nn.functional.cross_entropy(model(batch), y), params, create_graph=True)

    def loss_fn(m, b):
        return torch.nn.functional.cross_entropy(m(b[0]), b[1])

    torch.manual_seed(1)
    vec = [torch.randn_like(p) for p in params]
    model.eval()  # fixed BatchNorm statistics: the loss is a smooth function of the parameters
    hv = hessian_vector_product(model, [(batch, y)], loss_fn, vec)

    def grad_at(sign, eps=1e-5):
        with torch.no_grad():
            for p, v in zip(params, vec):
                p.add_(sign * eps * v)
        g = torch.autograd.grad(loss_fn(model, (batch, y)), params)
        with torch.no_grad():
            for p, v in zip(params, vec):
                p.sub_(sign * eps * v)
        return g

    fd = [(a - b) / 2e-5 for a, b in zip(grad_at(1), grad_at(-1))]
    scale = max(float(f.abs().max()) for f in fd)
    assert scale > 0
    assert max(float((h - f).abs().max()) for h, f in zip(hv, fd)) < 1e-5 * scale


def test_grouping_does_not_change_eval_outputs(model):
    c = jets()
    batch = prepare_batch(c, P, dtype=torch.float64)
    ref = run(model, c)
    try:
        for budget in (1, 4 * (P + 2) ** 2 * model.n_hidden, 10 ** 9):  # one jet, 4 jets, all jets per group
            model.infer_elements = budget
            assert_same(run(model, c), ref)
    finally:
        model.infer_elements = INFER_ELEMENTS
    with torch.no_grad():
        np.testing.assert_allclose(reference_forward(model, batch).numpy(), ref, rtol=1e-12, atol=1e-12)
