// LorentzNet's per-edge work as CPU kernels (forward and backward), registered as PyTorch operators.
//
// Built by trigger_kd/models/edge_kernel.py (g++, torch's include and library paths from
// torch.utils.cpp_extension) once per hidden size and scalar type: -DHIDDEN=<H> -DSCALAR=<float|double>
// -DSCALAR_IS_FLOAT=<0|1> -DTKD_OPS=<operator namespace>. See that module's docstring for what each
// operator computes and how LorentzNet calls them.
//
// The same bits on every x86-64 CPU (AVX2 or AVX-512, Intel or AMD), whatever the compiler vectorises:
// - the file is compiled with -ffp-contract=off, so a * b + c in the source is two roundings everywhere;
// - the register-tiled products add with explicit fused multiply-adds (fmadd below), one per k, in the
//   same order for every tiling (256- or 512-bit vectors);
// - sums over lanes use a fixed tree (hsum), and sums over jets of per-chunk partial results run over a
//   fixed number of chunks in chunk order (CHUNKS), so the thread count does not change them either.
// tests/test_lorentznet.py builds the kernel with other -march / -O / vector-width choices and compares the
// bits (and, on AVX-512 CPUs, against a build for AVX2 only).

#include <cmath>
#include <cstring>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

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

template <typename V = vec>
static inline V splat(T s) { return s - V{}; }  // s in every lane (s - 0 is s, -0 included: a broadcast)

// a * b + c with one rounding: the FMA instruction on every CPU that has one (all of this project's
// machines), whatever the vector width; elsewhere two roundings (a CPU without FMA gives other bits).
template <typename V>
static inline V fmadd(V a, V b, V c) {
#if defined(__FMA__) && defined(__AVX2__)
    if constexpr (sizeof(V) == 32 && sizeof(T) == 4) return (V)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
    if constexpr (sizeof(V) == 32 && sizeof(T) == 8) return (V)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#endif
#if defined(__AVX512F__)
    if constexpr (sizeof(V) == 64 && sizeof(T) == 4) return (V)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
    if constexpr (sizeof(V) == 64 && sizeof(T) == 8) return (V)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
#endif
    return a * b + c;
}

// Where the CPU has AVX-512 (32 vector registers, FMAs twice as wide), the products' register tiles use
// 512-bit vectors (R x CW of them) for the columns they fill, and the columns left (H = 72: the last 8)
// are computed in tall tiles of RT rows x 256-bit vectors; elsewhere 6 x 2 tiles of 256-bit vectors.
// Measured for one 72 x 72 x 72 product on an idle Xeon (Ice Lake) core, 2026-12-01: 88-97 GFLOP/s with
// 6 x 2 256-bit tiles, 137-146 with 6 x 4 512-bit tiles and the last 8 columns in 12-row tiles (on a
// machine shared with another job, the same columns in 6 x 1 tiles took about a third of the time).
// Each output's sum over k runs in the same order whatever the tiling, so the results are the same on
// every CPU (explicit FMAs; tested against builds for AVX2 only and with other vector widths).
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
            const V x = splat<V>(A[r * as_row + k * as_k]);
            _Pragma("GCC unroll 16") for (int v = 0; v < CV; ++v) c[r][v] = fmadd(x, b[v], c[r][v]);
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
              // pair-table entry pair[q] = pairs[g, i, j] (<xd, xd>, <x_i, x_j>, their psi, xd = x_i - x_j)
    std::vector<T> z, m, mg, u, gu, gmg, gmp, gz, gate, gx, gxd; std::vector<int> js; std::vector<const T*> pair;
    T* mp = nullptr; T* up = nullptr;  // where this row's m and u are (own buffers or the caller's)
    explicit Row(int N) : z(N * H), m(N * H), mg(N * H), u(N * H), gu(N * H), gmg(N * H), gmp(N * H), gz(N * H),
                          gate(N + VW), gx(N), gxd(4 * N), js(N), pair(N) {}
    const T* xd(int q) const { return pair[q] + 4; }
};

// The real neighbours of node i and their pair-table entries; returns n.
static int row_pairs(Row& r, const T* e_gi, const T* pairs_gi, int N) {
    int n = 0;
    for (int j = 0; j < N; ++j)
        if (e_gi[j] != T(0)) { r.js[n] = j; r.pair[n] = pairs_gi + 8 * j; ++n; }
    return n;
}

