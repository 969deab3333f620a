// The adder compute kernels (see adder_kernels.h): GCC vector extensions,
// one vector = VL floats (16 with AVX-512, 8 otherwise), a small tile of
// accumulators kept in registers, no im2col buffer.
//   forward:    tile = P output positions of one row x NV vectors of c_out;
//               inner loop over the K = kh*kw*c_in taps, w packed as (K, c_out);
//               sum |x - w| = sum x + sum w - 2 sum min(x, w).
//   input grad: gather form, tile = P input positions of one row (same
//               column residue mod stride, so they share the valid kernel
//               offsets) x one vector of c_in; inner loop over c_out, w packed
//               as (kh, kw, c_out, c_in). Each input position is written by
//               exactly one work item, so threads never race.
// This file includes no TensorFlow or Eigen header: it is compiled with the
// best -march the CPU accepts, independently of what TensorFlow's headers
// tolerate.

#include "adder_kernels.h"

#include <algorithm>
#if defined(__AVX__)
#include <immintrin.h>
#endif
#include <cstdint>
#include <cstring>

namespace adder_tf {
namespace {

#if defined(__AVX512F__)
constexpr int VL = 16;
#else
constexpr int VL = 8;
#endif

typedef float vf __attribute__((vector_size(VL * 4)));
typedef int32_t vi __attribute__((vector_size(VL * 4)));

static inline vf loadu(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
static inline void storeu(float* p, vf v) { std::memcpy(p, &v, sizeof(v)); }
// One broadcast instruction (vf{} + s would add 0.0 first; a lane loop
// becomes masked inserts).
static inline vf bcast(float s) {
#if defined(__AVX512F__)
  return (vf)_mm512_set1_ps(s);
#elif defined(__AVX__)
  return (vf)_mm256_set1_ps(s);
#else
  return s - vf{};
#endif
}
static inline vf vabs(vf v) { return (vf)((vi)v & 0x7fffffff); }
// vminps/vmaxps (the generic a < b ? a : b becomes compare + blend).
#if defined(__AVX512F__)
static inline vf vmin(vf a, vf b) { return (vf)_mm512_min_ps((__m512)a, (__m512)b); }
static inline vf vmax(vf a, vf b) { return (vf)_mm512_max_ps((__m512)a, (__m512)b); }
#elif defined(__AVX__)
static inline vf vmin(vf a, vf b) { return (vf)_mm256_min_ps((__m256)a, (__m256)b); }
static inline vf vmax(vf a, vf b) { return (vf)_mm256_max_ps((__m256)a, (__m256)b); }
#else
static inline vf vmin(vf a, vf b) { return a < b ? a : b; }
static inline vf vmax(vf a, vf b) { return a > b ? a : b; }
#endif

// a + b. On AMD Zen 4/5 (separate add and FMA pipes) it is issued as
// fma(a, 1, b), which moves the subtraction off the add pipes that the
// accumulation already keeps busy; same rounding as a plain add. On Intel
// cores add and FMA share ports 0/5, and the destructive FMA form costs an
// extra register copy per element (measured: one vmovaps per element in the
// inner loops), so there it is a plain add.
#if defined(__znver4__) || defined(__znver5__) || defined(__tune_znver4__) || \
    defined(__tune_znver5__)
#define ADDER_TF_ADD_ON_FMA 1
#endif
static inline vf add_on_fma(vf a, vf b) {
#if defined(ADDER_TF_ADD_ON_FMA) && defined(__AVX512F__)
  return (vf)_mm512_fmadd_ps((__m512)a, _mm512_set1_ps(1.0f), (__m512)b);
#elif defined(ADDER_TF_ADD_ON_FMA) && defined(__FMA__)
  return (vf)_mm256_fmadd_ps((__m256)a, _mm256_set1_ps(1.0f), (__m256)b);
#else
  return a + b;
#endif
}

// clip(d, -1, 1). With AVX512DQ one vrangeps: the operand of smaller
// magnitude of (d, 1) with the sign of d, i.e. sign(d) * min(|d|, 1), which
// is exactly min(max(d, -1), 1), signed zeros and infinities included (imm 2:
// minimum magnitude, sign of the first operand; checked lane by lane); one uop
// instead of two in the input gradient's inner loop.
static inline vf clip1(vf d, vf one, vf mone) {
#if defined(__AVX512DQ__) && !defined(ADDER_TF_ADD_ON_FMA)
  (void)mone;
  return (vf)_mm512_range_ps((__m512)d, (__m512)one, 0x02);
#else
  return vmin(vmax(d, mone), one);
#endif
}

// Register tiles. With 32 vector registers (AVX-512) the tiles can be wider.
#if defined(__AVX512F__)
constexpr int FWD_P_SMALL = 8;  // positions per tile when NV <= 2
constexpr int FWD_P_LARGE = 4;  // positions per tile when NV > 2
constexpr int BWD_P = 8;
#else
constexpr int FWD_P_SMALL = 4;
constexpr int FWD_P_LARGE = 2;
constexpr int BWD_P = 4;
#endif


// ---------------------------------------------------------------- forward

// One output row (b, i), output-channel vectors [v0, v0 + NV), all columns.
// wp: (K + 1, Op): w, then row K holding sum_k w[k, o]; Op = c_out rounded
// up to VL, zero filled.
//
// |x - w| = x + w - 2 min(x, w), so over a window
//   y = -sum |x - w| = 2 sum min(x, w) - sum x - sum w:
// the inner loop is min + add (two vector uops per element) instead of
// subtract + abs + add (three); sum x is one vector add per tap and channel
// vector of each position, sum w is packed once. Padded taps read zeros and
// contribute min(0, w), like the reference's |0 - w|. The float32 rounding
// differs from summing |x - w| directly only when x and w share an offset
// much larger than their difference (error ~ eps * K * max(|x|, |w|)).
template <int NV, int P>
static void ForwardRow(const Geometry& g, const float* x, const float* wp, int64_t Op,
                       const float* zeros, float* y, int64_t b, int64_t i, int64_t v0) {
  const int64_t C = g.C;
  const int64_t K = g.kh * g.kw * C;
  const int64_t Cv = C / VL * VL;
  for (int64_t j0 = 0; j0 < g.OW; j0 += P) {
    vf acc[P][NV], xs[P];
    float xt[P];
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      xs[p] = vf{};
      xt[p] = 0.0f;
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[p][v] = vf{};
    }
    for (int64_t dh = 0; dh < g.kh; ++dh) {
      const int64_t ih = i * g.s + dh - g.pt;
      const bool row_ok = ih >= 0 && ih < g.H;
      const float* xrow = x + ((b * g.H + (row_ok ? ih : 0)) * g.W) * C;
      for (int64_t dw = 0; dw < g.kw; ++dw) {
        const float* xp[P];
#pragma GCC unroll 16
        for (int p = 0; p < P; ++p) {
          const int64_t j = j0 + p;
          const int64_t iw = j * g.s + dw - g.pl;
          xp[p] = (row_ok && j < g.OW && iw >= 0 && iw < g.W) ? xrow + iw * C : zeros;
        }
        const float* wk = wp + (dh * g.kw + dw) * C * Op + v0 * VL;
        for (int64_t c = 0; c < C; ++c) {
          vf wv[NV];
#pragma GCC unroll 8
          for (int v = 0; v < NV; ++v) wv[v] = *reinterpret_cast<const vf*>(wk + c * Op + v * VL);
#pragma GCC unroll 16
          for (int p = 0; p < P; ++p) {
            const vf xb = bcast(xp[p][c]);
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v) acc[p][v] += vmin(xb, wv[v]);
          }
        }
        // sum x over this tap's channels
#pragma GCC unroll 16
        for (int p = 0; p < P; ++p) {
          for (int64_t c = 0; c < Cv; c += VL) xs[p] += loadu(xp[p] + c);
          for (int64_t c = Cv; c < C; ++c) xt[p] += xp[p][c];
        }
      }
    }
    for (int p = 0; p < P; ++p) {
      const int64_t j = j0 + p;
      if (j >= g.OW) break;
      float sx = xt[p];
      for (int l = 0; l < VL; ++l) sx += xs[p][l];
      const vf sxv = bcast(sx);
      float* yp = y + ((b * g.OH + i) * g.OW + j) * g.O;
      for (int v = 0; v < NV; ++v) {
        const int64_t o = (v0 + v) * VL;
        const vf sw = *reinterpret_cast<const vf*>(wp + K * Op + o);
        const vf r = (acc[p][v] + acc[p][v]) - (sxv + sw);
        if (o + VL <= g.O) {
          storeu(yp + o, r);
        } else if (o < g.O) {
          float tmp[VL];
          storeu(tmp, r);
          std::memcpy(yp + o, tmp, (g.O - o) * sizeof(float));
        }
      }
    }
  }
}

template <int NV, int P>
static void ForwardRowAllBlocks(const Geometry& g, const float* x, const float* wp, int64_t Op,
                                const float* zeros, float* y, int64_t b, int64_t i) {
  const int64_t nvec = Op / VL;
  int64_t v0 = 0;
  for (; v0 + NV <= nvec; v0 += NV) ForwardRow<NV, P>(g, x, wp, Op, zeros, y, b, i, v0);
  // Remaining vectors (fewer than NV).
  for (; v0 < nvec; ++v0) ForwardRow<1, FWD_P_SMALL>(g, x, wp, Op, zeros, y, b, i, v0);
}

// ------------------------------------------------------------- input grad

// Input row (b, h), input columns r, r + s, r + 2s, ... (one residue class
// modulo the stride), channel vector cv. xq/dxq: (B, H, W, Cp).
// wt: (kh, kw, O, Cp). dy: (B, OH, OW, O).
template <int P>
static void InputGradRow(const Geometry& g, const float* xq, int64_t Cp, const float* wt,
                         const float* dy, const float* zeros, float* dxq,
                         int64_t b, int64_t h, int64_t r, int64_t cv) {
  const int64_t O = g.O, s = g.s;
  const int64_t ncols = r < g.W ? (g.W - r + s - 1) / s : 0;
  for (int64_t t0 = 0; t0 < ncols; t0 += P) {
    vf xr[P], acc[P];
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      const int64_t iw = r + (t0 + p) * s;
      xr[p] = (t0 + p < ncols)  // -x
                  ? -*reinterpret_cast<const vf*>(xq + ((b * g.H + h) * g.W + iw) * Cp + cv * VL)
                  : vf{};
      acc[p] = vf{};
    }
    for (int64_t dh = 0; dh < g.kh; ++dh) {
      const int64_t ti = h + g.pt - dh;
      if (ti < 0 || ti % s) continue;
      const int64_t i = ti / s;
      if (i >= g.OH) continue;
      const float* dyrow = dy + (b * g.OH + i) * g.OW * O;
      for (int64_t dw = 0; dw < g.kw; ++dw) {
        const int64_t tj = r + g.pl - dw;  // iw + pl - dw = tj + s * (t0 + p)
        if (((tj % s) + s) % s) continue;
        const int64_t jbase = (tj >= 0 ? tj / s : -((-tj) / s)) + t0;
        const float* dp[P];
#pragma GCC unroll 16
        for (int p = 0; p < P; ++p) {
          const int64_t j = jbase + p;
          dp[p] = (t0 + p < ncols && j >= 0 && j < g.OW) ? dyrow + j * O : zeros;
        }
        const float* wk = wt + (dh * g.kw + dw) * O * Cp + cv * VL;
        const vf one = bcast(1.0f), mone = bcast(-1.0f);
        for (int64_t o = 0; o < O; ++o) {
          const vf wv = *reinterpret_cast<const vf*>(wk + o * Cp);
#pragma GCC unroll 16
          for (int p = 0; p < P; ++p) {
            const vf d = clip1(add_on_fma(wv, xr[p]), one, mone);
            acc[p] += d * bcast(dp[p][o]);
          }
        }
      }
    }
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      if (t0 + p >= ncols) break;
      const int64_t iw = r + (t0 + p) * s;
      *reinterpret_cast<vf*>(dxq + ((b * g.H + h) * g.W + iw) * Cp + cv * VL) = acc[p];
    }
  }
}


}  // namespace

