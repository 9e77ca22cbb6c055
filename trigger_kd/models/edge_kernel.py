"""LorentzNet's per-edge work as compiled CPU kernels (forward and backward), built with g++ on first use.

For every real pair (i, j) of a jet, one LGEB computes

    v    = psi(<x_i - x_j, x_i - x_j>), psi(<x_i, x_j>)    the invariants (`pair_table`, once per block)
    z    = relu(a_i + b_j + v @ W2s)        phi_e's first layer, its BatchNorm folded into a, b, W2s
    m    = relu(W z + bW)                   phi_e's second layer
    gate = sigmoid(wg . m + bg)             phi_m
    agg_i = sum_j gate * m                  the node's message sum
    gx   = wo . relu(Wx (gate * m) + bx)    phi_x (all blocks but the last);  xsum_i = sum_j clamp((x_i - x_j) gx)

plus phi_e's BatchNorm statistics over the pairs (`EdgeStats`, `EdgeNorm`). With PyTorch ops every
line is a pass over (E, H) tensors that do not fit the CPU caches, and the H x 1 / 2 x H products run
as slow thin matrix products (torch.profiler, benchmarks/history/teacher_throughput.md). Here one jet row
(i, all j) at a time is computed in L1-sized buffers with register-tiled products; training keeps m, u and the gates
(compact per row) for backward, which recomputes the rest of the row. float32 psi and sigmoid use
vectorised polynomials (within 3 and 4 ulp of torch, tested). Same arithmetic as the PyTorch path
(`tests/test_lorentznet.py` compares both, and the edge-list reference, in float64 to 1e-12).

The C++ source is `csrc/edge_kernel.cpp` (part of this module's code fingerprint, `NATIVE_SOURCES`). It
registers PyTorch operators with typed tensor arguments that check device, dtype and shape before any
memory is read (a wrong tensor raises ValueError). It is built once per hidden size and scalar type with
g++ (``-O3 -march=native -ffp-contract=off -fopenmp``, torch's include and library paths from
``torch.utils.cpp_extension``; about 7 s) into ``<cache>/.kernels/`` (``$TRIGGER_KD_CACHE``, else
``$XDG_CACHE_HOME/trigger_kd``, else ``~/.cache/trigger_kd``; key: source, flags, compiler, torch version,
CPU), and loaded with ``torch.ops.load_library``. OpenMP runs jets in parallel on torch's thread count.

The same bits on every x86-64 CPU of this project's machines (AVX2 or AVX-512, Intel or AMD) and on any
thread count: no floating-point contraction but explicit FMAs in the products, fixed summation orders
(see the head of the .cpp). The rest of the teacher (torch's own matrix products, MKL/oneDNN) picks its
code path by CPU, so a teacher trained on another CPU may differ in the last bits (README: Reproducibility).

Where g++ is missing or the build fails, one warning says why and LorentzNet uses its PyTorch path (same
results to float precision, slower). Not twice differentiable: `torch_edges()` switches it off for
Hessian-vector products (`train.curvature`); a backward with create_graph=True through it raises.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch
from filelock import FileLock

from ..console import warn
from ..paths import cache_root

NATIVE_SOURCES = ("csrc/edge_kernel.cpp",)  # C++ this module builds: hashed into the stages' code fingerprint
SOURCE_FILE = Path(__file__).resolve().parent / NATIVE_SOURCES[0]
# -ffp-contract=off: no multiply-add fused by the compiler's choice (which differs with the vector width);
# the products fuse explicitly (the .cpp's head). -std=c++20: torch's headers need it.
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fopenmp", "-fPIC", "-shared", "-std=c++20")
SANITIZE = ("-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined")
TYPES = {torch.float32: "float", torch.float64: "double"}

_lock = threading.Lock()
_libs: dict = {}
_disabled = threading.local()


@contextlib.contextmanager
def torch_edges():
    """Within this block LorentzNet computes its edges with PyTorch ops (twice differentiable)."""
    before = getattr(_disabled, "on", False)
    _disabled.on = True
    try:
        yield
    finally:
        _disabled.on = before


def _cpu_id() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in info.splitlines() if ln.startswith(("model name", "flags"))][:2]
    except OSError:
        lines = []
    return "\n".join([platform.machine(), *lines])


def _compiler_version(gxx: str) -> str:
    return subprocess.run([gxx, "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]


def kernel_dir() -> Path:
    """<cache>/.kernels (a dot directory: not a stage entry for `trigger-kd cache`)."""
    return cache_root() / ".kernels"


def _torch_build_flags() -> list[str]:
    """Include and library paths of the installed torch (what torch.utils.cpp_extension builds with)."""
    from torch.utils import cpp_extension

    flags = [f"-I{p}" for p in cpp_extension.include_paths()]
    flags.append(f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}")
    for lib_dir in cpp_extension.library_paths():
        flags += [f"-L{lib_dir}", f"-Wl,-rpath,{lib_dir}"]
    return flags + ["-lc10", "-ltorch_cpu"]


class Kernel:
    """One loaded build: its operators (`ops.edge_forward`, ...), hidden size, dtype and library path."""

    def __init__(self, ops, hidden: int, dtype: torch.dtype, path: Path):
        self.ops, self.hidden, self.dtype, self.path = ops, hidden, dtype, path


def _build(hidden: int, ctype: str, march: str = "native", extra: tuple[str, ...] = ()) -> Kernel:
    """Compile (once; cached under `kernel_dir`) and load the kernel. `march` other than "native" and `extra`
    flags are for the tests (a build for AVX2 only, other vector widths, sanitizers)."""
    gxx = shutil.which("g++")
    if gxx is None:
        raise RuntimeError("g++ not found")
    flags = tuple(f"-march={march}" if f == "-march=native" else f for f in FLAGS) + tuple(extra)
    source = SOURCE_FILE.read_text()
    key = hashlib.sha256("\0".join([source, *flags, ctype, str(hidden), _compiler_version(gxx), torch.__version__,
                                     _cpu_id()]).encode()).hexdigest()[:16]
    namespace = f"trigger_kd_edges_{ctype}_h{hidden}_{key}"
    defines = (f"-DSCALAR={ctype}", f"-DSCALAR_IS_FLOAT={int(ctype == 'float')}", f"-DHIDDEN={hidden}",
               f"-DTKD_OPS={namespace}")
    out_dir = kernel_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    lib = out_dir / f"{namespace}.so"
    with FileLock(str(lib) + ".lock"):
        if not lib.exists():
            with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
                obj = Path(tmp) / lib.name
                run = subprocess.run([gxx, *flags, *defines, str(SOURCE_FILE), "-o", str(obj), *_torch_build_flags()],
                                     capture_output=True, text=True)
                if run.returncode != 0:
                    raise RuntimeError(f"g++ failed: {run.stderr.strip()[-2000:]}")
                os.replace(obj, lib)  # atomic: a reader sees the whole library or none
    torch.ops.load_library(str(lib))
    ops = getattr(torch.ops, namespace)
    if ops.hidden_size() != hidden:
        raise RuntimeError(f"kernel {lib} was built for hidden size {ops.hidden_size()}, not {hidden}")
    return Kernel(ops, hidden, {v: k for k, v in TYPES.items()}[ctype], lib)


def library(hidden: int, dtype: torch.dtype):
    """The compiled kernel for this hidden size and dtype, or a string saying why there is none."""
    if getattr(_disabled, "on", False):
        return "switched off (torch_edges)"
    if dtype not in TYPES:
        return f"no kernel for {dtype}"
    key = (hidden, dtype)
    with _lock:
        if key not in _libs:
            try:
                _libs[key] = _build(hidden, TYPES[dtype])
            except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
                _libs[key] = f"build failed: {exc}"
                warn(f"LorentzNet's edge kernel (hidden {hidden}, {TYPES[dtype]}) could not be built, so the teacher "
                     f"runs its PyTorch path (same results, about 2x slower): {_libs[key][:500]}")
        return _libs[key]


def available(hidden: int, dtype: torch.dtype = torch.float32) -> tuple[bool, str]:
    """(True, library path) when the compiled edge kernel is used for this size, else (False, why)."""
    lib = library(hidden, dtype)
    return (False, lib) if isinstance(lib, str) else (True, str(lib.path))


def _first_order_only():
    """Refuse a backward with create_graph=True (grad mode on in backward): the kernel's gradients are not
    differentiable, and autograd would silently drop their second-order terms (torch's once_differentiable
    only raises when the path reaches its own outputs, not for autograd.grad with respect to parameters)."""
    if torch.is_grad_enabled():
        raise RuntimeError("second derivatives through LorentzNet's compiled edge kernel are not available: run the "
                           "forward pass inside trigger_kd.models.edge_kernel.torch_edges() (as train.curvature does)")


def elementwise_values(lib: Kernel, fn: str, values: torch.Tensor) -> torch.Tensor:
    """fn ("psi" or "sigmoid") of values as the kernel computes them (vectorised polynomials for float32)."""
    return lib.ops.elementwise_values(("psi", "sigmoid").index(fn), values.detach())


def pair_table(lib: Kernel, x: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
    """(G, N, N, 8): <x_i - x_j, x_i - x_j>, <x_i, x_j>, their psi and x_i - x_j for the real pairs (unset elsewhere), a
    constant input of EdgeStats and EdgeBlock (their backward differentiates the invariants themselves)."""
    return lib.ops.pair_table(torch.get_num_threads(), x.detach(), edge.detach())


class EdgeBlock(torch.autograd.Function):
    """(x, edge, pairs, a, b, w2s, W, bW, wg, bg[, Wx, bx, wo]) -> (agg (G, N, H), xsum (G, N, 4)); see the module doc.

    x (G, N, 4) coordinates, edge (G, N, N) 0/1 weights of the real pairs, pairs their `pair_table`, a, b (G, N, H)
    phi_e's first layer on h_i and h_j with its BatchNorm folded in, w2s (2, H) its columns for the invariants
    (scaled likewise); W, bW phi_e's second layer; wg (H,), bg (1,) phi_m; Wx, bx, wo (H,) phi_x (None in the last
    block, where xsum is zero). xsum_i = sum_j clamp((x_i - x_j) * phi_x(m_ij), -100, 100)."""

    @staticmethod
    def forward(ctx, lib, x, edge, pairs, a, b, w2s, W, bW, wg, bg, Wx, bx, wo):
        weights = [w.detach() for w in (w2s, W, bW, wg, bg, Wx, bx, wo) if w is not None]
        keep = any(ctx.needs_input_grad)  # phi_e's and phi_x's hidden activations and the gates, for backward
        threads = torch.get_num_threads()
        agg, xsum, m, u, gate = lib.ops.edge_forward(threads, x.detach(), edge.detach(), pairs.detach(), a.detach(),
                                                     b.detach(), weights, keep)
        ctx.lib, ctx.threads, ctx.n_weights = lib, threads, len(weights)
        ctx.save_for_backward(x, edge, pairs, a, b, m, u, gate, *weights)
        if Wx is None:
            ctx.mark_non_differentiable(xsum)
        return agg, xsum

    @staticmethod
    def backward(ctx, g_agg, g_xsum):
        _first_order_only()
        x, edge, pairs, a, b, m, u, gate, *weights = ctx.saved_tensors
        g_agg = g_agg if g_agg is not None else torch.zeros_like(a)
        g_xsum = g_xsum if g_xsum is not None else torch.zeros_like(x)
        grads = ctx.lib.ops.edge_backward(ctx.threads, x, edge, pairs, a, b, weights, m, u, gate, g_agg, g_xsum)
        g_x, g_a, g_b, *g_weights = grads
        g_weights += [None] * (8 - len(g_weights))  # no phi_x in the last block
        grads = (g_x, None, None, g_a, g_b, *g_weights)
        return (None, *(gr if need else None for gr, need in zip(grads, ctx.needs_input_grad[1:])))


class EdgeStats(torch.autograd.Function):
    """(x (G, N, 4), edge (G, N, N), pairs) -> (r (G, N, 2), mom (G, 2, 2)), float64: sums over the real pairs of the
    invariants v_ij = (psi(<xd, xd>), psi(<x_i, x_j>)) and of v_ij v_ij^T, for phi_e's BatchNorm statistics."""

    @staticmethod
    def forward(ctx, lib, x, edge, pairs):
        threads = torch.get_num_threads()
        r, mom = lib.ops.edge_stats(threads, edge.detach(), pairs.detach())
        ctx.lib, ctx.threads = lib, threads
        ctx.save_for_backward(x, edge, pairs)
        return r, mom

    @staticmethod
    def backward(ctx, g_r, g_mom):
        _first_order_only()
        x, edge, pairs = ctx.saved_tensors
        G, N, _ = x.shape
        g_r = (g_r if g_r is not None else x.new_zeros(G, N, 2, dtype=torch.float64)).double()
        g_mom = (g_mom if g_mom is not None else x.new_zeros(G, 2, 2, dtype=torch.float64)).double()
        g_x = ctx.lib.ops.edge_stats_backward(ctx.threads, x.detach(), edge, pairs, g_r, g_mom)
        return None, (g_x if ctx.needs_input_grad[1] else None), None, None