// Forward of row (g, i): fills the Row (z, m, gate, mg; u and gx with phi_x); returns n. The n rows of m
// and u are compact: saved_m / saved_u (if given) hold them from an earlier forward and are read instead of
// recomputed; store_m / store_u (if given) receive them.
static int row_forward(Row& r, const Params& p, const T* x_g, const T* e_gi, const T* pairs_gi, const T* a_i,
                       const T* b_g, int i, int N, bool has_x, const T* saved_m, const T* saved_u,
                       const T* saved_gate, T* store_m, T* store_u, T* store_gate) {
    const int n = row_pairs(r, e_gi, pairs_gi, N);
    for (int q = 0; q < n; ++q) {
        const T v0 = r.pair[q][2], v1 = r.pair[q][3];
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

// Sums over jets (weight gradients, BatchNorm sums) are accumulated per chunk of jets, a fixed number of
// chunks whatever the thread count, then added in chunk order: the same bits on 1, 2 or 64 threads.
constexpr int CHUNKS = 64;
static inline int chunk_count(int G) { return G < CHUNKS ? (G > 0 ? G : 1) : CHUNKS; }
static inline int chunk_begin(int c, int C, int G) { return (int)((long)c * G / C); }

// The pair table pairs (G, N, N, 8) = (<xd, xd>, <x_i, x_j>, their psi, xd = x_i - x_j) of every real pair, once per
// block (the invariants are symmetric in i, j) and read by the kernels below, which take their gradients
// back to x themselves.
// Returns the number of edge weights that are neither 0 nor 1 (the kernels treat any non-zero weight as 1,
// so the caller refuses such input) or that mark a pair in one direction only.
static int edge_pairs_raw(int G, int N, int nthreads, const T* x, const T* e, T* pairs) {
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
                    std::memcpy(pairs + 8 * ij, t, sizeof t); std::memcpy(pairs + 8 * ji, u, sizeof u);
                }
            }
        }
    }
    for (long k = 0; k < (long)G * N; ++k) bad += e[k * N + k % N] != T(0);  // the diagonal (g, i, i)
    return (int)(bad > 2147483647L ? 2147483647L : bad);
}

// out[k] = psi(in[k]) (fn 0) or sigmoid(in[k]) (fn 1) as the kernels compute them (for the tests).
static void elementwise_values_raw(int fn, int n, const T* in, T* out) {
    std::vector<T> buf(n + VW, T(0));
    std::memcpy(buf.data(), in, sizeof(T) * n);
    for (int k = 0; k < n; k += VW) storev(&buf[k], fn == 0 ? psi_vec(loadv(&buf[k])) : sigmoid_vec(loadv(&buf[k])));
    std::memcpy(out, buf.data(), sizeof(T) * n);
}

