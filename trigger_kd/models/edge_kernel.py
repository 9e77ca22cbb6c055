"""LorentzNet's per-edge work as compiled CPU kernels (forward and backward), built with g++ on first use.

For every real pair (i, j) of a jet, one LGEB computes

    v    = psi(<x_i - x_j, x_i - x_j>), psi(<x_i, x_j>)    the invariants (`edge_pairs`, once per block)
    z    = relu(a_i + b_j + v @ W2s)        phi_e's first layer, its BatchNorm folded into a, b, W2s
    m    = relu(W z + bW)                   phi_e's second layer
    gate = sigmoid(wg . m + bg)             phi_m
    agg_i = sum_j gate * m                  the node's message sum
    gx   = wo . relu(Wx (gate * m) + bx)    phi_x (all blocks but the last);  xsum_i = sum_j clamp((x_i - x_j) gx)

plus phi_e's BatchNorm statistics over the pairs (`edge_stats`, `edge_norm`). With PyTorch ops every
line is a pass over (E, H) tensors that do not fit the CPU caches, and the H x 1 / 2 x H products run
as slow thin matrix products (torch.profiler, benchmarks/RESULTS.md). Here one jet row (i, all j) at a
time is computed in L1-sized buffers with register-tiled products; training keeps m, u and the gates
(compact per row) for backward, which recomputes the rest of the row. float32 psi and sigmoid use
vectorised polynomials (within 3 and 4 ulp of torch, tested). Same arithmetic as the PyTorch path
(`tests/test_lorentznet.py` compares both, and the edge-list reference, in float64 to 1e-12).

The source is C++ without Python or torch headers (compiles in about 2 s), built once per hidden size
and scalar type with ``g++ -O3 -march=native -fopenmp`` into ``$TRIGGER_KD_CACHE/.kernels/`` (key:
source, flags, compiler version, CPU), and called through ctypes on the tensors' memory; OpenMP runs
jets in parallel on torch's thread count. Where g++ is missing or the build fails, a warning says why
and LorentzNet uses its PyTorch path (same results, slower). Not twice differentiable: `torch_edges()`
switches it off for Hessian-vector products (`train.curvature`); a backward with create_graph=True
through it raises.
"""
from __future__ import annotations

import contextlib
import ctypes
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