class EdgeNorm(torch.autograd.Function):
    """(a, b, node, deg, r, mom, w2) -> (s1, s2) (H,) float64: phi_e's BatchNorm sums over the real pairs of
    one group (the formulas of `lorentznet._edge_sums_torch`); r, mom from EdgeStats, w2 (H, 2) phi_e's
    first-layer columns for the invariants."""

    @staticmethod
    def forward(ctx, lib, a, b, node, deg, r, mom, w2):
        a, b, node, deg, r, mom, w2 = (t.detach() for t in (a, b, node, deg, r, mom, w2))
        threads = torch.get_num_threads()
        s1, s2 = lib.ops.edge_norm(threads, a, b, node, deg, r, mom, w2)
        ctx.lib, ctx.threads = lib, threads
        ctx.save_for_backward(a, b, node, deg, r, mom, w2)
        return s1, s2

    @staticmethod
    def backward(ctx, g1, g2):
        _first_order_only()
        a, b, node, deg, r, mom, w2 = ctx.saved_tensors
        H = a.shape[-1]
        zero = torch.zeros(H, dtype=torch.float64)
        gs = torch.cat([g1 if g1 is not None else zero, g2 if g2 is not None else zero]).double()
        g_a, g_b, g_r, g_w2, g_mom = ctx.lib.ops.edge_norm_backward(ctx.threads, a, b, node, deg, r, mom, w2, gs)
        need = ctx.needs_input_grad
        return (None, g_a if need[1] else None, g_b if need[2] else None, None, None,
                g_r if need[5] else None, g_mom if need[6] else None, g_w2 if need[7] else None)