// x (G, N, 4) coordinates, e (G, N, N) 0/1 edge weights, a, b (G, N, H) folded phi_e projections.
// Out: agg (G, N, H) message sums; with phi_x, xsum (G, N, 4) = sum_j clamp(xd_ij * gx_ij, -100, 100).
static void edge_forward_raw(int G, int N, int nthreads, const T* x, const T* e, const T* pairs, const T* a, const T* b,
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
                const int n = row_forward(r, p, x + (long)g * N * 4, e + gi * N, pairs + gi * N * 8, a + gi * H, b + (long)g * N * H,
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
static void edge_backward_raw(int G, int N, int nthreads, const T* x, const T* e, const T* pairs, const T* a, const T* b,
                   const T* w2s, const T* W, const T* WT, const T* bW, const T* wg, const T* bg,
                   const T* Wx, const T* WxT, const T* bx, const T* wo, const T* saved_m, const T* saved_u,
                   const T* saved_gate, const T* g_agg, const T* g_xsum,
                   T* g_x, T* g_a, T* g_b, T* g_w2s, T* g_W, T* g_bW, T* g_wg, T* g_bg,
                   T* g_Wx, T* g_bx, T* g_wo) {
    const Params p = params(w2s, W, WT, bW, wg, bg, Wx, WxT, bx, wo);
    const bool has_x = Wx != nullptr;
    // per-chunk weight gradients, laid out w2s (2H) | W (HH) | bW | wg | bg (1) | Wx (HH) | bx | wo
    const int S = 2 * H + H * H + H + H + 1 + H * H + H + H, C = chunk_count(G);
    std::vector<T> acc((size_t)C * S, T(0));
    std::memset(g_b, 0, sizeof(T) * (size_t)G * N * H);
    std::memset(g_x, 0, sizeof(T) * (size_t)G * N * 4);
    #pragma omp parallel num_threads(nthreads)
    {
        Row r(N);
        #pragma omp for schedule(static)
        for (int c = 0; c < C; ++c) {
        T* s = acc.data() + (size_t)c * S;
        T *s_w2s = s, *s_W = s_w2s + 2 * H, *s_bW = s_W + H * H, *s_wg = s_bW + H, *s_bg = s_wg + H;
        T *s_Wx = s_bg + 1, *s_bx = s_Wx + H * H, *s_wo = s_bx + H;
        for (int g = chunk_begin(c, C, G); g < chunk_begin(c + 1, C, G); ++g) {
            const T* x_g = x + (long)g * N * 4;
            T* gb_g = g_b + (long)g * N * H;
            T* gx_g = g_x + (long)g * N * 4;
            for (int i = 0; i < N; ++i) {
                const long gi = (long)g * N + i;
                const long row = gi * N * H;
                const int n = row_forward(r, p, x_g, e + gi * N, pairs + gi * N * 8, a + gi * H, b + (long)g * N * H, i, N, has_x,
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
                    z_backward(r.z.data() + q * H, r.gz.data() + q * H, r.pair[q][2], r.pair[q][3], p.w2s, ga,
                               gb_g + j * H, s_w2s, gv0, gv1);
                    invariants_backward(x_g + 4 * i, x_g + 4 * j, r.xd(q), r.pair[q][0], r.pair[q][1],
                                        gv0, gv1, &r.gxd[4 * q], gx_g + 4 * i, gx_g + 4 * j);
                }
            }
        }
        }
    }
    for (int k = 0; k < S; ++k) for (int c = 1; c < C; ++c) acc[k] += acc[(size_t)c * S + k];
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
static void edge_norm_raw(int G, int N, int nthreads, const T* a, const T* b, const T* node, const T* deg, const double* r,
               const double* mom, const T* w2, double* s) {
    const int C = chunk_count(G);
    std::vector<double> acc((size_t)C * 2 * H, 0.0);
    #pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int c = 0; c < C; ++c) {
        double* s1 = acc.data() + (size_t)c * 2 * H; double* s2 = s1 + H;
        for (int g = chunk_begin(c, C, G); g < chunk_begin(c + 1, C, G); ++g) {
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
        for (int c = 0; c < C; ++c) t += acc[(size_t)c * 2 * H + h];
        s[h] = t;
    }
    for (int h = 0; h < H; ++h) {
        const double w0 = w2[2 * h], w1 = w2[2 * h + 1];
        s[H + h] += w0 * (M[0] * w0 + M[1] * w1) + w1 * (M[2] * w0 + M[3] * w1);
    }
}

// Gradients of edge_norm from gs = dL/ds1 (H) | dL/ds2 (H): g_a, g_b (G, N, H), g_r (G, N, 2), g_w2 (H, 2),
// g_mom (G, 4), all overwritten.
static void edge_norm_backward_raw(int G, int N, int nthreads, const T* a, const T* b, const T* node, const T* deg,
                        const double* r, const double* mom, const T* w2, const double* gs, T* g_a, T* g_b,
                        double* g_r, T* g_w2, double* g_mom) {
    const double* g1 = gs; const double* g2 = gs + H;
    const int C = chunk_count(G);
    std::vector<double> acc((size_t)C * 2 * H, 0.0);
    #pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int c = 0; c < C; ++c) {
        double* dw = acc.data() + (size_t)c * 2 * H;
        for (int g = chunk_begin(c, C, G); g < chunk_begin(c + 1, C, G); ++g) {
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
        for (int c = 0; c < C; ++c) { d0 += acc[(size_t)c * 2 * H + 2 * h]; d1 += acc[(size_t)c * 2 * H + 2 * h + 1]; }
        d0 += g2[h] * ((M[0] + M[0]) * w0 + (M[1] + M[2]) * w1);
        d1 += g2[h] * ((M[2] + M[1]) * w0 + (M[3] + M[3]) * w1);
        g_w2[2 * h] = (T)d0; g_w2[2 * h + 1] = (T)d1;
        gm[0] += g2[h] * w0 * w0; gm[1] += g2[h] * w0 * w1; gm[2] += g2[h] * w1 * w0; gm[3] += g2[h] * w1 * w1;
    }
    for (int g = 0; g < G; ++g) for (int k = 0; k < 4; ++k) g_mom[4 * (long)g + k] = gm[k];
}

// BatchNorm statistics of the invariants over the real pairs, in double: r (G, N, 2) = sum_j v_ij,
// mom (G, 4) = sum_ij v_ij v_ij^T (row-major 2 x 2), v = (psi(n2), psi(d)).
static void edge_stats_raw(int G, int N, int nthreads, const T* e, const T* pairs, double* r_out, double* mom) {
    #pragma omp parallel num_threads(nthreads)
    {
        Row r(N);
        #pragma omp for schedule(static)
        for (int g = 0; g < G; ++g) {
            double* mg = mom + 4 * (long)g;
            for (int k = 0; k < 4; ++k) mg[k] = 0;
            for (int i = 0; i < N; ++i) {
                const long gi = (long)g * N + i;
                const int n = row_pairs(r, e + gi * N, pairs + gi * N * 8, N);
                double s0 = 0, s1 = 0;
                for (int q = 0; q < n; ++q) {
                    const double v0 = r.pair[q][2], v1 = r.pair[q][3];
                    s0 += v0; s1 += v1;
                    mg[0] += v0 * v0; mg[1] += v0 * v1; mg[2] += v1 * v0; mg[3] += v1 * v1;
                }
                r_out[2 * gi] = s0; r_out[2 * gi + 1] = s1;
            }
        }
    }
}

// g_x (G, N, 4), overwritten, from dL/dr (G, N, 2) and dL/dmom (G, 4) of edge_stats.
static void edge_stats_backward_raw(int G, int N, int nthreads, const T* x, const T* e, const T* pairs, const double* g_r,
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
                const int n = row_pairs(r, e + gi * N, pairs + gi * N * 8, N);
                for (int q = 0; q < n; ++q) {
                    const double v0 = r.pair[q][2], v1 = r.pair[q][3];
                    const T gv0 = (T)(g_r[2 * gi] + 2 * gm[0] * v0 + (gm[1] + gm[2]) * v1);
                    const T gv1 = (T)(g_r[2 * gi + 1] + (gm[1] + gm[2]) * v0 + 2 * gm[3] * v1);
                    invariants_backward(x_g + 4 * i, x_g + 4 * r.js[q], r.xd(q), r.pair[q][0],
                                        r.pair[q][1], gv0, gv1, zero, g_x + (long)g * N * 4 + 4 * i,
                                        g_x + (long)g * N * 4 + 4 * r.js[q]);
                }
            }
        }
    }
}