SOURCE = r"""
#include <cmath>
#include <cstring>
#include <vector>
#include <immintrin.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef SCALAR T;
enum { H = HIDDEN };
enum { RB = 6, CB = 2 };  // register tile: RB rows x CB 256-bit vectors (AVX2, measured at H = 32: 6 x 2 ahead of
                          // 2 x 4, 3 x 4, 4 x 2); RB rows x CW 512-bit vectors with AVX-512 (below)

// Small products of (rows x K) by (K x H) blocks that live in L1. Where H is a multiple of the AVX2
// width, a register tile of R rows x CV vectors accumulates over K (GCC vector extensions);
// otherwise plain loops.
constexpr int VW = 32 / (int)sizeof(T);
constexpr int NV = H / VW;
constexpr bool VEC = H % VW == 0;
typedef T vec __attribute__((vector_size(32)));
typedef int ivec __attribute__((vector_size(32)));  // the bits of a float vec

static inline vec loadv(const T* p) { vec v; __builtin_memcpy(&v, p, sizeof(vec)); return v; }
static inline void storev(T* p, vec v) { __builtin_memcpy(p, &v, sizeof(vec)); }

static inline vec splat(T s) {
    if constexpr (sizeof(T) == 4) return (vec)_mm256_set1_ps((float)s);
    else return (vec)_mm256_set1_pd((double)s);
}

// Where the CPU has AVX-512 (32 vector registers, FMAs twice as wide), the products' register tiles use
// 512-bit vectors (R x CW of them) for the columns they fill, and the columns left (H = 72: the last 8)
// are computed in tall tiles of RT rows x 256-bit vectors; elsewhere 6 x 2 tiles of 256-bit vectors.
// Measured for one 72 x 72 x 72 product on an idle Xeon (Ice Lake) core, 2026-12-01: 88-97 GFLOP/s with
// 6 x 2 256-bit tiles, 137-146 with 6 x 4 512-bit tiles and the last 8 columns in 12-row tiles (on a
// machine shared with another job, the same columns in 6 x 1 tiles took about a third of the time).
// Each output's sum over k runs in the same order whatever the tiling, so the results are the same on
// every CPU (tested against a build for AVX2 only).
#ifdef __AVX512F__
constexpr int WW = 64 / (int)sizeof(T);
typedef T wvec __attribute__((vector_size(64)));
constexpr int CW = 4, RT = 12;
#else  // no wide vectors: the main tiles cover every column; wvec, CW and RT only keep the code compiling
constexpr int WW = 0;
typedef vec wvec;
constexpr int CW = 2, RT = 6;
#endif
constexpr int HM = WW > 0 ? H - H % WW : H;  // columns [0, HM) in the main tiles, [HM, H) in the tall ones

// C[r][col..] (+)= sum_k A(r, k) * B[k][col..] for R rows and CV vectors of type V from column col;
// A(r, k) = A[r * as_row + k * as_k]; ACC: add to C, else start from bias (or zero). The R x CV
// accumulators stay in registers (the unroll pragmas: without them GCC keeps CV >= 3 tiles in memory).
template <typename V, int R, int CV, bool ACC, bool RELU>
static inline void tile(T* __restrict C, const T* __restrict A, int as_row, int as_k, const T* __restrict B,
                        int K, const T* __restrict bias, int col) {
    constexpr int W = (int)(sizeof(V) / sizeof(T));
    V c[R][CV];
    _Pragma("GCC unroll 16") for (int r = 0; r < R; ++r)
        _Pragma("GCC unroll 16") for (int v = 0; v < CV; ++v) {
            if (ACC) __builtin_memcpy(&c[r][v], C + r * H + col + v * W, sizeof(V));
            else if (bias) __builtin_memcpy(&c[r][v], bias + col + v * W, sizeof(V));
            else c[r][v] = V{};
        }
    for (int k = 0; k < K; ++k) {
        V b[CV];
        _Pragma("GCC unroll 16") for (int v = 0; v < CV; ++v) __builtin_memcpy(&b[v], B + k * H + col + v * W, sizeof(V));
        _Pragma("GCC unroll 16") for (int r = 0; r < R; ++r) {
            const T x = A[r * as_row + k * as_k];
            _Pragma("GCC unroll 16") for (int v = 0; v < CV; ++v) c[r][v] += x * b[v];
        }
    }
    _Pragma("GCC unroll 16") for (int r = 0; r < R; ++r)
        _Pragma("GCC unroll 16") for (int v = 0; v < CV; ++v) {
            if (RELU) c[r][v] = c[r][v] > V{} ? c[r][v] : V{};
            __builtin_memcpy(C + r * H + col + v * W, &c[r][v], sizeof(V));
        }
}

// The main columns [0, HM) of R rows.
template <int R, bool ACC, bool RELU>
static inline void tile_row(T* C, const T* A, int as_row, int as_k, const T* B, int K, const T* bias) {
    int c = 0;
    if constexpr (WW > 0) {
        for (; c + CW * WW <= HM; c += CW * WW) tile<wvec, R, CW, ACC, RELU>(C, A, as_row, as_k, B, K, bias, c);
        for (; c + 2 * WW <= HM; c += 2 * WW) tile<wvec, R, 2, ACC, RELU>(C, A, as_row, as_k, B, K, bias, c);
        for (; c + WW <= HM; c += WW) tile<wvec, R, 1, ACC, RELU>(C, A, as_row, as_k, B, K, bias, c);
    } else {
        for (; c + CB * VW <= HM; c += CB * VW) tile<vec, R, CB, ACC, RELU>(C, A, as_row, as_k, B, K, bias, c);
        for (; c + VW <= HM; c += VW) tile<vec, R, 1, ACC, RELU>(C, A, as_row, as_k, B, K, bias, c);
    }
}

// The columns left, [HM, H), of R rows (256-bit vectors).
template <int R, bool ACC, bool RELU>
static inline void tile_tail(T* C, const T* A, int as_row, int as_k, const T* B, int K, const T* bias) {
    for (int c = HM; c + VW <= H; c += VW) tile<vec, R, 1, ACC, RELU>(C, A, as_row, as_k, B, K, bias, c);
}

// C (rows x H) (+)= A (rows x K, strides as_row, as_k) @ B (K x H).
template <bool ACC, bool RELU>
static inline void gemm(T* __restrict C, const T* __restrict A, int as_row, int as_k, const T* __restrict B,
                        int rows, int K, const T* __restrict bias) {
    if constexpr (VEC) {
        int r = 0;
        for (; r + RB <= rows; r += RB) tile_row<RB, ACC, RELU>(C + r * H, A + r * as_row, as_row, as_k, B, K, bias);
        T* c = C + r * H; const T* a = A + r * as_row;
        switch (rows - r) {  // fewer than RB rows left
            case 5: tile_row<5, ACC, RELU>(c, a, as_row, as_k, B, K, bias); break;
            case 4: tile_row<4, ACC, RELU>(c, a, as_row, as_k, B, K, bias); break;
            case 3: tile_row<3, ACC, RELU>(c, a, as_row, as_k, B, K, bias); break;
            case 2: tile_row<2, ACC, RELU>(c, a, as_row, as_k, B, K, bias); break;
            case 1: tile_row<1, ACC, RELU>(c, a, as_row, as_k, B, K, bias); break;
            default: break;
        }
        if constexpr (HM < H) {  // tall tiles, then 8, 4, 2, 1 rows
            r = 0;
            for (; r + RT <= rows; r += RT) tile_tail<RT, ACC, RELU>(C + r * H, A + r * as_row, as_row, as_k, B, K, bias);
            if (rows - r >= 8) { tile_tail<8, ACC, RELU>(C + r * H, A + r * as_row, as_row, as_k, B, K, bias); r += 8; }
            if (rows - r >= 4) { tile_tail<4, ACC, RELU>(C + r * H, A + r * as_row, as_row, as_k, B, K, bias); r += 4; }
            if (rows - r >= 2) { tile_tail<2, ACC, RELU>(C + r * H, A + r * as_row, as_row, as_k, B, K, bias); r += 2; }
            if (rows - r >= 1) tile_tail<1, ACC, RELU>(C + r * H, A + r * as_row, as_row, as_k, B, K, bias);
        }
    } else {
        for (int r = 0; r < rows; ++r) {
            T* c = C + r * H;
            if (!ACC) for (int h = 0; h < H; ++h) c[h] = bias ? bias[h] : T(0);
            for (int k = 0; k < K; ++k) {
                const T x = A[r * as_row + k * as_k]; const T* b = B + k * H;
                for (int h = 0; h < H; ++h) c[h] += x * b[h];
            }
            if (RELU) for (int h = 0; h < H; ++h) c[h] = c[h] > T(0) ? c[h] : T(0);
        }
    }
}

// C[r][:] = bias + A[r] @ B for r < n (A: n x H);  C += A^T @ B (A, B: n x H, C: H x H).
// relu_nn: C = relu(bias + A @ B).
static inline void gemm_nn(T* C, const T* A, const T* B, int n, const T* bias) { gemm<false, false>(C, A, H, 1, B, n, H, bias); }
static inline void relu_nn(T* C, const T* A, const T* B, int n, const T* bias) { gemm<false, true>(C, A, H, 1, B, n, H, bias); }
static inline void gemm_tn(T* C, const T* A, const T* B, int n) { gemm<true, false>(C, A, 1, H, B, H, n, nullptr); }

// The lanes of v summed as a tree (halves, then quarters, ...): a fixed order, short dependency chain.
static inline T hsum(vec v) {
    T s[VW];
    __builtin_memcpy(s, &v, sizeof v);
    for (int w = VW / 2; w > 0; w /= 2)
        for (int l = 0; l < w; ++l) s[l] += s[l + w];
    return s[0];
}

static inline T dot(const T* __restrict a, const T* __restrict b) {
    if constexpr (VEC) {  // lane-wise partial sums, then the lanes as a tree (no reassociation flags needed)
        vec acc = loadv(a) * loadv(b);
        for (int v = 1; v < NV; ++v) acc += loadv(a + v * VW) * loadv(b + v * VW);
        return hsum(acc);
    } else {
        T s = 0; for (int h = 0; h < H; ++h) s += a[h] * b[h]; return s;
    }
}

// Backward of phi_x for one pair (u = relu(Wx mg + bx), gx = wo . u; ggx = dL/dgx): gu = dL/d(Wx mg + bx),
// and the wo and bx gradients accumulated. One pass over H.
static inline void phi_x_backward(const T* __restrict u, T ggx, const T* __restrict wo, T* __restrict gu,
                                  T* __restrict s_wo, T* __restrict s_bx) {
    if constexpr (VEC) {
        const vec g = splat(ggx);
        for (int v = 0; v < NV; ++v) {
            const vec uv = loadv(u + v * VW);
            const vec t = uv > vec{} ? g * loadv(wo + v * VW) : vec{};
            storev(gu + v * VW, t);
            storev(s_wo + v * VW, loadv(s_wo + v * VW) + g * uv);
            storev(s_bx + v * VW, loadv(s_bx + v * VW) + t);
        }
    } else {
        for (int h = 0; h < H; ++h) {
            gu[h] = u[h] > T(0) ? ggx * wo[h] : T(0);
            s_wo[h] += ggx * u[h]; s_bx[h] += gu[h];
        }
    }
}

// Backward of the gate for one pair (mg = m * gate, gate = sigmoid(wg . m + bg); gmg = dL/dmg): gmp =
// dL/d(W z + bW) through m's ReLU, and the wg, bW gradients accumulated; returns dL/dbg. One pass over H.
static inline T gate_backward(const T* __restrict m, const T* __restrict gmg, T gt, const T* __restrict wg,
                              T* __restrict gmp, T* __restrict s_wg, T* __restrict s_bW) {
    const T gs = dot(gmg, m) * gt * (T(1) - gt);
    if constexpr (VEC) {
        const vec gsv = splat(gs), gtv = splat(gt);
        for (int v = 0; v < NV; ++v) {
            const vec mv = loadv(m + v * VW);
            const vec t = mv > vec{} ? loadv(gmg + v * VW) * gtv + gsv * loadv(wg + v * VW) : vec{};
            storev(gmp + v * VW, t);
            storev(s_wg + v * VW, loadv(s_wg + v * VW) + gsv * mv);
            storev(s_bW + v * VW, loadv(s_bW + v * VW) + t);
        }
    } else {
        for (int h = 0; h < H; ++h) {
            gmp[h] = m[h] > T(0) ? gmg[h] * gt + gs * wg[h] : T(0);
            s_wg[h] += gs * m[h]; s_bW[h] += gmp[h];
        }
    }
    return gs;
}

// Backward of z = relu(a_i + b_j + v0 w2s[0] + v1 w2s[1]) for one pair, from gz = dL/dz: accumulates
// dL/da_i, dL/db_j and dL/dw2s; returns dL/dv0, dL/dv1. One pass over H.
static inline void z_backward(const T* __restrict z, const T* __restrict gz, T v0, T v1, const T* __restrict w2s,
                              T* __restrict ga, T* __restrict gb, T* __restrict s_w2s, T& gv0, T& gv1) {
    if constexpr (VEC) {
        const vec v0v = splat(v0), v1v = splat(v1);
        vec d0 = vec{}, d1 = vec{};
        for (int v = 0; v < NV; ++v) {
            const vec t = loadv(z + v * VW) > vec{} ? loadv(gz + v * VW) : vec{};
            storev(ga + v * VW, loadv(ga + v * VW) + t);
            storev(gb + v * VW, loadv(gb + v * VW) + t);
            storev(s_w2s + v * VW, loadv(s_w2s + v * VW) + v0v * t);
            storev(s_w2s + H + v * VW, loadv(s_w2s + H + v * VW) + v1v * t);
            d0 += t * loadv(w2s + v * VW); d1 += t * loadv(w2s + H + v * VW);
        }
        gv0 = hsum(d0); gv1 = hsum(d1);
    } else {
        T d0 = 0, d1 = 0;
        for (int h = 0; h < H; ++h) {
            const T t = z[h] > T(0) ? gz[h] : T(0);
            ga[h] += t; gb[h] += t; s_w2s[h] += v0 * t; s_w2s[H + h] += v1 * t;
            d0 += t * w2s[h]; d1 += t * w2s[H + h];
        }
        gv0 = d0; gv1 = d1;
    }
}

struct Params {  // weights as the kernel uses them; WT = W^T, WxT = Wx^T (input-major)
    const T *w2s, *W, *WT, *bW, *wg, *bg, *Wx, *WxT, *bx, *wo;
};

// Minkowski invariants of the pair (i, j), metric (+, -, -, -): xd = x_i - x_j, n2 = <xd, xd>,
// d = <x_i, x_j>; and their psi = sign(p) log(1 + |p|) (what phi_e sees), as LorentzNet computes them.
static inline void invariants(const T* xi, const T* xj, T* xd, T& n2, T& d) {
    for (int c = 0; c < 4; ++c) xd[c] = xi[c] - xj[c];
    n2 = xd[0] * xd[0] - (xd[1] * xd[1] + xd[2] * xd[2] + xd[3] * xd[3]);
    d = xi[0] * xj[0] - (xi[1] * xj[1] + xi[2] * xj[2] + xi[3] * xj[3]);
}
static inline T psi(T p) { return p > T(0) ? std::log1p(p) : (p < T(0) ? -std::log1p(-p) : T(0)); }

// 1 / (1 + exp(-s)) on VW values at once; for float exp by Cephes' expf (range reduction by ln 2, degree-5
// polynomial, within 2 ulp), the arguments clamped to +-88 (sigmoid is 0 or 1 there to float precision).
static inline vec sigmoid_vec(vec s) {
#if !SCALAR_IS_FLOAT
    vec out;
    for (int l = 0; l < VW; ++l) out[l] = T(1) / (T(1) + std::exp(-s[l]));
    return out;
#else
    vec x = -s;
    x = x > T(88) ? splat(T(88)) : x;
    x = x < T(-88) ? splat(T(-88)) : x;
    vec fx = x * T(1.44269504088896341) + T(0.5);
    const vec fl = __builtin_convertvector(__builtin_convertvector(fx, ivec), vec);  // truncation
    fx = fl > fx ? fl - T(1) : fl;  // floor
    x = x - fx * T(0.693359375) - fx * T(-2.12194440e-4);
    const vec z = x * x;
    vec y = splat(T(1.9875691500E-4));
    y = y * x + T(1.3981999507E-3); y = y * x + T(8.3334519073E-3); y = y * x + T(4.1665795894E-2);
    y = y * x + T(1.6666665459E-1); y = y * x + T(5.0000001201E-1);
    y = y * z + x + T(1);
    const ivec n = __builtin_convertvector(fx, ivec);
    const vec e = y * (vec)((n + 127) << 23);  // times 2^n
    return T(1) / (T(1) + e);
#endif
}

// psi on VW values at once (float): log1p(|p|) as log(u) + (|p| - (u - 1)) / u with u = 1 + |p| and log
// by Cephes' logf polynomial (relative error below 1e-7 on [sqrt(1/2), sqrt(2)]); NaN and inf pass through
// as log1p's; the sign restored. The test compares it with torch on 1e-30 .. 1e30 (tests/test_lorentznet.py).
static inline vec psi_vec(vec p) {
#if !SCALAR_IS_FLOAT
    vec out;
    for (int l = 0; l < VW; ++l) out[l] = psi(p[l]);
    return out;
#else
    const ivec sign = (ivec)p & (int)0x80000000;
    const vec x = (vec)((ivec)p & 0x7fffffff);
    const vec u = x + T(1);
    const ivec bits = (ivec)u;
    ivec e = ((bits >> 23) & 0xff) - 126;
    vec m = (vec)((bits & (int)0x807fffff) | 0x3f000000);  // u = m 2^e, m in [0.5, 1)
    const ivec small = m < T(0.707106781186547524);
    e += small;  // -1 where small
    m = small ? m + m - T(1) : m - T(1);
    const vec z = m * m;
    vec y = splat(T(7.0376836292E-2));
    y = y * m + T(-1.1514610310E-1); y = y * m + T(1.1676998740E-1); y = y * m + T(-1.2420140846E-1);
    y = y * m + T(1.4249322787E-1); y = y * m + T(-1.6668057665E-1); y = y * m + T(2.0000714765E-1);
    y = y * m + T(-2.4999993993E-1); y = y * m + T(3.3333331174E-1);
    y = y * m * z;
    const vec ef = __builtin_convertvector(e, vec);
    y += T(-2.12194440e-4) * ef;
    y += T(-0.5) * z;
    vec r = m + y + T(0.693359375) * ef;
    r += (x - (u - T(1))) / u;  // log1p(x) = log(u) + the rounding of 1 + x
    r = (x < T(INFINITY)) ? r : x;  // inf stays inf, NaN stays NaN
    return (vec)((ivec)r | sign);
#endif
}
static inline T dpsi(T p) { return p == T(0) ? T(0) : T(1) / (T(1) + std::fabs(p)); }  // as autograd: 0 at 0

// Gradient of the pair's invariants back to x_i and x_j: g_v = dL/d(psi(n2), psi(d)), g_xd = dL/dxd
// from other uses of xd (the coordinate update).
static inline void invariants_backward(const T* xi, const T* xj, const T* xd, T n2, T d, T gv0, T gv1,
                                       const T* g_xd, T* g_xi, T* g_xj) {
    const T gn = gv0 * dpsi(n2), gd = gv1 * dpsi(d);
    const T eta[4] = {T(1), T(-1), T(-1), T(-1)};
    for (int c = 0; c < 4; ++c) {
        const T gx = g_xd[c] + T(2) * gn * eta[c] * xd[c];
        g_xi[c] += gx + gd * eta[c] * xj[c];
        g_xj[c] += -gx + gd * eta[c] * xi[c];
    }
}

struct Row {  // one jet row (i, its real neighbours j): n <= N rows of H, per pair its gate, gx, dL/dxd and
              // pair-table entry tp[q] = pt[g, i, j] (<xd, xd>, <x_i, x_j>, their psi, xd = x_i - x_j)
    std::vector<T> z, m, mg, u, gu, gmg, gmp, gz, gate, gx, gxd; std::vector<int> js; std::vector<const T*> tp;
    T* mp = nullptr; T* up = nullptr;  // where this row's m and u are (own buffers or the caller's)
    explicit Row(int N) : z(N * H), m(N * H), mg(N * H), u(N * H), gu(N * H), gmg(N * H), gmp(N * H), gz(N * H),
                          gate(N + VW), gx(N), gxd(4 * N), js(N), tp(N) {}
    const T* xd(int q) const { return tp[q] + 4; }
};

// The real neighbours of node i and their pair-table entries; returns n.
static int row_pairs(Row& r, const T* e_gi, const T* pt_gi, int N) {
    int n = 0;
    for (int j = 0; j < N; ++j)
        if (e_gi[j] != T(0)) { r.js[n] = j; r.tp[n] = pt_gi + 8 * j; ++n; }
    return n;
}

// Forward of row (g, i): fills the Row (z, m, gate, mg; u and gx with phi_x); returns n. The n rows of m
// and u are compact: saved_m / saved_u (if given) hold them from an earlier forward and are read instead of
// recomputed; store_m / store_u (if given) receive them.
static int row_forward(Row& r, const Params& p, const T* x_g, const T* e_gi, const T* pt_gi, const T* a_i,
                       const T* b_g, int i, int N, bool has_x, const T* saved_m, const T* saved_u,
                       const T* saved_gate, T* store_m, T* store_u, T* store_gate) {
    const int n = row_pairs(r, e_gi, pt_gi, N);
    for (int q = 0; q < n; ++q) {
        const T v0 = r.tp[q][2], v1 = r.tp[q][3];
        const T* __restrict b_j = b_g + r.js[q] * H; T* __restrict z = r.z.data() + q * H;
        for (int h = 0; h < H; ++h) {
            const T t = a_i[h] + b_j[h] + (v0 * p.w2s[h] + v1 * p.w2s[H + h]);
            z[h] = t > T(0) ? t : T(0);
        }
    }
    // m and u live in the caller's buffers where given (no copies), else in the Row's
    r.mp = saved_m ? const_cast<T*>(saved_m) : (store_m ? store_m : r.m.data());
    if (!saved_m) {
        relu_nn(r.mp, r.z.data(), p.WT, n, p.bW);
    }
    if (saved_gate) {
        std::memcpy(r.gate.data(), saved_gate, sizeof(T) * n);
    } else {
        for (int q = 0; q < n; ++q) r.gate[q] = dot(r.mp + q * H, p.wg) + p.bg[0];
        for (int q = 0; q < n; q += VW) storev(&r.gate[q], sigmoid_vec(loadv(&r.gate[q])));  // gate has VW spare
        if (store_gate) std::memcpy(store_gate, r.gate.data(), sizeof(T) * n);
    }
    for (int q = 0; q < n; ++q) {
        const T* __restrict m = r.mp + q * H; T* __restrict mg = r.mg.data() + q * H;
        const T g = r.gate[q];
        for (int h = 0; h < H; ++h) mg[h] = m[h] * g;
    }
    if (has_x) {
        r.up = saved_u ? const_cast<T*>(saved_u) : (store_u ? store_u : r.u.data());
        if (!saved_u) {
            relu_nn(r.up, r.mg.data(), p.WxT, n, p.bx);
        }
        for (int q = 0; q < n; ++q) r.gx[q] = dot(r.up + q * H, p.wo);
    }
    return n;
}

static inline T clamp100(T t) { return t < T(-100) ? T(-100) : (t > T(100) ? T(100) : t); }

static Params params(const T* w2s, const T* W, const T* WT, const T* bW, const T* wg, const T* bg,
                     const T* Wx, const T* WxT, const T* bx, const T* wo) {
    Params p = {w2s, W, WT, bW, wg, bg, Wx, WxT, bx, wo}; return p;
}

static inline int thread_id() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

extern "C" {

int hidden_size() { return H; }

// The pair table pt (G, N, N, 8) = (<xd, xd>, <x_i, x_j>, their psi, xd = x_i - x_j) of every real pair, once per
// block (the invariants are symmetric in i, j) and read by the kernels below, which take their gradients
// back to x themselves.
// Returns the number of edge weights that are neither 0 nor 1 (the kernels treat any non-zero weight as 1,
// so the caller refuses such input) or that mark a pair in one direction only.
int edge_pairs(int G, int N, int nthreads, const T* x, const T* e, T* pt) {
    long bad = 0;
    #pragma omp parallel num_threads(nthreads) reduction(+ : bad)
    {
        std::vector<T> raw(2 * N + 2 * VW), ps(2 * N + 2 * VW), xd(4 * N);
        std::vector<int> js(N);
        #pragma omp for schedule(static)
        for (int g = 0; g < G; ++g) {
            const T* x_g = x + (long)g * N * 4;
            for (int i = 0; i < N; ++i) {
                int n = 0;
                for (int j = i + 1; j < N; ++j) {
                    const long ij = ((long)g * N + i) * N + j, ji = ((long)g * N + j) * N + i;
                    bad += (e[ij] != T(0) && e[ij] != T(1)) + (e[ji] != T(0) && e[ji] != T(1)) + (e[ij] != e[ji]);
                    if (e[ij] == T(0) && e[ji] == T(0)) continue;
                    invariants(x_g + 4 * i, x_g + 4 * j, &xd[4 * n], raw[2 * n], raw[2 * n + 1]);
                    js[n++] = j;
                }
                for (int k = 2 * n; k < 2 * n + VW; ++k) raw[k] = 0;
                for (int k = 0; k < 2 * n; k += VW) storev(&ps[k], psi_vec(loadv(&raw[k])));
                for (int q = 0; q < n; ++q) {
                    const int j = js[q];
                    const long ij = ((long)g * N + i) * N + j, ji = ((long)g * N + j) * N + i;
                    const T* d = &xd[4 * q];  // x_j - x_i is exactly -(x_i - x_j)
                    const T t[8] = {raw[2 * q], raw[2 * q + 1], ps[2 * q], ps[2 * q + 1], d[0], d[1], d[2], d[3]};
                    const T u[8] = {t[0], t[1], t[2], t[3], -d[0], -d[1], -d[2], -d[3]};
                    std::memcpy(pt + 8 * ij, t, sizeof t); std::memcpy(pt + 8 * ji, u, sizeof u);
                }
            }
        }
    }
    for (long k = 0; k < (long)G * N; ++k) bad += e[k * N + k % N] != T(0);  // the diagonal (g, i, i)
    return (int)(bad > 2147483647L ? 2147483647L : bad);
}

// out[k] = psi(in[k]) (fn 0) or sigmoid(in[k]) (fn 1) as the kernels compute them (for the tests).
void elementwise_values(int fn, int n, int unused, const T* in, T* out) {
    std::vector<T> buf(n + VW, T(0));
    std::memcpy(buf.data(), in, sizeof(T) * n);
    for (int k = 0; k < n; k += VW) storev(&buf[k], fn == 0 ? psi_vec(loadv(&buf[k])) : sigmoid_vec(loadv(&buf[k])));
    std::memcpy(out, buf.data(), sizeof(T) * n);
}

// x (G, N, 4) coordinates, e (G, N, N) 0/1 edge weights, a, b (G, N, H) folded phi_e projections.
// Out: agg (G, N, H) message sums; with phi_x, xsum (G, N, 4) = sum_j clamp(xd_ij * gx_ij, -100, 100).
void edge_forward(int G, int N, int nthreads, const T* x, const T* e, const T* pt, const T* a, const T* b,
                  const T* w2s, const T* W, const T* WT, const T* bW, const T* wg, const T* bg,
                  const T* Wx, const T* WxT, const T* bx, const T* wo, T* agg, T* xsum, T* store_m, T* store_u,
                  T* store_gate) {
    const Params p = params(w2s, W, WT, bW, wg, bg, Wx, WxT, bx, wo);
    const bool has_x = Wx != nullptr;
    #pragma omp parallel num_threads(nthreads)
    {
        Row r(N);
        #pragma omp for schedule(static)
        for (int g = 0; g < G; ++g) {
            for (int i = 0; i < N; ++i) {
                const long gi = (long)g * N + i;
                const long row = gi * N * H;  // m and u of the row, compact, in (G, N, N, H) buffers
                const int n = row_forward(r, p, x + (long)g * N * 4, e + gi * N, pt + gi * N * 8, a + gi * H, b + (long)g * N * H,
                                          i, N, has_x, nullptr, nullptr, nullptr, store_m ? store_m + row : nullptr,
                                          store_u ? store_u + row : nullptr, store_gate ? store_gate + gi * N : nullptr);
                double sum[H] = {}, xs[4] = {};  // sums over the neighbours in double
                for (int q = 0; q < n; ++q) {
                    const T* mg = r.mg.data() + q * H;
                    for (int h = 0; h < H; ++h) sum[h] += mg[h];
                }
                for (int h = 0; h < H; ++h) agg[gi * H + h] = (T)sum[h];
                if (has_x) {
                    for (int q = 0; q < n; ++q)
                        for (int c = 0; c < 4; ++c) xs[c] += clamp100(r.xd(q)[c] * r.gx[q]);
                    for (int c = 0; c < 4; ++c) xsum[gi * 4 + c] = (T)xs[c];
                }
            }
        }
    }
}

// Gradients of sum(agg * g_agg) + sum(xsum * g_xsum): g_x, g_a, g_b (per jet) and the weight
// gradients (each the parameter's shape) are overwritten.
void edge_backward(int G, int N, int nthreads, const T* x, const T* e, const T* pt, const T* a, const T* b,
                   const T* w2s, const T* W, const T* WT, const T* bW, const T* wg, const T* bg,
                   const T* Wx, const T* WxT, const T* bx, const T* wo, const T* saved_m, const T* saved_u,
                   const T* saved_gate, const T* g_agg, const T* g_xsum,
                   T* g_x, T* g_a, T* g_b, T* g_w2s, T* g_W, T* g_bW, T* g_wg, T* g_bg,
                   T* g_Wx, T* g_bx, T* g_wo) {
    const Params p = params(w2s, W, WT, bW, wg, bg, Wx, WxT, bx, wo);
    const bool has_x = Wx != nullptr;
    // per-thread weight gradients, laid out w2s (2H) | W (HH) | bW | wg | bg (1) | Wx (HH) | bx | wo
    const int S = 2 * H + H * H + H + H + 1 + H * H + H + H;
    std::vector<T> acc((size_t)nthreads * S, T(0));
    std::memset(g_b, 0, sizeof(T) * (size_t)G * N * H);
    std::memset(g_x, 0, sizeof(T) * (size_t)G * N * 4);
    #pragma omp parallel num_threads(nthreads)
    {
        Row r(N);
        T* s = acc.data() + (size_t)thread_id() * S;
        T *s_w2s = s, *s_W = s_w2s + 2 * H, *s_bW = s_W + H * H, *s_wg = s_bW + H, *s_bg = s_wg + H;
        T *s_Wx = s_bg + 1, *s_bx = s_Wx + H * H, *s_wo = s_bx + H;
        #pragma omp for schedule(static)
        for (int g = 0; g < G; ++g) {
            const T* x_g = x + (long)g * N * 4;
            T* gb_g = g_b + (long)g * N * H;
            T* gx_g = g_x + (long)g * N * 4;
            for (int i = 0; i < N; ++i) {
                const long gi = (long)g * N + i;
                const long row = gi * N * H;
                const int n = row_forward(r, p, x_g, e + gi * N, pt + gi * N * 8, a + gi * H, b + (long)g * N * H, i, N, has_x,
                                          saved_m + row, has_x ? saved_u + row : nullptr, saved_gate + gi * N,
                                          nullptr, nullptr, nullptr);
                T* ga = g_a + gi * H;
                for (int h = 0; h < H; ++h) ga[h] = 0;
                if (n == 0) continue;
                const T* gagg = g_agg + gi * H;
                if (has_x) {
                    const T* gxs = g_xsum + gi * 4;
                    for (int q = 0; q < n; ++q) {
                        T ggx = 0;  // dL/dgx through the clamped products xd * gx
                        for (int c = 0; c < 4; ++c) {
                            const T t = r.xd(q)[c] * r.gx[q];
                            const bool in = t >= T(-100) && t <= T(100);
                            ggx += in ? gxs[c] * r.xd(q)[c] : T(0);
                            r.gxd[4 * q + c] = in ? gxs[c] * r.gx[q] : T(0);
                        }
                        phi_x_backward(r.up + q * H, ggx, p.wo, r.gu.data() + q * H, s_wo, s_bx);
                    }
                    gemm_nn(r.gmg.data(), r.gu.data(), p.Wx, n, gagg);  // Wx^T gu + dL/dagg_i
                    gemm_tn(s_Wx, r.gu.data(), r.mg.data(), n);
                } else {
                    for (int q = 0; q < n; ++q) std::memcpy(r.gmg.data() + q * H, gagg, sizeof(T) * H);
                    for (int k = 0; k < 4 * n; ++k) r.gxd[k] = 0;
                }
                for (int q = 0; q < n; ++q)
                    s_bg[0] += gate_backward(r.mp + q * H, r.gmg.data() + q * H, r.gate[q], p.wg, r.gmp.data() + q * H,
                                             s_wg, s_bW);
                gemm_tn(s_W, r.gmp.data(), r.z.data(), n);
                gemm_nn(r.gz.data(), r.gmp.data(), p.W, n, nullptr);  // W^T gmp
                for (int q = 0; q < n; ++q) {
                    const int j = r.js[q];
                    T gv0, gv1;
                    z_backward(r.z.data() + q * H, r.gz.data() + q * H, r.tp[q][2], r.tp[q][3], p.w2s, ga,
                               gb_g + j * H, s_w2s, gv0, gv1);
                    invariants_backward(x_g + 4 * i, x_g + 4 * j, r.xd(q), r.tp[q][0], r.tp[q][1],
                                        gv0, gv1, &r.gxd[4 * q], gx_g + 4 * i, gx_g + 4 * j);
                }
            }
        }
    }
    for (int k = 0; k < S; ++k) for (int t = 1; t < nthreads; ++t) acc[k] += acc[(size_t)t * S + k];
    T* s = acc.data();
    std::memcpy(g_w2s, s, sizeof(T) * 2 * H); s += 2 * H;
    std::memcpy(g_W, s, sizeof(T) * H * H); s += H * H;
    std::memcpy(g_bW, s, sizeof(T) * H); s += H;
    std::memcpy(g_wg, s, sizeof(T) * H); s += H;
    g_bg[0] = s[0]; s += 1;
    if (has_x) {
        std::memcpy(g_Wx, s, sizeof(T) * H * H); s += H * H;
        std::memcpy(g_bx, s, sizeof(T) * H); s += H;
        std::memcpy(g_wo, s, sizeof(T) * H);
    }
}

// phi_e's BatchNorm sums over the real pairs, in double, from per-node quantities (the formulas of
// lorentznet._edge_sums_torch): with c_i = r_i @ w2^T and eb_i = node_i (sum_j node_j b_j - b_i),
// s1 = sum_i deg_i (a_i + b_i) + c_i and s2 = sum_i deg_i (a_i^2 + b_i^2) + 2 a_i eb_i + 2 (a_i + b_i) c_i
// + sum_h w2_h^T (sum_g mom_g) w2_h. a, b (G, N, H); node, deg (G, N); r (G, N, 2); mom (G, 4); w2 (H, 2).
// Out: s = s1 (H) | s2 (H).
void edge_norm(int G, int N, int nthreads, const T* a, const T* b, const T* node, const T* deg, const double* r,
               const double* mom, const T* w2, double* s) {
    std::vector<double> acc((size_t)nthreads * 2 * H, 0.0);
    #pragma omp parallel num_threads(nthreads)
    {
        double* s1 = acc.data() + (size_t)thread_id() * 2 * H; double* s2 = s1 + H;
        #pragma omp for schedule(static)
        for (int g = 0; g < G; ++g) {
            double sb[H] = {};
            for (int i = 0; i < N; ++i) {
                const T* b_i = b + ((long)g * N + i) * H;
                for (int h = 0; h < H; ++h) sb[h] += (double)node[(long)g * N + i] * b_i[h];
            }
            for (int i = 0; i < N; ++i) {
                const long gi = (long)g * N + i;
                const double n_i = node[gi], d_i = deg[gi], r0 = r[2 * gi], r1 = r[2 * gi + 1];
                const T* a_i = a + gi * H; const T* b_i = b + gi * H;
                for (int h = 0; h < H; ++h) {
                    const double A = a_i[h], B = b_i[h];
                    const double c = r0 * w2[2 * h] + r1 * w2[2 * h + 1], eb = n_i * (sb[h] - B);
                    s1[h] += d_i * (A + B) + c;
                    s2[h] += d_i * (A * A + B * B) + 2 * A * eb + 2 * (A + B) * c;
                }
            }
        }
    }
    double M[4] = {0, 0, 0, 0};
    for (int g = 0; g < G; ++g) for (int k = 0; k < 4; ++k) M[k] += mom[4 * (long)g + k];
    for (int h = 0; h < 2 * H; ++h) {
        double t = 0;
        for (int th = 0; th < nthreads; ++th) t += acc[(size_t)th * 2 * H + h];
        s[h] = t;
    }
    for (int h = 0; h < H; ++h) {
        const double w0 = w2[2 * h], w1 = w2[2 * h + 1];
        s[H + h] += w0 * (M[0] * w0 + M[1] * w1) + w1 * (M[2] * w0 + M[3] * w1);
    }
}

// Gradients of edge_norm from gs = dL/ds1 (H) | dL/ds2 (H): g_a, g_b (G, N, H), g_r (G, N, 2), g_w2 (H, 2),
// g_mom (G, 4), all overwritten.
void edge_norm_backward(int G, int N, int nthreads, const T* a, const T* b, const T* node, const T* deg,
                        const double* r, const double* mom, const T* w2, const double* gs, T* g_a, T* g_b,
                        double* g_r, T* g_w2, double* g_mom) {
    const double* g1 = gs; const double* g2 = gs + H;
    std::vector<double> acc((size_t)nthreads * 2 * H, 0.0);
    #pragma omp parallel num_threads(nthreads)
    {
        double* dw = acc.data() + (size_t)thread_id() * 2 * H;
        #pragma omp for schedule(static)
        for (int g = 0; g < G; ++g) {
            double sa[H] = {}, sb[H] = {};
            for (int i = 0; i < N; ++i) {
                const long gi = (long)g * N + i;
                for (int h = 0; h < H; ++h) { sa[h] += (double)node[gi] * a[gi * H + h]; sb[h] += (double)node[gi] * b[gi * H + h]; }
            }
            for (int i = 0; i < N; ++i) {
                const long gi = (long)g * N + i;
                const double n_i = node[gi], d_i = deg[gi], r0 = r[2 * gi], r1 = r[2 * gi + 1];
                double gr0 = 0, gr1 = 0;
                for (int h = 0; h < H; ++h) {
                    const double A = a[gi * H + h], B = b[gi * H + h];
                    const double c = r0 * w2[2 * h] + r1 * w2[2 * h + 1], eb = n_i * (sb[h] - B);
                    const double dc = g1[h] + 2 * g2[h] * (A + B);
                    g_a[gi * H + h] = (T)(d_i * g1[h] + g2[h] * (2 * d_i * A + 2 * eb + 2 * c));
                    g_b[gi * H + h] = (T)(d_i * g1[h] + g2[h] * (2 * d_i * B + 2 * c) + 2 * g2[h] * n_i * (sa[h] - A));
                    gr0 += dc * w2[2 * h]; gr1 += dc * w2[2 * h + 1];
                    dw[2 * h] += dc * r0; dw[2 * h + 1] += dc * r1;
                }
                g_r[2 * gi] = gr0; g_r[2 * gi + 1] = gr1;
            }
        }
    }
    double M[4] = {0, 0, 0, 0};
    for (int g = 0; g < G; ++g) for (int k = 0; k < 4; ++k) M[k] += mom[4 * (long)g + k];
    double gm[4] = {0, 0, 0, 0};
    for (int h = 0; h < H; ++h) {
        const double w0 = w2[2 * h], w1 = w2[2 * h + 1];
        double d0 = 0, d1 = 0;
        for (int th = 0; th < nthreads; ++th) { d0 += acc[(size_t)th * 2 * H + 2 * h]; d1 += acc[(size_t)th * 2 * H + 2 * h + 1]; }
        d0 += g2[h] * ((M[0] + M[0]) * w0 + (M[1] + M[2]) * w1);
        d1 += g2[h] * ((M[2] + M[1]) * w0 + (M[3] + M[3]) * w1);
        g_w2[2 * h] = (T)d0; g_w2[2 * h + 1] = (T)d1;
        gm[0] += g2[h] * w0 * w0; gm[1] += g2[h] * w0 * w1; gm[2] += g2[h] * w1 * w0; gm[3] += g2[h] * w1 * w1;
    }
    for (int g = 0; g < G; ++g) for (int k = 0; k < 4; ++k) g_mom[4 * (long)g + k] = gm[k];
}

// BatchNorm statistics of the invariants over the real pairs, in double: r (G, N, 2) = sum_j v_ij,
// mom (G, 4) = sum_ij v_ij v_ij^T (row-major 2 x 2), v = (psi(n2), psi(d)).
void edge_stats(int G, int N, int nthreads, const T* e, const T* pt, double* r_out, double* mom) {
    #pragma omp parallel num_threads(nthreads)
    {
        Row r(N);
        #pragma omp for schedule(static)
        for (int g = 0; g < G; ++g) {
            double* mg = mom + 4 * (long)g;
            for (int k = 0; k < 4; ++k) mg[k] = 0;
            for (int i = 0; i < N; ++i) {
                const long gi = (long)g * N + i;
                const int n = row_pairs(r, e + gi * N, pt + gi * N * 8, N);
                double s0 = 0, s1 = 0;
                for (int q = 0; q < n; ++q) {
                    const double v0 = r.tp[q][2], v1 = r.tp[q][3];
                    s0 += v0; s1 += v1;
                    mg[0] += v0 * v0; mg[1] += v0 * v1; mg[2] += v1 * v0; mg[3] += v1 * v1;
                }
                r_out[2 * gi] = s0; r_out[2 * gi + 1] = s1;
            }
        }
    }
}

// g_x (G, N, 4), overwritten, from dL/dr (G, N, 2) and dL/dmom (G, 4) of edge_stats.
void edge_stats_backward(int G, int N, int nthreads, const T* x, const T* e, const T* pt, const double* g_r,
                         const double* g_mom, T* g_x) {
    std::memset(g_x, 0, sizeof(T) * (size_t)G * N * 4);
    #pragma omp parallel num_threads(nthreads)
    {
        Row r(N);
        const T zero[4] = {0, 0, 0, 0};
        #pragma omp for schedule(static)
        for (int g = 0; g < G; ++g) {
            const T* x_g = x + (long)g * N * 4;
            const double* gm = g_mom + 4 * (long)g;
            for (int i = 0; i < N; ++i) {
                const long gi = (long)g * N + i;
                const int n = row_pairs(r, e + gi * N, pt + gi * N * 8, N);
                for (int q = 0; q < n; ++q) {
                    const double v0 = r.tp[q][2], v1 = r.tp[q][3];
                    const T gv0 = (T)(g_r[2 * gi] + 2 * gm[0] * v0 + (gm[1] + gm[2]) * v1);
                    const T gv1 = (T)(g_r[2 * gi + 1] + (gm[1] + gm[2]) * v0 + 2 * gm[3] * v1);
                    invariants_backward(x_g + 4 * i, x_g + 4 * r.js[q], r.xd(q), r.tp[q][0],
                                        r.tp[q][1], gv0, gv1, zero, g_x + (long)g * N * 4 + 4 * i,
                                        g_x + (long)g * N * 4 + 4 * r.js[q]);
                }
            }
        }
    }
}

}  // extern "C"
"""