int VectorWidth() { return VL; }

const char* IsaName() {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__)
  return "avx2";
#elif defined(__AVX__)
  return "avx";
#elif defined(__SSE4_2__)
  return "sse4.2";
#elif defined(__SSE2__)
  return "sse2";
#elif defined(__ARM_NEON)
  return "neon";
#else
  return "generic";
#endif
}

void PackForwardWeights(const Geometry& g, const float* w, int64_t Op, float* wp) {
  const int64_t K = g.kh * g.kw * g.C;
  float* sw = wp + K * Op;
  for (int64_t o = 0; o < g.O; ++o) sw[o] = 0.0f;
  for (int64_t k = 0; k < K; ++k)
    for (int64_t o = 0; o < g.O; ++o) {
      wp[k * Op + o] = w[k * g.O + o];
      sw[o] += w[k * g.O + o];
    }
}

void ForwardRows(const Geometry& g, const float* x, const float* wp, int64_t Op,
                 const float* zeros, float* y, int64_t begin, int64_t end) {
  const int64_t nvec = Op / VL;
  for (int64_t r = begin; r < end; ++r) {
    const int64_t b = r / g.OH, i = r % g.OH;
    if (nvec >= 4)
      ForwardRowAllBlocks<4, FWD_P_LARGE>(g, x, wp, Op, zeros, y, b, i);
    else if (nvec == 3)
      ForwardRowAllBlocks<3, FWD_P_LARGE>(g, x, wp, Op, zeros, y, b, i);
    else if (nvec == 2)
      ForwardRowAllBlocks<2, FWD_P_SMALL>(g, x, wp, Op, zeros, y, b, i);
    else
      ForwardRowAllBlocks<1, FWD_P_SMALL>(g, x, wp, Op, zeros, y, b, i);
  }
}