// ----------------------------------------------------------------------------- PyTorch operators
// Typed entry points: every tensor is checked (CPU, scalar type, shape) before the kernels read its memory,
// and a wrong one raises ValueError in Python naming the argument. Outputs are allocated here.

namespace {

constexpr at::ScalarType KT = sizeof(T) == 4 ? at::kFloat : at::kDouble;

// dtype names as Python prints them
const char* dtype_name(at::ScalarType t) {
    return t == at::kFloat ? "torch.float32" : t == at::kDouble ? "torch.float64" : c10::toString(t);
}

#define TKD_WHERE "LorentzNet edge kernel (hidden ", (int)H, ", ", dtype_name(KT), "): "

const T* in(const at::Tensor& t, const char* name, at::IntArrayRef shape) {
    TORCH_CHECK_VALUE(t.defined(), TKD_WHERE, name, " is missing");
    TORCH_CHECK_VALUE(t.device().is_cpu(), TKD_WHERE, name, " is on ", t.device(), "; the kernel runs on the CPU only");
    TORCH_CHECK_VALUE(t.scalar_type() == KT && t.sizes() == shape, TKD_WHERE, "got a ", dtype_name(t.scalar_type()),
                      " tensor of shape ", t.sizes(), " for ", name, " where ", dtype_name(KT), " ", shape, " is needed");
    TORCH_CHECK_VALUE(t.is_contiguous(), TKD_WHERE, name, " must be contiguous");
    return t.data_ptr<T>();
}

const double* in64(const at::Tensor& t, const char* name, at::IntArrayRef shape) {
    TORCH_CHECK_VALUE(t.defined() && t.device().is_cpu() && t.scalar_type() == at::kDouble && t.sizes() == shape &&
                      t.is_contiguous(), TKD_WHERE, name, " must be a contiguous float64 CPU tensor of shape ", shape);
    return t.data_ptr<double>();
}

// The edge block's weights, in the order LorentzNet passes them: w2s (2, H), W (H, H), bW (H), wg (H), bg (1),
// then phi_x's Wx (H, H), bx (H), wo (H) except in the last block. WT, WxT are the transposes the products read.
struct Weights {
    at::Tensor w2s, W, WT, bW, wg, bg, Wx, WxT, bx, wo;
    bool has_x = false;
    Params params() const {
        auto ptr = [](const at::Tensor& t) -> const T* { return t.defined() ? t.data_ptr<T>() : nullptr; };
        return {ptr(w2s), ptr(W), ptr(WT), ptr(bW), ptr(wg), ptr(bg), ptr(Wx), ptr(WxT), ptr(bx), ptr(wo)};
    }
};

Weights weights(const std::vector<at::Tensor>& w) {
    TORCH_CHECK_VALUE(w.size() == 5 || w.size() == 8, TKD_WHERE, "expected 5 weights (w2s, W, bW, wg, bg) or 8 (and Wx, "
                      "bx, wo), got ", w.size());
    Weights out;
    out.w2s = w[0].contiguous(); out.W = w[1].contiguous(); out.bW = w[2].contiguous();
    out.wg = w[3].contiguous(); out.bg = w[4].contiguous();
    in(out.w2s, "w2s", {2, H}); in(out.W, "W", {H, H}); in(out.bW, "bW", {H}); in(out.wg, "wg", {H}); in(out.bg, "bg", {1});
    out.WT = out.W.t().contiguous();
    if (w.size() == 8) {
        out.has_x = true;
        out.Wx = w[5].contiguous(); out.bx = w[6].contiguous(); out.wo = w[7].contiguous();
        in(out.Wx, "Wx", {H, H}); in(out.bx, "bx", {H}); in(out.wo, "wo", {H});
        out.WxT = out.Wx.t().contiguous();
    }
    return out;
}

int threads(int64_t n) { return n > 0 ? (int)n : 1; }

int64_t hidden_size() { return H; }

// psi (fn 0) or sigmoid (fn 1) of every value as the kernels compute them (for the tests).
at::Tensor elementwise_values(int64_t fn, const at::Tensor& values) {
    TORCH_CHECK_VALUE(fn == 0 || fn == 1, TKD_WHERE, "fn must be 0 (psi) or 1 (sigmoid)");
    const at::Tensor v = values.contiguous();
    in(v, "values", v.sizes());
    at::Tensor out = at::empty_like(v);
    elementwise_values_raw((int)fn, (int)v.numel(), v.data_ptr<T>(), out.data_ptr<T>());
    return out;
}

// (G, N, N, 8) table of every real pair's invariants (see edge_pairs_raw); refuses edge weights other than
// a symmetric 0/1 pattern with an empty diagonal (the kernels count any non-zero weight as an edge).
at::Tensor pair_table(int64_t nthreads, const at::Tensor& x_, const at::Tensor& edge_) {
    const at::Tensor x = x_.contiguous(), edge = edge_.contiguous();
    TORCH_CHECK_VALUE(x.dim() == 3, TKD_WHERE, "x must be (G, N, 4), got ", x.sizes());
    const int G = (int)x.size(0), N = (int)x.size(1);
    in(x, "x", {G, N, 4}); in(edge, "edge", {G, N, N});
    at::Tensor pairs = at::empty({G, N, N, 8}, x.options());  // the kernels read the entries of real pairs only
    const int bad = edge_pairs_raw(G, N, threads(nthreads), x.data_ptr<T>(), edge.data_ptr<T>(), pairs.data_ptr<T>());
    TORCH_CHECK_VALUE(bad == 0, "edge weights must be 0 or 1, symmetric, and 0 on the diagonal; ", bad, " are not");
    return pairs;
}

// -> [agg (G, N, H), xsum (G, N, 4), m, u, gate]: with keep, phi_e's and phi_x's hidden activations
// (G, N, N, H) and the gates (G, N, N) for the backward (u only with phi_x); empty tensors otherwise.
std::vector<at::Tensor> edge_forward(int64_t nthreads, const at::Tensor& x, const at::Tensor& edge,
                                     const at::Tensor& pairs, const at::Tensor& a_, const at::Tensor& b_,
                                     const std::vector<at::Tensor>& w, bool keep) {
    const at::Tensor a = a_.contiguous(), b = b_.contiguous();
    TORCH_CHECK_VALUE(x.dim() == 3, TKD_WHERE, "x must be (G, N, 4), got ", x.sizes());
    const int G = (int)x.size(0), N = (int)x.size(1);
    in(x, "x", {G, N, 4}); in(edge, "edge", {G, N, N}); in(pairs, "pairs", {G, N, N, 8});
    in(a, "a", {G, N, H}); in(b, "b", {G, N, H});
    const Weights ws = weights(w);
    const auto opt = a.options();
    at::Tensor agg = at::empty({G, N, H}, opt), xsum = at::zeros({G, N, 4}, opt);
    at::Tensor m = keep ? at::empty({G, N, N, H}, opt) : at::empty({0}, opt);
    at::Tensor u = keep && ws.has_x ? at::empty({G, N, N, H}, opt) : at::empty({0}, opt);
    at::Tensor gate = keep ? at::empty({G, N, N}, opt) : at::empty({0}, opt);
    const Params p = ws.params();
    edge_forward_raw(G, N, threads(nthreads), x.data_ptr<T>(), edge.data_ptr<T>(), pairs.data_ptr<T>(), a.data_ptr<T>(),
                     b.data_ptr<T>(), p.w2s, p.W, p.WT, p.bW, p.wg, p.bg, p.Wx, p.WxT, p.bx, p.wo, agg.data_ptr<T>(),
                     xsum.data_ptr<T>(), keep ? m.data_ptr<T>() : nullptr,
                     keep && ws.has_x ? u.data_ptr<T>() : nullptr, keep ? gate.data_ptr<T>() : nullptr);
    return {agg, xsum, m, u, gate};
}

// Gradients of sum(agg * g_agg) + sum(xsum * g_xsum) -> [g_x, g_a, g_b, g_w2s, g_W, g_bW, g_wg, g_bg] and, with
// phi_x, [g_Wx, g_bx, g_wo] (each the shape of its input); m, u, gate as edge_forward kept them.
std::vector<at::Tensor> edge_backward(int64_t nthreads, const at::Tensor& x, const at::Tensor& edge,
                                      const at::Tensor& pairs, const at::Tensor& a_, const at::Tensor& b_,
                                      const std::vector<at::Tensor>& w, const at::Tensor& m, const at::Tensor& u,
                                      const at::Tensor& gate, const at::Tensor& g_agg_, const at::Tensor& g_xsum_) {
    const at::Tensor a = a_.contiguous(), b = b_.contiguous(), g_agg = g_agg_.contiguous(), g_xsum = g_xsum_.contiguous();
    TORCH_CHECK_VALUE(x.dim() == 3, TKD_WHERE, "x must be (G, N, 4), got ", x.sizes());
    const int G = (int)x.size(0), N = (int)x.size(1);
    in(x, "x", {G, N, 4}); in(edge, "edge", {G, N, N}); in(pairs, "pairs", {G, N, N, 8});
    in(a, "a", {G, N, H}); in(b, "b", {G, N, H}); in(g_agg, "g_agg", {G, N, H}); in(g_xsum, "g_xsum", {G, N, 4});
    const Weights ws = weights(w);
    in(m, "m", {G, N, N, H}); in(gate, "gate", {G, N, N});
    if (ws.has_x) in(u, "u", {G, N, N, H});
    const auto opt = a.options();
    at::Tensor g_x = at::empty({G, N, 4}, opt), g_a = at::empty({G, N, H}, opt), g_b = at::empty({G, N, H}, opt);
    at::Tensor g_w2s = at::empty({2, H}, opt), g_W = at::empty({H, H}, opt), g_bW = at::empty({H}, opt);
    at::Tensor g_wg = at::empty({H}, opt), g_bg = at::empty({1}, opt);
    at::Tensor g_Wx, g_bx, g_wo;
    if (ws.has_x) { g_Wx = at::empty({H, H}, opt); g_bx = at::empty({H}, opt); g_wo = at::empty({H}, opt); }
    const Params p = ws.params();
    edge_backward_raw(G, N, threads(nthreads), x.data_ptr<T>(), edge.data_ptr<T>(), pairs.data_ptr<T>(),
                      a.data_ptr<T>(), b.data_ptr<T>(), p.w2s, p.W, p.WT, p.bW, p.wg, p.bg, p.Wx, p.WxT, p.bx, p.wo,
                      m.data_ptr<T>(), ws.has_x ? u.data_ptr<T>() : nullptr, gate.data_ptr<T>(), g_agg.data_ptr<T>(),
                      g_xsum.data_ptr<T>(), g_x.data_ptr<T>(), g_a.data_ptr<T>(), g_b.data_ptr<T>(),
                      g_w2s.data_ptr<T>(), g_W.data_ptr<T>(), g_bW.data_ptr<T>(), g_wg.data_ptr<T>(), g_bg.data_ptr<T>(),
                      ws.has_x ? g_Wx.data_ptr<T>() : nullptr, ws.has_x ? g_bx.data_ptr<T>() : nullptr,
                      ws.has_x ? g_wo.data_ptr<T>() : nullptr);
    std::vector<at::Tensor> out = {g_x, g_a, g_b, g_w2s, g_W, g_bW, g_wg, g_bg};
    if (ws.has_x) { out.push_back(g_Wx); out.push_back(g_bx); out.push_back(g_wo); }
    return out;
}

// -> [r (G, N, 2), mom (G, 2, 2)], float64: the invariants' BatchNorm sums over the real pairs.
std::vector<at::Tensor> edge_stats(int64_t nthreads, const at::Tensor& edge, const at::Tensor& pairs) {
    TORCH_CHECK_VALUE(edge.dim() == 3, TKD_WHERE, "edge must be (G, N, N), got ", edge.sizes());
    const int G = (int)edge.size(0), N = (int)edge.size(1);
    in(edge, "edge", {G, N, N}); in(pairs, "pairs", {G, N, N, 8});
    const auto opt = edge.options().dtype(at::kDouble);
    at::Tensor r = at::empty({G, N, 2}, opt), mom = at::empty({G, 2, 2}, opt);
    edge_stats_raw(G, N, threads(nthreads), edge.data_ptr<T>(), pairs.data_ptr<T>(), r.data_ptr<double>(),
                   mom.data_ptr<double>());
    return {r, mom};
}

// -> g_x (G, N, 4) from dL/dr, dL/dmom of edge_stats.
at::Tensor edge_stats_backward(int64_t nthreads, const at::Tensor& x, const at::Tensor& edge, const at::Tensor& pairs,
                               const at::Tensor& g_r_, const at::Tensor& g_mom_) {
    const at::Tensor g_r = g_r_.contiguous(), g_mom = g_mom_.contiguous();
    TORCH_CHECK_VALUE(x.dim() == 3, TKD_WHERE, "x must be (G, N, 4), got ", x.sizes());
    const int G = (int)x.size(0), N = (int)x.size(1);
    in(x, "x", {G, N, 4}); in(edge, "edge", {G, N, N}); in(pairs, "pairs", {G, N, N, 8});
    in64(g_r, "g_r", {G, N, 2}); in64(g_mom, "g_mom", {G, 2, 2});
    at::Tensor g_x = at::empty({G, N, 4}, x.options());
    edge_stats_backward_raw(G, N, threads(nthreads), x.data_ptr<T>(), edge.data_ptr<T>(), pairs.data_ptr<T>(),
                            g_r.data_ptr<double>(), g_mom.data_ptr<double>(), g_x.data_ptr<T>());
    return g_x;
}

// -> [s1 (H), s2 (H)], float64: phi_e's BatchNorm sums of one group (node, deg (G, N, 1); w2 (H, 2)).
std::vector<at::Tensor> edge_norm(int64_t nthreads, const at::Tensor& a_, const at::Tensor& b_, const at::Tensor& node,
                                  const at::Tensor& deg, const at::Tensor& r, const at::Tensor& mom,
                                  const at::Tensor& w2_) {
    const at::Tensor a = a_.contiguous(), b = b_.contiguous(), w2 = w2_.contiguous();
    TORCH_CHECK_VALUE(a.dim() == 3, TKD_WHERE, "a must be (G, N, H), got ", a.sizes());
    const int G = (int)a.size(0), N = (int)a.size(1);
    in(a, "a", {G, N, H}); in(b, "b", {G, N, H}); in(node, "node", {G, N, 1}); in(deg, "deg", {G, N, 1});
    in(w2, "w2", {H, 2}); in64(r, "r", {G, N, 2}); in64(mom, "mom", {G, 2, 2});
    at::Tensor s = at::empty({2 * H}, a.options().dtype(at::kDouble));
    edge_norm_raw(G, N, threads(nthreads), a.data_ptr<T>(), b.data_ptr<T>(), node.data_ptr<T>(), deg.data_ptr<T>(),
                  r.data_ptr<double>(), mom.data_ptr<double>(), w2.data_ptr<T>(), s.data_ptr<double>());
    return {s.narrow(0, 0, H), s.narrow(0, H, H)};
}

// -> [g_a, g_b, g_r, g_w2, g_mom] from gs = dL/ds1 | dL/ds2 (2H, float64).
std::vector<at::Tensor> edge_norm_backward(int64_t nthreads, const at::Tensor& a_, const at::Tensor& b_,
                                           const at::Tensor& node, const at::Tensor& deg, const at::Tensor& r,
                                           const at::Tensor& mom, const at::Tensor& w2_, const at::Tensor& gs_) {
    const at::Tensor a = a_.contiguous(), b = b_.contiguous(), w2 = w2_.contiguous(), gs = gs_.contiguous();
    TORCH_CHECK_VALUE(a.dim() == 3, TKD_WHERE, "a must be (G, N, H), got ", a.sizes());
    const int G = (int)a.size(0), N = (int)a.size(1);
    in(a, "a", {G, N, H}); in(b, "b", {G, N, H}); in(node, "node", {G, N, 1}); in(deg, "deg", {G, N, 1});
    in(w2, "w2", {H, 2}); in64(r, "r", {G, N, 2}); in64(mom, "mom", {G, 2, 2}); in64(gs, "gs", {2 * H});
    at::Tensor g_a = at::empty_like(a), g_b = at::empty_like(b), g_w2 = at::empty_like(w2);
    at::Tensor g_r = at::empty_like(r), g_mom = at::empty_like(mom);
    edge_norm_backward_raw(G, N, threads(nthreads), a.data_ptr<T>(), b.data_ptr<T>(), node.data_ptr<T>(),
                           deg.data_ptr<T>(), r.data_ptr<double>(), mom.data_ptr<double>(), w2.data_ptr<T>(),
                           gs.data_ptr<double>(), g_a.data_ptr<T>(), g_b.data_ptr<T>(), g_r.data_ptr<double>(),
                           g_w2.data_ptr<T>(), g_mom.data_ptr<double>());
    return {g_a, g_b, g_r, g_w2, g_mom};
}

}  // namespace

// One operator namespace per build (hidden size, scalar type, flags), so several builds load side by side.
#define TKD_LIBRARY(ns, m) TORCH_LIBRARY(ns, m)
TKD_LIBRARY(TKD_OPS, m) {
    m.def("hidden_size", &hidden_size);
    m.def("elementwise_values", &elementwise_values);
    m.def("pair_table", &pair_table);
    m.def("edge_forward", &edge_forward);
    m.def("edge_backward", &edge_backward);
    m.def("edge_stats", &edge_stats);
    m.def("edge_stats_backward", &edge_stats_backward);
    m.def("edge_norm", &edge_norm);
    m.def("edge_norm_backward", &edge_norm_backward);
}