FLAGS = ("-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-std=c++17")
TYPES = {torch.float32: "float", torch.float64: "double"}
_P = ctypes.c_void_p

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


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)


def keep_freed_memory(limit: int = 1 << 30) -> bool:
    """Let glibc's malloc serve blocks up to `limit` bytes from its heap and keep freed memory there.

    A training step allocates and frees the same large blocks every step (the kernel keeps about
    10 MB of activations per block at quick size); by default glibc maps each from the OS and unmaps
    it on free, so every step pays the page faults again (about 1 ms per 10 MB here, 5 % of a quick
    teacher step). Process-wide and harmless (the memory stays reserved for reuse: the peak RSS of
    the step, not more); called before training (`train.teacher`, `benchmarks/teacher_throughput.py`).
    Returns whether glibc accepted the settings (False elsewhere)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, limit)) and bool(libc.mallopt(M_TRIM_THRESHOLD, limit))
    except (OSError, AttributeError):
        return False


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
    """$TRIGGER_KD_CACHE/.kernels (a dot directory: not a stage entry for `trigger-kd cache`)."""
    root = os.environ.get("TRIGGER_KD_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "trigger_kd") / ".kernels"


def _build(hidden: int, ctype: str, march: str = "native") -> ctypes.CDLL:
    """Compile (once; cached under `kernel_dir`) and load the kernel. `march` other than "native" is for the
    tests (e.g. "x86-64-v3": AVX2 without AVX-512, to compare the two register tilings bit for bit)."""
    gxx = shutil.which("g++")
    if gxx is None:
        raise RuntimeError("g++ not found")
    flags = tuple(f"-march={march}" if f == "-march=native" else f for f in FLAGS)
    defines = (f"-DSCALAR={ctype}", f"-DSCALAR_IS_FLOAT={int(ctype == 'float')}", f"-DHIDDEN={hidden}")
    key = hashlib.sha256("\0".join([SOURCE, *flags, *defines, _compiler_version(gxx), _cpu_id()]).encode()).hexdigest()
    out_dir = kernel_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    lib = out_dir / f"lorentznet_edges_{ctype}_h{hidden}_{key[:16]}.so"
    with FileLock(str(lib) + ".lock"):
        if not lib.exists():
            with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
                src = Path(tmp) / "edges.cpp"
                src.write_text(SOURCE)
                obj = Path(tmp) / lib.name
                run = subprocess.run([gxx, *flags, *defines, str(src), "-o", str(obj)], capture_output=True, text=True)
                if run.returncode != 0:
                    raise RuntimeError(f"g++ failed: {run.stderr.strip()[-2000:]}")
                os.replace(obj, lib)  # atomic: a reader sees the whole library or none
    dll = ctypes.CDLL(str(lib))
    for name, pointers in (("elementwise_values", 2), ("edge_pairs", 3), ("edge_forward", 20), ("edge_backward", 31), ("edge_stats", 4),
                            ("edge_stats_backward", 6), ("edge_norm", 8), ("edge_norm_backward", 13)):
        getattr(dll, name).argtypes = [ctypes.c_int] * 3 + [_P] * pointers
        getattr(dll, name).restype = ctypes.c_int if name == "edge_pairs" else None
    if dll.hidden_size() != hidden:
        raise RuntimeError(f"kernel {lib} was built for hidden size {dll.hidden_size()}, not {hidden}")
    dll.hidden, dll.dtype = hidden, {v: k for k, v in TYPES.items()}[ctype]  # what `_check` holds inputs to
    return dll


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
    return (False, lib) if isinstance(lib, str) else (True, lib._name)


def _ptr(t: torch.Tensor | None):
    return None if t is None else t.data_ptr()


def _plain(*tensors):
    """Detached, contiguous tensors (None stays None): the kernel reads raw memory."""
    return [t.detach().contiguous() if t is not None else None for t in tensors]


def _check(lib, *expected):
    """(tensor, shape[, dtype]) pairs: the kernel reads raw memory of its own hidden size and scalar type, so a
    tensor of another shape or dtype is refused here instead of read out of bounds or misread."""
    for t, shape, *dtype in expected:
        want = dtype[0] if dtype else lib.dtype
        if t is not None and (t.dtype != want or tuple(t.shape) != tuple(shape)):
            raise ValueError(f"LorentzNet edge kernel (hidden {lib.hidden}, {lib.dtype}): got a {t.dtype} tensor of "
                             f"shape {tuple(t.shape)} where {want} {tuple(shape)} is needed")


def _first_order_only():
    """Refuse a backward with create_graph=True (grad mode on in backward): the kernel's gradients are not
    differentiable, and autograd would silently drop their second-order terms (torch's once_differentiable
    only raises when the path reaches its own outputs, not for autograd.grad with respect to parameters)."""
    if torch.is_grad_enabled():
        raise RuntimeError("second derivatives through LorentzNet's compiled edge kernel are not available: run the "
                           "forward pass inside trigger_kd.models.edge_kernel.torch_edges() (as train.curvature does)")


def elementwise_values(lib, fn: str, values: torch.Tensor) -> torch.Tensor:
    """fn ("psi" or "sigmoid") of values as the kernel computes them (vectorised polynomials for float32)."""
    values = values.detach().contiguous()
    out = torch.empty_like(values)
    lib.elementwise_values(("psi", "sigmoid").index(fn), values.numel(), 0, values.data_ptr(), out.data_ptr())
    return out


def pair_table(lib, x: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
    """(G, N, N, 8): <x_i - x_j, x_i - x_j>, <x_i, x_j>, their psi and x_i - x_j for the real pairs (unset elsewhere), a
    constant input of EdgeStats and EdgeBlock (their backward differentiates the invariants themselves)."""
    x, edge = _plain(x, edge)
    G, N = x.shape[:2]
    _check(lib, (x, (G, N, 4)), (edge, (G, N, N)))
    pt = x.new_empty(G, N, N, 8)  # the kernels read the entries of real pairs only
    bad = lib.edge_pairs(G, N, torch.get_num_threads(), *map(_ptr, (x, edge, pt)))
    if bad:
        raise ValueError(f"edge weights must be 0 or 1, symmetric, and 0 on the diagonal; {bad} are not")
    return pt


class EdgeBlock(torch.autograd.Function):
    """(x, edge, pt, a, b, w2s, W, bW, wg, bg[, Wx, bx, wo]) -> (agg (G, N, H), xsum (G, N, 4)); see the module doc.

    x (G, N, 4) coordinates, edge (G, N, N) 0/1 weights of the real pairs, pt their `pair_table`, a, b (G, N, H) phi_e's first layer
    on h_i and h_j with its BatchNorm folded in, w2s (2, H) its columns for the invariants (scaled likewise);
    W, bW phi_e's second layer; wg (H,), bg (1,) phi_m; Wx, bx, wo (H,) phi_x (None in the last block, where
    xsum is zero). xsum_i = sum_j clamp((x_i - x_j) * phi_x(m_ij), -100, 100)."""

    @staticmethod
    def forward(ctx, lib, x, edge, pt, a, b, w2s, W, bW, wg, bg, Wx, bx, wo):
        x, edge, pt, a, b, w2s, W, bW, wg, bg, Wx, bx, wo = _plain(x, edge, pt, a, b, w2s, W, bW, wg, bg, Wx, bx, wo)
        G, N, H = x.shape[0], x.shape[1], lib.hidden
        _check(lib, (x, (G, N, 4)), (edge, (G, N, N)), (pt, (G, N, N, 8)), (a, (G, N, H)), (b, (G, N, H)),
               (w2s, (2, H)), (W, (H, H)), (bW, (H,)), (wg, (H,)), (bg, (1,)), (Wx, (H, H)), (bx, (H,)), (wo, (H,)))
        WT, WxT = W.t().contiguous(), (Wx.t().contiguous() if Wx is not None else None)
        agg, xsum = a.new_empty(G, N, H), x.new_zeros(G, N, 4)
        # for backward, phi_e's and phi_x's hidden activations and the gates are kept (compact per row)
        keep = any(ctx.needs_input_grad)
        store_m = a.new_empty(G, N, N, H) if keep else None
        store_u = a.new_empty(G, N, N, H) if keep and Wx is not None else None
        store_gate = a.new_empty(G, N, N) if keep else None
        threads = torch.get_num_threads()
        lib.edge_forward(G, N, threads, *map(_ptr, (x, edge, pt, a, b, w2s, W, WT, bW, wg, bg, Wx, WxT, bx, wo,
                                                     agg, xsum, store_m, store_u, store_gate)))
        ctx.lib, ctx.threads, ctx.has_x = lib, threads, Wx is not None
        ctx.save_for_backward(x, edge, pt, a, b, w2s, W, WT, bW, wg, bg, store_m, store_gate,
                              *((Wx, WxT, bx, wo, store_u) if Wx is not None else ()))
        if Wx is None:
            ctx.mark_non_differentiable(xsum)
        return agg, xsum

    @staticmethod
    def backward(ctx, g_agg, g_xsum):
        _first_order_only()
        x, edge, pt, a, b, w2s, W, WT, bW, wg, bg, saved_m, saved_gate, *rest = ctx.saved_tensors
        Wx, WxT, bx, wo, saved_u = rest if ctx.has_x else (None,) * 5
        G, N, H = a.shape
        g_agg = (g_agg if g_agg is not None else a.new_zeros(G, N, H)).contiguous()
        g_xsum = (g_xsum if g_xsum is not None else x.new_zeros(G, N, 4)).contiguous()
        g_x, g_a, g_b = torch.empty_like(x), torch.empty_like(a), torch.empty_like(b)
        g_w2s, g_W, g_bW, g_wg, g_bg = map(torch.empty_like, (w2s, W, bW, wg, bg))
        g_Wx, g_bx, g_wo = map(torch.empty_like, (Wx, bx, wo)) if ctx.has_x else (None, None, None)
        ctx.lib.edge_backward(G, N, ctx.threads, *map(_ptr, (
            x, edge, pt, a, b, w2s, W, WT, bW, wg, bg, Wx, WxT, bx, wo, saved_m, saved_u, saved_gate, g_agg, g_xsum,
            g_x, g_a, g_b, g_w2s, g_W, g_bW, g_wg, g_bg, g_Wx, g_bx, g_wo)))
        grads = (g_x, None, None, g_a, g_b, g_w2s, g_W, g_bW, g_wg, g_bg, g_Wx, g_bx, g_wo)
        return (None, *(gr if need else None for gr, need in zip(grads, ctx.needs_input_grad[1:])))


class EdgeStats(torch.autograd.Function):
    """(x (G, N, 4), edge (G, N, N), pt) -> (r (G, N, 2), mom (G, 2, 2)), float64: sums over the real pairs of the
    invariants v_ij = (psi(<xd, xd>), psi(<x_i, x_j>)) and of v_ij v_ij^T, for phi_e's BatchNorm statistics."""

    @staticmethod
    def forward(ctx, lib, x, edge, pt):
        x, edge, pt = _plain(x, edge, pt)
        G, N = x.shape[:2]
        _check(lib, (x, (G, N, 4)), (edge, (G, N, N)), (pt, (G, N, N, 8)))
        r, mom = torch.empty(G, N, 2, dtype=torch.float64), torch.empty(G, 2, 2, dtype=torch.float64)
        threads = torch.get_num_threads()
        lib.edge_stats(G, N, threads, *map(_ptr, (edge, pt, r, mom)))
        ctx.lib, ctx.threads = lib, threads
        ctx.save_for_backward(x, edge, pt)
        return r, mom

    @staticmethod
    def backward(ctx, g_r, g_mom):
        _first_order_only()
        x, edge, pt = ctx.saved_tensors
        G, N, _ = x.shape
        g_r = (g_r if g_r is not None else x.new_zeros(G, N, 2, dtype=torch.float64)).double().contiguous()
        g_mom = (g_mom if g_mom is not None else x.new_zeros(G, 2, 2, dtype=torch.float64)).double().contiguous()
        g_x = torch.empty_like(x)
        ctx.lib.edge_stats_backward(G, N, ctx.threads, *map(_ptr, (x, edge, pt, g_r, g_mom, g_x)))
        return None, (g_x if ctx.needs_input_grad[1] else None), None, None