void PackInputGradWeights(const Geometry& g, const float* w, int64_t Cp, float* wt) {
  for (int64_t kk = 0; kk < g.kh * g.kw; ++kk)
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t o = 0; o < g.O; ++o)
        wt[(kk * g.O + o) * Cp + c] = w[(kk * g.C + c) * g.O + o];
}

void InputGradRows(const Geometry& g, const float* xq, int64_t Cp, const float* wt,
                   const float* dy, const float* zeros, float* dxq, int64_t begin,
                   int64_t end) {
  const int64_t ncv = Cp / VL;
  for (int64_t u = begin; u < end; ++u) {
    const int64_t b = u / g.H, h = u % g.H;
    for (int64_t cv = 0; cv < ncv; ++cv)
      for (int64_t r = 0; r < g.s; ++r)
        InputGradRow<BWD_P>(g, xq, Cp, wt, dy, zeros, dxq, b, h, r, cv);
  }
}

// ------------------------------------------------- PKKD heads, fused passes

namespace {

// exp(x) for x <= 88.7 (callers clip above), Cephes' single-precision
// polynomial as in Eigen's pexp (what TensorFlow's Exp uses on CPU):
// x = n ln2 + r, exp(r) by a degree-6 polynomial, times 2^n. Within 2 ulp
// of expf; below -87.3 it returns exp(-87.3) ~ 1.2e-38 (expf: denormals, then 0).
static inline vf vexp(vf x) {
  const vf lo = bcast(-87.3365447505f);
  x = vmax(x, lo);
  const vf fx0 = x * bcast(1.44269504088896341f) + bcast(0.5f);
#if defined(__AVX512F__)
  const vf fx = (vf)_mm512_roundscale_ps((__m512)fx0, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
#elif defined(__AVX__)
  const vf fx = (vf)_mm256_floor_ps((__m256)fx0);
#else
  vf fx;
  for (int l = 0; l < VL; ++l) { float f = (float)(int32_t)fx0[l]; fx[l] = f > fx0[l] ? f - 1.0f : f; }
#endif
  vf r = x - fx * bcast(0.693359375f);
  r = r - fx * bcast(-2.12194440e-4f);
  const vf r2 = r * r;
  vf y = bcast(1.9875691500E-4f);
  y = y * r + bcast(1.3981999507E-3f);
  y = y * r + bcast(8.3334519073E-3f);
  y = y * r + bcast(4.1665795894E-2f);
  y = y * r + bcast(1.6666665459E-1f);
  y = y * r + bcast(5.0000001201E-1f);
  y = y * r2 + r + bcast(1.0f);
  const vi n = __builtin_convertvector(fx, vi);
  const vi bits = (n + 127) << 23;
  return y * (vf)bits;
}

}  // namespace

void ExpMapRange(const float* z, float c, float limit, float* g, int64_t begin, int64_t end) {
  const vf cv = bcast(c), lv = bcast(limit);
  int64_t i = begin;
  for (; i + VL <= end; i += VL) storeu(g + i, vexp(vmin(loadu(z + i) * cv, lv)));
  if (i < end) {
    float tmp[VL] = {0};
    std::memcpy(tmp, z + i, (end - i) * sizeof(float));
    const vf r = vexp(vmin(loadu(tmp) * cv, lv));
    storeu(tmp, r);
    std::memcpy(g + i, tmp, (end - i) * sizeof(float));
  }
}

double ExpMapGradRange(const float* z, const float* g, const float* dg, float c, float limit,
                       float* dz, int64_t begin, int64_t end) {
  // Vector partial sums of at most 64 vectors each, then added in double.
  double total = 0.0;
  const vf cv = bcast(c), lv = bcast(limit);
  int64_t i = begin;
  while (i + VL <= end) {
    vf part = vf{};
    for (int k = 0; k < 64 && i + VL <= end; ++k, i += VL) {
      const vf zi = loadu(z + i);
      const vf keep = (vf)((vi)(zi * cv <= lv) & (vi)bcast(1.0f));
      const vf e = loadu(dg + i) * loadu(g + i) * keep;
      storeu(dz + i, e * cv);
      part += e * zi;
    }
    for (int l = 0; l < VL; ++l) total += (double)part[l];
  }
  for (; i < end; ++i) {
    const float zi = z[i];
    const float e = (c * zi <= limit) ? dg[i] * g[i] : 0.0f;
    dz[i] = e * c;
    total += (double)(e * zi);
  }
  return total;
}

void MomentRows(const float* s, const float* t, int64_t C, double* acc, int64_t begin,
                int64_t end) {
  double* s1 = acc;
  double* t1 = acc + C;
  double* s2 = acc + 2 * C;
  double* t2 = acc + 3 * C;
  double* st = acc + 4 * C;
  for (int64_t r = begin; r < end; ++r) {
    const float* sr = s + r * C;
    const float* tr = t + r * C;
#pragma GCC ivdep
    for (int64_t c = 0; c < C; ++c) {
      const double a = sr[c], b = tr[c];
      s1[c] += a;
      t1[c] += b;
      s2[c] += a * a;
      t2[c] += b * b;
      st[c] += a * b;
    }
  }
}

void MomentsGradRows(const float* s, const float* t, int64_t C, const float* coef, float* ds,
                     int64_t begin, int64_t end) {
  const float* a = coef;
  const float* b = coef + C;
  const float* ms = coef + 2 * C;
  const float* e = coef + 3 * C;
  const float* mt = coef + 4 * C;
  for (int64_t r = begin; r < end; ++r) {
    const float* sr = s + r * C;
    const float* tr = t + r * C;
    float* dr = ds + r * C;
#pragma GCC ivdep
    for (int64_t c = 0; c < C; ++c) dr[c] = a[c] + b[c] * (sr[c] - ms[c]) + e[c] * (tr[c] - mt[c]);
  }
}

}  // namespace adder_tf