class EdgeNorm(torch.autograd.Function):
    """(a, b, node, deg, r, mom, w2) -> (s1, s2) (H,) float64: phi_e's BatchNorm sums over the real pairs of
    one group (the formulas of `lorentznet._edge_sums_torch`); r, mom from EdgeStats, w2 (H, 2) phi_e's
    first-layer columns for the invariants."""

    @staticmethod
    def forward(ctx, lib, a, b, node, deg, r, mom, w2):
        a, b, node, deg, r, mom, w2 = _plain(a, b, node, deg, r, mom, w2)
        G, N, H = a.shape[0], a.shape[1], lib.hidden
        _check(lib, (a, (G, N, H)), (b, (G, N, H)), (node, (G, N, 1)), (deg, (G, N, 1)), (w2, (H, 2)),
               (r, (G, N, 2), torch.float64), (mom, (G, 2, 2), torch.float64))
        s = torch.empty(2 * H, dtype=torch.float64)
        threads = torch.get_num_threads()
        lib.edge_norm(G, N, threads, *map(_ptr, (a, b, node, deg, r, mom, w2, s)))
        ctx.lib, ctx.threads = lib, threads
        ctx.save_for_backward(a, b, node, deg, r, mom, w2)
        return s[:H], s[H:]

    @staticmethod
    def backward(ctx, g1, g2):
        _first_order_only()
        a, b, node, deg, r, mom, w2 = ctx.saved_tensors
        G, N, H = a.shape
        zero = torch.zeros(H, dtype=torch.float64)
        gs = torch.cat([g1 if g1 is not None else zero, g2 if g2 is not None else zero]).double().contiguous()
        g_a, g_b, g_r, g_w2, g_mom = map(torch.empty_like, (a, b, r, w2, mom))
        ctx.lib.edge_norm_backward(G, N, ctx.threads, *map(_ptr, (a, b, node, deg, r, mom, w2, gs,
                                                                 g_a, g_b, g_r, g_w2, g_mom)))
        need = ctx.needs_input_grad
        return (None, g_a if need[1] else None, g_b if need[2] else None, None, None,
                g_r if need[5] else None, g_mom if need[6] else None, g_w2 if need[7] else None)
