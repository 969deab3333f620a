// The adder compute kernels (see adder_kernels.h): GCC vector extensions,
// one vector = VL floats (16 with AVX-512, 8 otherwise), a small tile of
// accumulators kept in registers, no im2col buffer.
//   forward:    tile = P output positions of one row x NV vectors of c_out;
//               inner loop over the K = kh*kw*c_in taps, w packed as (K, c_out);
//               sum |x - w| = sum x + sum w - 2 sum min(x, w). Each output
//               row copies the input rows it does not share with the previous
//               one, with their zero padding, so one kernel row's window is
//               kw*c_in contiguous floats (one inner loop per kernel row);
//               kernel rows wholly in the padding add a packed constant, the
//               sum of min(0, w) over that row, and so does a kernel column
//               that puts a tile's first or last position (a row end) into
//               the padding, for that position. Output rows go in blocks (one
//               image, the block's padded input rows within kBlockBytes), each
//               block of c_out vectors over all the block's rows, so a block's
//               packed weights are read once per block of rows, not per row
//               (in blocks of whole images with AVX-512, kernel row by kernel
//               row: one kernel row's weights at a time stay in L2).
//   input grad: gather form, tile = P input positions of one row (same
//               column residue mod stride, so they share the valid kernel
//               offsets) x one vector of c_in; inner loop over c_out, w packed
//               as (c_in vectors, kh, kw reversed, c_out, VL), so one channel
//               vector's taps are contiguous and are read once per block of
//               input rows. At stride 1 the block's dy rows are copied once
//               with their padding so a kernel row reads kw*c_out contiguous
//               floats. Each input position is written by exactly
//               one work item, so threads never race. The sum of dy over
//               (batch, rows, columns), which the filter gradient needs,
//               comes out of the same op, each dy row counted once.
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
#include <vector>

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
// Pins v to a vector register: an empty asm that "changes" it. Without it
// g++ 12 folds a weight vector that P positions share into each of their P
// vminps as a memory operand, so the forward's inner loop loads every
// weight vector P times instead of once: 16 vector loads a tap for a 4 x 4
// tile, more than the min and FMA pipes' 16 cycles on Zen 4 (one 512-bit
// load a cycle), where the loads then set the pace.
// (Without AVX a vf is not one register: nothing to pin.)
static inline void in_register(vf& v) {
#if defined(__AVX512F__)
  asm("" : "+v"(v));
#elif defined(__AVX__)
  asm("" : "+x"(v));
#else
  (void)v;
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

// The forward's accumulation acc + min(x, w). On AMD Zen 4 the min and the
// add of the forward's inner loop share one pair of pipes (one 512-bit op a
// cycle for the pair: bench/vector_peak.cc's min_add, 29 G terms/s a core,
// half its fma), while the FMA pipes idle; issued as fma(min, 1, acc) the
// add moves there (min_fma: 58 G terms/s, the fma's rate), same rounding as
// the plain add. GCC 12 takes a Zen 4 for a Zen 3 with AVX-512, which no
// Zen 3 has. Elsewhere (Intel: min, add and FMA share ports 0/5) a plain add.
#if defined(__AVX512F__) && (defined(__znver4__) || defined(__znver5__) ||              \
                             defined(__tune_znver4__) || defined(__tune_znver5__) || \
                             defined(__znver3__) || defined(__tune_znver3__))
#define ADDER_TF_ACC_ON_FMA 1
#endif
static inline vf acc_add(vf acc, vf m) {
#if defined(ADDER_TF_ACC_ON_FMA)
  return (vf)_mm512_fmadd_ps((__m512)m, _mm512_set1_ps(1.0f), (__m512)acc);
#else
  return acc + m;
#endif
}

// min(x, w) for the scalar *xp against the vector w. On Zen 4 (where the
// accumulation runs on the FMA pipes) as one vminps with an embedded
// broadcast of *xp, {1to16}: a register broadcast (vbroadcastss zmm, m32)
// there takes a slot of the vector pipes, one per position and tap, which the
// memory operand's broadcast does not (measured, 1x1 forward kernels alone:
// 10-15% less time; the extra scalar loads, NV a position, stay within the
// three loads a cycle). The operands are swapped, min(w, x): it differs from
// min(x, w) only in which of two equal zeros or which NaN it returns, which
// changes no sum (an accumulator that starts at +0 never becomes -0, and a
// NaN x or w makes the output NaN through sum x or sum w either way).
static inline vf min_bcast(vf w, const float* xp) {
#if defined(ADDER_TF_ACC_ON_FMA)
  vf r;
  asm("vminps %[x]%{1to16%}, %[w], %[r]" : [r] "=v"(r) : [w] "v"(w), [x] "m"(*xp));
  return r;
#else
  return vmin(bcast(*xp), w);
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

// w - x (as w + (-x)) in the input gradient's inner loop, whose three ops a
// term are this sum, a clip and an FMA. Where the sum and the clip share the
// add pipes and the FMA has pipes of its own (Zen 4 running the Zen 3 tuning
// of GCC 12, clip as one vrangeps: 2 + 1 ops a term), every other position's
// sum is issued as fma(w, 1, -x) on the FMA pipes (1.5 + 1.5): the same
// rounding as the plain add.
static inline vf grad_diff(vf w, vf nx, bool odd) {
#if defined(ADDER_TF_ACC_ON_FMA) && !defined(ADDER_TF_ADD_ON_FMA)
  if (odd) return (vf)_mm512_fmadd_ps((__m512)w, _mm512_set1_ps(1.0f), (__m512)nx);
#endif
  (void)odd;
  return add_on_fma(w, nx);
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
// Output-channel vectors per forward work group (ForwardChannelGroups): the
// widest register block, so a group is never split inside one.
constexpr int64_t kForwardGroupVectors = 4;
// The 1x1 forward's register tile: positions x output-channel vectors.
#if defined(__AVX512F__)
constexpr int kForward1x1P = 6, kForward1x1NV = 4;  // 24 accumulators, 4 weight vectors
#else
constexpr int kForward1x1P = 3, kForward1x1NV = 4;
#endif


// ---------------------------------------------------------------- forward

// Input rows with their zero padding, as the forward reads them: each input
// row of one block of output rows (one image, rows i0 .. i1 - 1), with
// kw - 1 + ... zero columns around it, so every output position's window on
// that row, kw * C floats, is contiguous. Each row is copied once per block
// and read by every output-channel block of every output row that needs it.
// The buffer ends with kFixedSlack zero floats, which ForwardRowFixed's
// positions past the row end read (and discard).
constexpr int64_t kFixedP = 16, kFixedCS = 16;
constexpr int64_t kFixedSlack = kFixedP * kFixedCS;
// Bytes of padded rows (forward) or padded output-gradient rows (input
// gradient) per block of rows: they stay in cache while each channel block's
// weights are read once per block instead of once per row.
constexpr int64_t kBlockBytes = 256 << 10;
// Several whole images a forward block (see ForwardRows): padded rows within
// kMultiImageBytes (Zen 4's L2 is 1 MB a core), at most kMultiImages images.
constexpr int64_t kMultiImageBytes = 512 << 10;
constexpr int64_t kMultiImages = 4;
constexpr int64_t kL2Bytes = 1 << 20;
struct PaddedRows {
  int64_t width;  // floats per padded row: ((OW - 1) * s + kw) * C
  int64_t block;  // output rows per block
  int64_t first_ih = 0;  // input row held in slot 0
  std::vector<float> buf;
  static int64_t Width(const Geometry& g) { return ((g.OW - 1) * g.s + g.kw) * g.C; }
  // Bytes of one image's padded rows.
  static int64_t ImageBytes(const Geometry& g) { return 4 * Width(g) * ((g.OH - 1) * g.s + g.kh); }
  // A block's budget that holds one whole image where that fits
  // kMultiImageBytes, else kBlockBytes.
  static int64_t WholeImageBytes(const Geometry& g) {
    return ImageBytes(g) <= kMultiImageBytes ? std::max(kBlockBytes, ImageBytes(g)) : kBlockBytes;
  }
  // Output rows a block of `bytes` of padded rows holds (at least one).
  static int64_t BlockRows(const Geometry& g, int64_t bytes) {
    return std::max<int64_t>(1, std::min<int64_t>(g.OH, (bytes / (4 * Width(g)) - g.kh) / g.s + 1));
  }
  explicit PaddedRows(const Geometry& g, int64_t bytes = kBlockBytes)
      : width(Width(g)),
        block(BlockRows(g, bytes)),
        buf(((block - 1) * g.s + g.kh) * width + VL + kFixedSlack, 0.0f) {}
  // Copies the input rows that output rows [i0, i1) of image b read.
  void Fill(const Geometry& g, const float* x, int64_t b, int64_t i0, int64_t i1) {
    first_ih = i0 * g.s - g.pt;
    const int64_t cols = width / g.C;
    const int64_t first = std::max<int64_t>(g.pl, 0);  // padded column of iw = 0
    const int64_t n = std::min<int64_t>(g.W, cols - first);
    const int64_t last = std::min<int64_t>((i1 - 1) * g.s - g.pt + g.kh, g.H);
    for (int64_t ih = std::max<int64_t>(first_ih, 0); ih < last; ++ih) {
      float* row = buf.data() + (ih - first_ih) * width;
      std::memset(row, 0, first * g.C * sizeof(float));
      std::memcpy(row + first * g.C, x + ((b * g.H + ih) * g.W) * g.C, n * g.C * sizeof(float));
      std::memset(row + (first + n) * g.C, 0, (cols - first - n) * g.C * sizeof(float));
    }
  }
  // Row dh for output row i of the block, or nullptr when it lies in the padding.
  const float* Row(const Geometry& g, int64_t i, int64_t dh) const {
    const int64_t ih = i * g.s + dh - g.pt;
    if (ih < 0 || ih >= g.H) return nullptr;
    return buf.data() + (ih - first_ih) * width;
  }
};

static inline float hsum(vf v) {
#if defined(__AVX512F__)
  return _mm512_reduce_add_ps((__m512)v);
#else
  float s = 0.0f;
  for (int l = 0; l < VL; ++l) s += v[l];
  return s;
#endif
}

// The forward's inner loop: acc[p][v] += min(xp[p][k], w[k][v]) over n taps
// k, w[k] = wk + k * Op (NV vectors). Each tap loads its NV weight vectors
// once (in_register) and reads each position's x[k] once per vector as an
// embedded broadcast (min_bcast).
template <int NV, int P>
__attribute__((always_inline)) static inline void MinSumTaps(const float* wk, int64_t Op,
                                                             int64_t n, const float* const* xp,
                                                             vf (*acc)[NV]) {
  for (int64_t k = 0; k < n; ++k) {
    vf wv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      wv[v] = *reinterpret_cast<const vf*>(wk + k * Op + v * VL);
      in_register(wv[v]);
    }
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[p][v] = acc_add(acc[p][v], min_bcast(wv[v], xp[p] + k));
    }
  }
}

// Which position of a tile of P positions (j0, ..., j0 + P - 1) kernel
// column dw puts in the zero padding, where it is the tile's first or its
// last one alone: -1 for none (no padding in this column, or several
// positions in it: then the tile reads the padding's zeros).
template <int P>
static inline int PaddedEdge(const Geometry& g, int64_t j0, int64_t dw) {
  if (P < 2) return -1;
  const int64_t first = j0 * g.s + dw - g.pl, last = (j0 + P - 1) * g.s + dw - g.pl;
  if (first < 0 && first + g.s >= 0 && last < g.W) return 0;
  if (last >= g.W && last - g.s < g.W && first >= 0 && j0 + P - 1 < g.OW) return P - 1;
  return -1;
}

// The row ends' columns are skipped where c_in >= kEdgeMinC and in tiles of
// 3 or more channel vectors only: split in three loops of c_in taps, CIFAR's
// 16x16x32 3x3 layer (2-vector tiles; 2 of a row's 48 position-columns
// skipped a kernel row) took 1.06-1.10x the time of the one loop (Zen 4,
// kernels alone, batch 32), and 1.02 with the branch there but not taken
// (bench/results/amd_epyc_zen4_2026-12-06/kernels_ab_trials_2026-12-07.txt).
// 128 is not tuned; the 4-vector tiles of c_in 64 (56x56x64) read 1.01-1.04
// with the skip (same file), so not there either.
constexpr int64_t kEdgeMinC = 128;

// A kernel row's taps for a tile whose first or last position some kernel
// column puts into the padding (KernelRowTile): column by column, such a
// column's C taps over the other P - 1 positions and its packed sum (cs +
// dw * Op) for that position. False, doing nothing, where no column does
// (or c_in < kEdgeMinC, or fewer than 3 vectors): then one loop over all
// the taps.
template <int NV, int P>
__attribute__((always_inline)) static inline bool EdgeTaps(const Geometry& g, const float* wk,
                                                           int64_t Op, int64_t j0,
                                                           const float* const* xp,
                                                           vf (*acc)[NV], const float* cs) {
  if constexpr (NV < 3 || P < 2) {
    return false;
  } else {
    bool edges = false;
    for (int64_t dw = 0; g.C >= kEdgeMinC && dw < g.kw; ++dw) edges |= PaddedEdge<P>(g, j0, dw) >= 0;
    if (!edges) return false;
    for (int64_t dw = 0; dw < g.kw; ++dw) {
      const float* wd = wk + dw * g.C * Op;
      const float* xd[P];
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p) xd[p] = xp[p] + dw * g.C;
      const vf* c = reinterpret_cast<const vf*>(cs + dw * Op);
      // (Three branches, so that every accumulator's index is a constant:
      // indexed at run time, they would live on the stack.)
      switch (PaddedEdge<P>(g, j0, dw)) {
        case 0:
          MinSumTaps<NV, P - 1>(wd, Op, g.C, xd + 1, acc + 1);
#pragma GCC unroll 8
          for (int v = 0; v < NV; ++v) acc[0][v] += c[v];
          break;
        case P - 1:
          MinSumTaps<NV, P - 1>(wd, Op, g.C, xd, acc);
#pragma GCC unroll 8
          for (int v = 0; v < NV; ++v) acc[P - 1][v] += c[v];
          break;
        default:
          MinSumTaps<NV, P>(wd, Op, g.C, xd, acc);
      }
    }
    return true;
  }
}

// One kernel row of a tile of P positions (j0, ..., j0 + P - 1 of a padded
// row): the taps into acc, the sum of x over each window into xs and xt.
// cs: this kernel row's sums over C of min(0, w), one row a kernel column
// (ForwardSumRows). A kernel column that puts the tile's first or last
// position into the padding (a 3x3 "same" layer's row ends) runs its C taps
// over the other P - 1 positions, and that position gets the column's
// packed sum instead of min(0, w) tap by tap: 2 of a 7-wide row's 21
// kernel columns (c_in taps each) not computed.
template <int NV, int P>
__attribute__((always_inline)) static inline void KernelRowTile(const Geometry& g, const float* row,
                                                                const float* wk, int64_t Op, int64_t j0,
                                                                vf (*acc)[NV], vf* xs, float* xt,
                                                                const float* cs) {
  const int64_t KC = g.kw * g.C;
  const int64_t KCv = KC / VL * VL;
  const float* xp[P];
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p)  // positions past the row end re-read column 0
    xp[p] = row + (j0 + p < g.OW ? (j0 + p) * g.s * g.C : 0);
  if (!EdgeTaps<NV, P>(g, wk, Op, j0, xp, acc, cs)) MinSumTaps<NV, P>(wk, Op, KC, xp, acc);
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p) {
    for (int64_t k = 0; k < KCv; k += VL) xs[p] += loadu(xp[p] + k);
    for (int64_t k = KCv; k < KC; ++k) xt[p] += xp[p][k];
  }
}

// A tile's outputs, y = 2 (acc + pad) - (sum x + sum w), columns past c_out
// not stored. Unrolled like the tap loop, so that the accumulators stay in
// registers (indexed at run time here, they would live on the stack).
template <int NV, int P>
__attribute__((always_inline)) static inline void StoreTile(const Geometry& g, vf (*acc)[NV],
                                                            const vf* pad, const vf* xs,
                                                            const float* xt, const float* ws,
                                                            float* y, int64_t b, int64_t i,
                                                            int64_t j0, int64_t v0) {
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p) {
    const int64_t j = j0 + p;
    if (j >= g.OW) break;
    const vf sxv = bcast(xt[p] + hsum(xs[p]));
    float* yp = y + ((b * g.OH + i) * g.OW + j) * g.O;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const int64_t o = (v0 + v) * VL;
      const vf sw = *reinterpret_cast<const vf*>(ws + o);
      const vf a = acc[p][v] + pad[v];
      const vf r = (a + a) - (sxv + sw);
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

// One output row (b, i), output-channel vectors [v0, v0 + NV), all columns.
// wp: (K, Op): w as (kh, kw * C, Op); ws: (ForwardSumRows, Op): row 0 holding
// sum_k w[k, o], then per kernel row dh the sum over (dw, c) of min(0, w),
// then per kernel row and column the sum over c of min(0, w)
// (PackForwardWeights puts them after wp's rows, PackForwardSums alone);
// Op = c_out rounded up to VL, zero filled. rows[dh]: padded input rows
// (nullptr: the whole kernel row lies in the padding).
//
// |x - w| = x + w - 2 min(x, w), so over a window
//   y = -sum |x - w| = 2 sum min(x, w) - sum x - sum w:
// the inner loop is min + add (two vector uops per element) instead of
// subtract + abs + add (three); sum x is one vector add per channel vector
// of each position, sum w is packed once. Padded taps read zeros and
// contribute min(0, w), like the reference's |0 - w|; kernel rows entirely
// in the padding are the packed constant. The float32 rounding differs from
// summing |x - w| directly only when x and w share an offset much larger
// than their difference (error ~ eps * K * max(|x|, |w|)). The window of one
// kernel row is kw * C contiguous floats of the padded row, one loop.
// Not inlined: inlined into ForwardRows (g++ 12), its 4 x 4 tile ran at half
// the rate (56x56x64 and 28x28x128 3x3 on Zen 4, kernels_ab).
template <int NV, int P>
__attribute__((noinline)) static void ForwardRow(const Geometry& g, const float* const* rows, const float* wp, const float* ws, int64_t Op,
                       float* y, int64_t b, int64_t i, int64_t v0) {
  const int64_t KC = g.kw * g.C;
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
    vf pad[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) pad[v] = vf{};
    for (int64_t dh = 0; dh < g.kh; ++dh) {
      if (rows[dh] == nullptr) {
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v)
          pad[v] += *reinterpret_cast<const vf*>(ws + (1 + dh) * Op + (v0 + v) * VL);
        continue;
      }
      KernelRowTile<NV, P>(g, rows[dh], wp + dh * KC * Op + v0 * VL, Op, j0, acc, xs, xt,
                           ws + (1 + g.kh + dh * g.kw) * Op + v0 * VL);
    }
    StoreTile<NV, P>(g, acc, pad, xs, xt, ws, y, b, i, j0, v0);
  }
}

// ForwardRow<1, P> for c_out <= VL when the positions of a row are a
// compile-time CS = c_in * stride floats apart (kFixedCS: 16 channels at
// stride 1, 8 at stride 2): one pointer per kernel row instead of one per
// position, the positions' offsets immediates, so 16 positions fit the
// registers (16 accumulators, a handful of general registers) and each tap's
// weight vector, loop step and branch serve twice the positions. Positions
// past the row end read the next slot or the buffer's slack and are not
// stored.
// Measured on a 2-core Xeon (model 167), stage 1 of ResNet-20 at batch 128,
// kernels alone: 6-13% more terms per second than ForwardRow<1, 8>. It is a
// function of its own, not ForwardRow with a spacing parameter: written that
// way (xp[p] = rows[dh] + (j0 + p) * CS), g++ 12 kept the 16 pointers and ran
// at 32-36 G terms/s on one thread against 40-41 for this form.
template <int P, int CS>
__attribute__((noinline)) static void ForwardRowFixed(const Geometry& g,
                                                      const float* const* rows,
                                                      const float* wp, const float* ws, int64_t Op, float* y,
                                                      int64_t b, int64_t i) {
  const int64_t KC = g.kw * g.C;
  const int64_t KCv = KC / VL * VL;
  for (int64_t j0 = 0; j0 < g.OW; j0 += P) {
    vf acc[P], xs[P];
    float xt[P];
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      acc[p] = vf{};
      xs[p] = vf{};
      xt[p] = 0.0f;
    }
    vf pad = vf{};
    for (int64_t dh = 0; dh < g.kh; ++dh) {
      if (rows[dh] == nullptr) {
        pad += *reinterpret_cast<const vf*>(ws + (1 + dh) * Op);
        continue;
      }
      const float* xr = rows[dh] + j0 * CS;
      const float* wk = wp + dh * KC * Op;
      for (int64_t k = 0; k < KC; ++k) {
        vf wv = *reinterpret_cast<const vf*>(wk + k * Op);
        in_register(wv);
#pragma GCC unroll 16
        for (int p = 0; p < P; ++p) acc[p] = acc_add(acc[p], vmin(bcast(xr[p * CS + k]), wv));
      }
      // sum x over this kernel row's window
      for (int64_t k = 0; k < KCv; k += VL) {
#pragma GCC unroll 16
        for (int p = 0; p < P; ++p) xs[p] += loadu(xr + p * CS + k);
      }
      for (int64_t k = KCv; k < KC; ++k) {
#pragma GCC unroll 16
        for (int p = 0; p < P; ++p) xt[p] += xr[p * CS + k];
      }
    }
    const vf sw = *reinterpret_cast<const vf*>(ws);
    for (int p = 0; p < P; ++p) {
      const int64_t j = j0 + p;
      if (j >= g.OW) break;
      const vf sxv = bcast(xt[p] + hsum(xs[p]));
      const vf a = acc[p] + pad;
      const vf r = (a + a) - (sxv + sw);
      float* yp = y + ((b * g.OH + i) * g.OW + j) * g.O;
      if (g.O == VL) {
        storeu(yp, r);
      } else {
        float tmp[VL];
        storeu(tmp, r);
        std::memcpy(yp, tmp, g.O * sizeof(float));
      }
    }
  }
}

// ForwardRow's state for one tile of P positions between kernel rows.
template <int NV, int P>
struct ForwardTile {
  vf acc[P][NV], xs[P], pad[NV];
  float xt[P];
};

// Kernel row dh of ForwardRow alone, for output row (b, i): each tile's
// accumulators, sums of x and padding term start from `tiles` (zero when
// dh = 0), go through this kernel row's taps, and are parked there again, or
// at the last kernel row written to y as ForwardRow writes them. The same
// additions in the same order as ForwardRow: bit-for-bit equal outputs. Run
// kernel row by kernel row over a block of rows, one kernel row's weights
// (kw * C taps of NV vectors: 295 KB for 3x3x512 at NV = 3) are read once per
// block from L2 instead of the three rows' (885 KB with 166 KB of padded
// rows: more than Zen 4's 1 MB L2) once per output row.
template <int NV, int P>
static void ForwardRowKernelRow(const Geometry& g, const float* row, int64_t dh, const float* wp,
                                const float* ws, int64_t Op, float* y, int64_t b, int64_t i,
                                int64_t v0, ForwardTile<NV, P>* tiles) {
  const int64_t KC = g.kw * g.C;
  const bool first = dh == 0, last = dh == g.kh - 1;
  for (int64_t j0 = 0; j0 < g.OW; j0 += P) {
    ForwardTile<NV, P>& t = tiles[j0 / P];
    vf acc[P][NV], xs[P], pad[NV];
    float xt[P];
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      xs[p] = first ? vf{} : t.xs[p];
      xt[p] = first ? 0.0f : t.xt[p];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[p][v] = first ? vf{} : t.acc[p][v];
    }
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) pad[v] = first ? vf{} : t.pad[v];
    if (row == nullptr) {
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v)
        pad[v] += *reinterpret_cast<const vf*>(ws + (1 + dh) * Op + (v0 + v) * VL);
    } else {
      KernelRowTile<NV, P>(g, row, wp + dh * KC * Op + v0 * VL, Op, j0, acc, xs, xt,
                           ws + (1 + g.kh + dh * g.kw) * Op + v0 * VL);
    }
    if (!last) {
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p) {
        t.xs[p] = xs[p];
        t.xt[p] = xt[p];
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) t.acc[p][v] = acc[p][v];
      }
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) t.pad[v] = pad[v];
      continue;
    }
    StoreTile<NV, P>(g, acc, pad, xs, xt, ws, y, b, i, j0, v0);
  }
}

// Output rows [i0, i1) of image b, output-channel vectors [v0, v0 + NV).
template <int NV, int P>
static void ForwardBlock(const Geometry& g, const PaddedRows& padded, const float* wp, const float* ws, int64_t Op,
                         float* y, int64_t b, int64_t i0, int64_t i1, int64_t v0) {
  std::vector<const float*> rows(g.kh);
  for (int64_t i = i0; i < i1; ++i) {
    for (int64_t dh = 0; dh < g.kh; ++dh) rows[dh] = padded.Row(g, i, dh);
    if constexpr (NV == 1 && P == kFixedP)
      ForwardRowFixed<kFixedP, kFixedCS>(g, rows.data(), wp, ws, Op, y, b, i);
    else
      ForwardRow<NV, P>(g, rows.data(), wp, ws, Op, y, b, i, v0);
  }
}

// Output-channel vectors [v_begin, v_end) of rows [i0, i1): blocks of NV
// vectors, then the remaining vectors one at a time.
template <int NV, int P>
static void ForwardBlockChannels(const Geometry& g, const PaddedRows& padded, const float* wp, const float* ws,
                                 int64_t Op, float* y, int64_t b, int64_t i0, int64_t i1,
                                 int64_t v_begin, int64_t v_end) {
  int64_t v0 = v_begin;
  for (; v0 + NV <= v_end; v0 += NV) ForwardBlock<NV, P>(g, padded, wp, ws, Op, y, b, i0, i1, v0);
  for (; v0 < v_end; ++v0) ForwardBlock<1, FWD_P_SMALL>(g, padded, wp, ws, Op, y, b, i0, i1, v0);
}

// ------------------------------------------------------------ 1x1 forward

// A 1x1 layer (kh = kw = 1: never padded, at any stride) is a GEMM of the
// (positions, c_in) matrix of x by w: K = c_in taps per output, no windows
// to copy. The positions of a range of rows are taken as one sequence, in
// blocks of kBlock1x1Bytes of x, and tiled P at a time across row and image
// ends (a 7x7 or 14x14 row is no longer a partial tile), each tile an
// P x NV register block of positions x c_out vectors over all K taps. Each
// position's sum x is computed once per block, not once per channel block.
// Accumulation order and rounding as in ForwardRow: bit-identical outputs.
constexpr int64_t kBlock1x1Bytes = 512 << 10;

// sum_k x[k] over k < C as ForwardRow adds a kernel row's window: vector
// partial sums, then the tail, then the vector's lanes.
static inline float SumX(const float* xp, int64_t C) {
  const int64_t Cv = C / VL * VL;
  vf xs = vf{};
  float xt = 0.0f;
  for (int64_t k = 0; k < Cv; k += VL) xs += loadu(xp + k);
  for (int64_t k = Cv; k < C; ++k) xt += xp[k];
  return xt + hsum(xs);
}

// Positions [0, np) (np <= P) of xp/yp/sx, output-channel vectors [v0, v0 + NV).
template <int NV, int P>
static void Forward1x1Tile(const Geometry& g, const float* const* xp, float* const* yp,
                           const float* sx, int np, const float* wp, const float* ws, int64_t Op, int64_t v0) {
  const int64_t K = g.C;
  const float* xq[P];
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p) xq[p] = xp[p < np ? p : 0];  // extra positions re-read the first
  vf acc[P][NV];
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[p][v] = vf{};
  MinSumTaps<NV, P>(wp + v0 * VL, Op, K, xq, acc);
  vf sw[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) sw[v] = *reinterpret_cast<const vf*>(ws + (v0 + v) * VL);
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p) {
    if (p >= np) break;
    const vf sxv = bcast(sx[p]);
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const int64_t o = (v0 + v) * VL;
      const vf a = acc[p][v] + vf{};  // + the (zero) padding term, as ForwardRow
      const vf r = (a + a) - (sxv + sw[v]);
      if (o + VL <= g.O) {
        storeu(yp[p] + o, r);
      } else if (o < g.O) {
        float tmp[VL];
        storeu(tmp, r);
        std::memcpy(yp[p] + o, tmp, (g.O - o) * sizeof(float));
      }
    }
  }
}

// Output-channel vectors [v_begin, v_end) of the n positions xp/yp/sx: blocks
// of NV vectors, then what is left two vectors and one vector at a time.
template <int NV, int P>
static void Forward1x1Channels(const Geometry& g, const float* const* xp, float* const* yp,
                               const float* sx, int64_t n, const float* wp, const float* ws, int64_t Op,
                               int64_t v_begin, int64_t v_end) {
  int64_t v0 = v_begin;
  for (; v0 + NV <= v_end; v0 += NV)
    for (int64_t m = 0; m < n; m += P)
      Forward1x1Tile<NV, P>(g, xp + m, yp + m, sx + m, std::min<int64_t>(P, n - m), wp, ws, Op, v0);
  if constexpr (NV > 1) Forward1x1Channels<NV / 2, (2 * P < 8 ? 2 * P : 8)>(g, xp, yp, sx, n, wp, ws, Op, v0, v_end);
}

// Output rows [begin, end) of the flattened (B * OH) rows of a 1x1 layer.
static void Forward1x1Rows(const Geometry& g, const float* x, const float* wp, const float* ws, int64_t Op,
                           float* y, int64_t begin, int64_t end, int64_t v_begin,
                           int64_t v_end) {
  const int64_t total = (end - begin) * g.OW;
  const int64_t block = std::min<int64_t>(
      total, std::max<int64_t>(kForward1x1P, kBlock1x1Bytes / (4 * g.C) / kForward1x1P * kForward1x1P));
  std::vector<const float*> xp(block);
  std::vector<float*> yp(block);
  std::vector<float> sx(block);
  for (int64_t m0 = 0; m0 < total; m0 += block) {
    const int64_t n = std::min(block, total - m0);
    for (int64_t m = 0; m < n; ++m) {
      const int64_t r = begin + (m0 + m) / g.OW, j = (m0 + m) % g.OW;
      const int64_t b = r / g.OH, i = r % g.OH;
      xp[m] = x + ((b * g.H + i * g.s) * g.W + j * g.s) * g.C;
      yp[m] = y + (r * g.OW + j) * g.O;
      sx[m] = SumX(xp[m], g.C);
    }
    Forward1x1Channels<kForward1x1NV, kForward1x1P>(g, xp.data(), yp.data(), sx.data(), n, wp, ws,
                                                     Op, v_begin, v_end);
  }
}

// ------------------------------------------------------------- input grad

// The input gradient's inner loop over n packed weight vectors (stride Cp
// floats) for P input columns: acc[p] += clip(w - x[p], -1, 1) * dy_p[k].
template <int P>
__attribute__((always_inline)) static inline void ClipDotTaps(const float* wk, int64_t Cp,
                                                              int64_t n, const vf* xr,
                                                              const float* const* dp, vf* acc) {
  const vf one = bcast(1.0f), mone = bcast(-1.0f);
  for (int64_t k = 0; k < n; ++k) {
    const vf wv = *reinterpret_cast<const vf*>(wk + k * Cp);
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      const vf d = clip1(grad_diff(wv, xr[p], p % 2 == 1), one, mone);
      acc[p] += d * bcast(dp[p][k]);
    }
  }
}

// Input row (b, h), input columns r, r + s, r + 2s, ... (one residue class
// modulo the stride), channel vector cv. xq/dxq: (B, H, W, Cp).
// wt: (Cp / VL, kh, kw reversed, O, VL). dy: (B, OH, OW, O).
template <int P>
static void InputGradRow(const Geometry& g, const float* xq, int64_t Cp, const float* wt,
                         const float* dy, const float* zeros, float* dxq,
                         int64_t b, int64_t h, int64_t r, int64_t cv) {
  const int64_t O = g.O, s = g.s;
  const int64_t ncols = r < g.W ? (g.W - r + s - 1) / s : 0;
  const float* wcv = wt + cv * g.kh * g.kw * O * VL;
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
        const float* wk = wcv + (dh * g.kw + g.kw - 1 - dw) * O * VL;
        ClipDotTaps<P>(wk, VL, O, xr, dp, acc);
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

// Stride 1: the output-gradient rows of one block of input rows with their
// zero padding, so that the taps of one kernel row that reach input column
// iw read kw * O contiguous floats: padded column iw + m holds dy column
// iw + pl - (kw - 1 - m), and wt's kernel columns are packed in reverse
// (m = kw - 1 - dw) to match. Each dy row of the block is copied once and
// read by every channel vector of every input row that needs it.
struct PaddedGradRows {
  int64_t width;  // floats per padded row: (W + kw - 1) * O
  int64_t first_row = 0;  // output row held in slot 0
  std::vector<float> buf;
  PaddedGradRows(const Geometry& g, int64_t block_rows)
      : width((g.W + g.kw - 1) * g.O), buf((block_rows + g.kh - 1) * width + VL, 0.0f) {}
  // Copies the dy rows that input rows [h0, h1) of image b read: output rows
  // [h0 + pt - kh + 1, h1 + pt) within [0, OH).
  void Fill(const Geometry& g, const float* dy, int64_t b, int64_t h0, int64_t h1) {
    first_row = h0 + g.pt - (g.kh - 1);
    const int64_t cols = width / g.O;
    const int64_t shift = g.kw - 1 - g.pl;  // padded column of dy column 0
    const int64_t first = std::max<int64_t>(shift, 0);
    const int64_t j0 = first - shift;
    const int64_t n = std::max<int64_t>(std::min<int64_t>(g.OW - j0, cols - first), 0);
    for (int64_t i = std::max<int64_t>(first_row, 0); i < std::min<int64_t>(h1 + g.pt, g.OH); ++i) {
      float* row = buf.data() + (i - first_row) * width;
      std::memset(row, 0, first * g.O * sizeof(float));
      std::memcpy(row + first * g.O, dy + ((b * g.OH + i) * g.OW + j0) * g.O,
                  n * g.O * sizeof(float));
      std::memset(row + (first + n) * g.O, 0, (cols - first - n) * g.O * sizeof(float));
    }
  }
  // Kernel row dh of input row h, or nullptr when it reads only padding.
  const float* Row(const Geometry& g, int64_t h, int64_t dh) const {
    const int64_t i = h + g.pt - dh;
    if (i < 0 || i >= g.OH) return nullptr;
    return buf.data() + (i - first_row) * width;
  }
};

// Not inlined: inlined into InputGradRows (g++ 12) with its 7-wide
// instance, the 7-wide tiles ran at 1.24x the CPU time of the 8-wide ones.
template <int P>
__attribute__((noinline)) static void InputGradRowS1(const Geometry& g, const float* xq, int64_t Cp, const float* wt,
                           const float* const* drows, float* dxq, int64_t b, int64_t h,
                           int64_t cv) {
  const int64_t KO = g.kw * g.O;
  const float* wcv = wt + cv * g.kh * KO * VL;
  for (int64_t t0 = 0; t0 < g.W; t0 += P) {
    vf xr[P], acc[P];
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      xr[p] = (t0 + p < g.W)  // -x
                  ? -*reinterpret_cast<const vf*>(xq + ((b * g.H + h) * g.W + t0 + p) * Cp + cv * VL)
                  : vf{};
      acc[p] = vf{};
    }
    for (int64_t dh = 0; dh < g.kh; ++dh) {
      if (drows[dh] == nullptr) continue;
      const float* dp[P];
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p)  // columns past the row end re-read column 0
        dp[p] = drows[dh] + (t0 + p < g.W ? (t0 + p) * g.O : 0);
      ClipDotTaps<P>(wcv + dh * KO * VL, VL, KO, xr, dp, acc);
    }
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      if (t0 + p >= g.W) break;
      *reinterpret_cast<vf*>(dxq + ((b * g.H + h) * g.W + t0 + p) * Cp + cv * VL) = acc[p];
    }
  }
}

// Rows of one image per block: as many as keep the block's padded dy rows
// within kBlockBytes, so they stay in cache while every channel vector's
// weights (kh * kw * O vectors, contiguous) are read once per block rather
// than once per input row. Weights that fit the block budget whole stay in
// cache anyway: then one row a block (measured on Zen 4: blocks slowed the
// ResNet-50 1x1 layers by 8%).
static int64_t GradBlockRows(const Geometry& g) {
  const int64_t Cp = (g.C + VL - 1) / VL * VL;
  if (g.kh * g.kw * g.O * Cp * 4 <= kBlockBytes) return 1;
  const int64_t row_bytes = (g.W + g.kw - 1) * g.O * 4;
  return std::max<int64_t>(1, std::min<int64_t>(g.H, kBlockBytes / row_bytes - (g.kh - 1)));
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

int64_t ForwardSumRows(const Geometry& g) { return 1 + g.kh + g.kh * g.kw; }
int64_t ForwardPackedRows(const Geometry& g) { return g.kh * g.kw * g.C + ForwardSumRows(g); }

void PackForwardRows(const Geometry& g, const float* w, int64_t Op, float* wp, int64_t k_begin,
                     int64_t k_end) {
  for (int64_t k = k_begin; k < k_end; ++k) {
    std::memcpy(wp + k * Op, w + k * g.O, g.O * sizeof(float));
    std::memset(wp + k * Op + g.O, 0, (Op - g.O) * sizeof(float));
  }
}

void PackForwardWeights(const Geometry& g, const float* w, int64_t Op, float* wp) {
  const int64_t K = g.kh * g.kw * g.C;
  PackForwardRows(g, w, Op, wp, 0, K);
  PackForwardSums(g, w, Op, wp + K * Op);
}

namespace {
// Columns [o0, o0 + NV * VL) of the sums (laid out as PackForwardSums writes
// them, w's rows ldw floats apart) over kernel rows [dh0, dh1): row 0 of
// `sums` goes on from what it holds, the sums in registers over the taps,
// stored once per kernel row. Tap by tap, lane by lane: the same additions
// in the same order whatever the blocks. (A loop that loaded and stored both
// sums at every tap ran at the pace of its stores; one that went over the
// taps once per vector, 2 KB apart for 512 channels, at the pace of their
// first reads from memory.)
template <int NV>
void ForwardSumsBlock(const Geometry& g, const float* w, int64_t ldw, int64_t Op, float* sums,
                      int64_t o0, int64_t dh0, int64_t dh1) {
  const int64_t KC = g.kw * g.C;
  vf sw[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) sw[v] = loadu(sums + o0 + v * VL);
  for (int64_t dh = dh0; dh < dh1; ++dh) {
    vf sm[NV] = {};
    for (int64_t dw = 0; dw < g.kw; ++dw) {
      vf sc[NV] = {};
      for (int64_t k = dh * KC + dw * g.C; k < dh * KC + (dw + 1) * g.C; ++k) {
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
          const vf wk = loadu(w + k * ldw + o0 + v * VL);
          const vf m = vmin(vf{}, wk);
          sw[v] += wk;
          sm[v] += m;
          sc[v] += m;
        }
      }
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v)
        storeu(sums + (1 + g.kh + dh * g.kw + dw) * Op + o0 + v * VL, sc[v]);
    }
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) storeu(sums + (1 + dh) * Op + o0 + v * VL, sm[v]);
  }
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) storeu(sums + o0 + v * VL, sw[v]);
}

// Vectors [v0, v1) of the sums over kernel rows [dh0, dh1): blocks of 8, then
// one block of what is left.
void ForwardSumsVectors(const Geometry& g, const float* w, int64_t ldw, int64_t Op, float* sums,
                        int64_t v0, int64_t v1, int64_t dh0, int64_t dh1) {
  for (; v0 + 8 <= v1; v0 += 8) ForwardSumsBlock<8>(g, w, ldw, Op, sums, v0 * VL, dh0, dh1);
  switch (v1 - v0) {
    case 7: return ForwardSumsBlock<7>(g, w, ldw, Op, sums, v0 * VL, dh0, dh1);
    case 6: return ForwardSumsBlock<6>(g, w, ldw, Op, sums, v0 * VL, dh0, dh1);
    case 5: return ForwardSumsBlock<5>(g, w, ldw, Op, sums, v0 * VL, dh0, dh1);
    case 4: return ForwardSumsBlock<4>(g, w, ldw, Op, sums, v0 * VL, dh0, dh1);
    case 3: return ForwardSumsBlock<3>(g, w, ldw, Op, sums, v0 * VL, dh0, dh1);
    case 2: return ForwardSumsBlock<2>(g, w, ldw, Op, sums, v0 * VL, dh0, dh1);
    case 1: return ForwardSumsBlock<1>(g, w, ldw, Op, sums, v0 * VL, dh0, dh1);
    default: return;
  }
}
}  // namespace

void PackForwardSums(const Geometry& g, const float* w, int64_t Op, float* sums,
                     int64_t o_begin, int64_t o_end) {
  const int64_t K = g.kh * g.kw * g.C;
  const int64_t KC = g.kw * g.C;
  if (o_end < 0) o_end = Op;
  for (int64_t r = 0; r < ForwardSumRows(g); ++r)
    std::memset(sums + r * Op + o_begin, 0, (o_end - o_begin) * sizeof(float));
  const int64_t o_stop = std::min(o_end, g.O);
  // Whole vectors of columns in registers, then the columns left one at a
  // time: lane by lane the same additions in the same order.
  const int64_t v_stop = std::max<int64_t>(o_begin, o_stop) / VL;
  ForwardSumsVectors(g, w, g.O, Op, sums, o_begin / VL, v_stop, 0, g.kh);
  const int64_t o0 = std::max<int64_t>(o_begin, v_stop * VL);
  float* __restrict__ sw = sums;
  for (int64_t k = 0; k < K; ++k) {
    const float* __restrict__ wk = w + k * g.O;
    float* __restrict__ sm = sums + (1 + k / KC) * Op;
    float* __restrict__ sc = sums + (1 + g.kh + k / g.C) * Op;
    for (int64_t o = o0; o < o_stop; ++o) {
      const float m = std::min(wk[o], 0.0f);
      sw[o] += wk[o];
      sm[o] += m;
      sc[o] += m;
    }
  }
}

int64_t ForwardChannelGroups(const Geometry& g, int threads) {
  const int64_t nvec = (g.O + VL - 1) / VL;
  const int64_t groups = nvec / kForwardGroupVectors;
  if (groups <= 1 || g.B * g.OH >= 4 * threads) return 1;
  return std::min<int64_t>(
      groups, std::max<int64_t>(threads, (4 * threads + g.B * g.OH - 1) / (g.B * g.OH)));
}

namespace {
// PackForwardSums's columns of vectors [v0, v0 + nv) over kernel row dh's taps
// alone, into ws (laid out as PackForwardSums writes it, row 0 already holding
// the earlier kernel rows' sums): lane by lane the same additions in the same
// order, so the same floats (min(0, w) as std::min(w, 0.0f): the zero when w
// is not below it).
static void KernelRowSums(const Geometry& g, const float* w, int64_t Op, float* ws, int64_t v0,
                          int64_t nv, int64_t dh) {
  ForwardSumsVectors(g, w, Op, Op, ws, v0, v0 + nv, dh, dh + 1);
}

constexpr bool kForwardByKernelRow = VL == 16;

// Rows [begin, end) in blocks of up to `images` whole images (a partial
// image at either end of the range is a block of its own), each channel
// block of NV vectors over all the block's images in turn, as
// ForwardBlockChannels does for one.
template <int NV, int P>
void ForwardImages(const Geometry& g, const float* x, const float* wp, const float* ws, int64_t Op, float* y,
                   int64_t begin, int64_t end, int64_t v_begin, int64_t v_end, int64_t images,
                   float* own_sums) {
  // As many padded-row buffers as the range has images (and partial images
  // at its ends), at most `images` (166 KB an image to zero for 7x7x512,
  // 460 KB for 14x14x512 /2).
  const int64_t spans = (end - 1) / g.OH - begin / g.OH + 1;
  std::vector<PaddedRows> pads;
  pads.reserve(std::min(images, spans));
  for (int64_t k = 0; k < std::min(images, spans); ++k) pads.emplace_back(g, PaddedRows::WholeImageBytes(g));
  struct Part { int64_t b, i0, i1; };
  std::vector<Part> parts;
  const int64_t tiles_per_row = (g.OW + P - 1) / P;
  std::vector<ForwardTile<NV, P>> tiles;
  for (int64_t r0 = begin; r0 < end;) {
    parts.clear();
    do {
      const int64_t b = r0 / g.OH, i0 = r0 % g.OH;
      const int64_t i1 = std::min<int64_t>({g.OH, i0 + pads[0].block, i0 + end - r0});
      pads[parts.size()].Fill(g, x, b, i0, i1);
      parts.push_back({b, i0, i1});
      r0 += i1 - i0;
    } while (r0 < end && parts.size() < pads.size() && parts.back().i0 == 0 &&
             parts.back().i1 == g.OH && r0 % g.OH == 0 && end - r0 >= g.OH);
    int64_t v0 = v_begin;
    // Kernel row by kernel row over all the block's rows (ForwardRowKernelRow).
    int64_t nrows = 0;
    for (const Part& q : parts) nrows += q.i1 - q.i0;
    tiles.resize(nrows * tiles_per_row);
    const bool fill = own_sums != nullptr && r0 - nrows == begin;  // the first block
    // Kernel row by kernel row with AVX-512 only: an AVX2 build (measured on
    // Zen 4) ran 14x14x256 and 7x7x512 3x3 at 1.28x and 1.06-1.08x the CPU
    // time so; there each block of vectors goes over the rows whole as before.
    for (; !kForwardByKernelRow && v0 + NV <= v_end; v0 += NV) {
      if (fill)
        for (int64_t dh = 0; dh < g.kh; ++dh) KernelRowSums(g, wp, Op, own_sums, v0, NV, dh);
      for (size_t k = 0; k < parts.size(); ++k)
        ForwardBlock<NV, P>(g, pads[k], wp, ws, Op, y, parts[k].b, parts[k].i0, parts[k].i1, v0);
    }
    for (; v0 + NV <= v_end; v0 += NV)
      for (int64_t dh = 0; dh < g.kh; ++dh) {
        // The sums of this kernel row's weights, which the rows below then
        // find in cache (own_sums: no pass of their own over w before).
        if (fill) KernelRowSums(g, wp, Op, own_sums, v0, NV, dh);
        ForwardTile<NV, P>* t = tiles.data();
        for (size_t k = 0; k < parts.size(); ++k)
          for (int64_t i = parts[k].i0; i < parts[k].i1; ++i, t += tiles_per_row)
            ForwardRowKernelRow<NV, P>(g, pads[k].Row(g, i, dh), dh, wp, ws, Op, y, parts[k].b, i,
                                       v0, t);
      }
    if (fill)
      for (int64_t dh = 0; dh < g.kh; ++dh) KernelRowSums(g, wp, Op, own_sums, v0, v_end - v0, dh);
    for (; v0 < v_end; ++v0)
      for (size_t k = 0; k < parts.size(); ++k)
        ForwardBlock<1, FWD_P_SMALL>(g, pads[k], wp, ws, Op, y, parts[k].b, parts[k].i0,
                                     parts[k].i1, v0);
  }
}
}  // namespace

namespace {
// Rows a multiple of 7 wide but not of 4 (7, 14, 21: ResNet's last two
// stages) with AVX-512: the forward's 7 x 3 tiles.
bool SevenWide(const Geometry& g) { return VL == 16 && g.OW % FWD_P_LARGE != 0 && g.OW % 7 == 0; }

// Whole images a forward block, given the output rows of its padded-row
// budget: several where a block holds a whole image and the weights outgrow
// the block budget (7x7x512 3x3: 9.4 MB of weights, 166 KB of padded rows an
// image), else 1. Up to kMultiImages, whatever the image's bytes, where the
// 7 x 3 tiles' channel block, its weights over all K taps (885 KB for
// 3x3x512) with one image's padded rows, outgrows kL2Bytes: then run kernel
// row by kernel row, each kernel row's weights (295 KB) read once for 4
// images' rows instead of the three kernel rows' once per output row
// (whether they then come from L2 was not measured: this VM has no hardware
// counters). On Zen 4, kernels alone, 2 threads
// (bench/results/amd_epyc_zen4_2026-12-06/kernels_ab_images_bac2a72.txt):
// 14x14x512 -> 512 /2 (one 460 KB image a block before) 0.78-0.85 of the
// time at batch 4, 8 and 32; 7x7x512 -> 512 (3 images a block before)
// 0.90-0.96 at batch 4 to 32 with w in place, 0.98-1.00 with w's rows padded
// (the op at batch 32); the layers that keep their blocks 0.99-1.04 (one
// noisy run each). Forced into such blocks, 30x30x128 -> 256 /2 (221 + 430
// KB) ran 1.07-1.08x and 28x28x128 -> 128 1.03-1.05x slower, so they keep
// theirs; 8 or 16 images a block read 0.70-0.95 of the old time against
// 0.80-0.92 for 4 (kernels_ab_trials_2026-12-07.txt), but the op's ranges of rows at batch
// 32 hold 4 images on 2 threads (checks_2026-12-07.txt), so more would
// need other ranges (not tried).
int64_t ImagesPerBlock(const Geometry& g, int64_t Op, int64_t block_rows) {
  const int64_t image_bytes = PaddedRows::ImageBytes(g);
  if (block_rows < g.OH || g.kh * g.kw * g.C * Op * 4 <= kBlockBytes) return 1;
  if (kForwardByKernelRow && SevenWide(g) && g.kh * g.kw * g.C * 3 * VL * 4 + image_bytes > kL2Bytes)
    return kMultiImages;
  return std::min<int64_t>(kMultiImages, kMultiImageBytes / image_bytes);
}
}  // namespace

bool ForwardSumsAsItGoes(const Geometry& g) {
  const int64_t Op = (g.O + VL - 1) / VL * VL;
  return g.kh * g.kw > 1 && Op / VL >= 4 &&
         ImagesPerBlock(g, Op, PaddedRows::BlockRows(g, kBlockBytes)) > 1;
}

void ForwardRows(const Geometry& g, const float* x, const float* wp, int64_t Op, float* y,
                 int64_t begin, int64_t end, int64_t group, int64_t groups,
                 const float* sums, bool own_sums) {
  const int64_t nvec = Op / VL;
  // Group boundaries on multiples of kForwardGroupVectors, the widest block.
  const int64_t nblk = (nvec + kForwardGroupVectors - 1) / kForwardGroupVectors;
  const int64_t v_begin = std::min(nvec, nblk * group / groups * kForwardGroupVectors);
  const int64_t v_end = std::min(nvec, nblk * (group + 1) / groups * kForwardGroupVectors);
  // own_sums: the sums of this call's channels, here (the blocks of whole
  // images compute each kernel row's as they reach it).
  // (Vectors: the kernels read the sums as aligned vectors.)
  std::vector<vf> own_vectors(own_sums ? ForwardSumRows(g) * Op / VL : 0, vf{});
  float* own = reinterpret_cast<float*>(own_vectors.data());
  const float* ws = own_sums ? own : sums != nullptr ? sums : wp + g.kh * g.kw * g.C * Op;
  const auto pack_own = [&] {
    if (own_sums) PackForwardSums(g, wp, Op, own, v_begin * VL, v_end * VL);
  };
  if (g.kh == 1 && g.kw == 1) {
    pack_own();
    return Forward1x1Rows(g, x, wp, ws, Op, y, begin, end, v_begin, v_end);
  }
  // A whole image a block where the range holds more than one image, the
  // weights outgrow kBlockBytes and the image's padded rows fit
  // kMultiImageBytes (14x14x512 -> 512 at stride 2: 460 KB, blocks of 3 of
  // its 7 output rows before): on Zen 4, 0.64-0.77 of the CPU time at batch
  // 32; at batch 1 (one image a thread, half the channels each) 1.19, so not
  // there.
  const int64_t pad_bytes = end - begin > g.OH && g.kh * g.kw * g.C * Op * 4 > kBlockBytes
                                ? PaddedRows::WholeImageBytes(g)
                                : kBlockBytes;
  // Whole images a block (ImagesPerBlock): each channel block's weights are
  // then read once for all of them. Same sums in the same order.
  // (ForwardImages makes its own padded rows: none made here for it.)
  const int64_t images = ImagesPerBlock(g, Op, PaddedRows::BlockRows(g, pad_bytes));
  float* fill = own_sums ? own : nullptr;
  if (images > 1 && nvec >= 4 && SevenWide(g))
    return ForwardImages<3, 7>(g, x, wp, ws, Op, y, begin, end, v_begin, v_end, images, fill);
  if (images > 1 && nvec >= 4)
    return ForwardImages<4, FWD_P_LARGE>(g, x, wp, ws, Op, y, begin, end, v_begin, v_end, images,
                                         fill);
  pack_own();
  PaddedRows padded(g, pad_bytes);
  for (int64_t r0 = begin; r0 < end;) {
    const int64_t b = r0 / g.OH, i0 = r0 % g.OH;
    const int64_t i1 = std::min<int64_t>({g.OH, i0 + padded.block, i0 + end - r0});
    padded.Fill(g, x, b, i0, i1);
    if (nvec >= 4 && SevenWide(g))
      // Rows a multiple of 7 wide but not of 4 (7, 14, 21: ResNet's last two
      // stages): a 4-wide tile would compute 8 or 16 of 7 or 14. 7 x 3 vectors fit the registers now
      // that x is not broadcast into one (min_bcast); on Zen 4 against 7 x 2,
      // 7x7x512 and 14x14x256 3x3: 0.91-0.94 of the CPU time (kernels_ab).
      ForwardBlockChannels<3, 7>(g, padded, wp, ws, Op, y, b, i0, i1, v_begin, v_end);
    else if (nvec >= 4)
      ForwardBlockChannels<4, FWD_P_LARGE>(g, padded, wp, ws, Op, y, b, i0, i1, v_begin, v_end);
    else if (nvec == 3)
      ForwardBlockChannels<3, FWD_P_LARGE>(g, padded, wp, ws, Op, y, b, i0, i1, v_begin, v_end);
    else if (nvec == 2)
      ForwardBlockChannels<2, FWD_P_SMALL>(g, padded, wp, ws, Op, y, b, i0, i1, v_begin, v_end);
    else if (VL == 16 && g.C * g.s == kFixedCS)  // 16 accumulators need AVX-512's 32 registers
      ForwardBlock<1, kFixedP>(g, padded, wp, ws, Op, y, b, i0, i1, 0);
    else
      ForwardBlockChannels<1, FWD_P_SMALL>(g, padded, wp, ws, Op, y, b, i0, i1, v_begin, v_end);
    r0 += i1 - i0;
  }
}

void PackInputGradWeights(const Geometry& g, const float* w, int64_t Cp, float* wt,
                          int64_t cv_begin, int64_t cv_end) {
  if (cv_end < 0) cv_end = Cp / VL;
  const int64_t slab = g.kh * g.kw * g.O * VL;  // floats per channel vector
  std::memset(wt + cv_begin * slab, 0, (cv_end - cv_begin) * slab * sizeof(float));
  const int64_t c_end = std::min(g.C, cv_end * VL);
  for (int64_t dh = 0; dh < g.kh; ++dh)
    for (int64_t dw = 0; dw < g.kw; ++dw)
      for (int64_t c = cv_begin * VL; c < c_end; ++c)
        for (int64_t o = 0; o < g.O; ++o)
          wt[(((c / VL * g.kh + dh) * g.kw + g.kw - 1 - dw) * g.O + o) * VL + c % VL] =
              w[((dh * g.kw + dw) * g.C + c) * g.O + o];
}

void ColumnSumRows(const float* a, int64_t C, double* acc, int64_t begin, int64_t end) {
  // Float partial sums over at most 64 rows, then added in double.
  std::vector<float> part(C);
  for (int64_t r0 = begin; r0 < end; r0 += 64) {
    std::fill(part.begin(), part.end(), 0.0f);
    const int64_t r1 = std::min(end, r0 + 64);
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = a + r * C;
#pragma GCC ivdep
      for (int64_t c = 0; c < C; ++c) part[c] += row[c];
    }
    for (int64_t c = 0; c < C; ++c) acc[c] += part[c];
  }
}

void InputGradRows(const Geometry& g, const float* xq, int64_t Cp, const float* wt,
                   const float* dy, const float* zeros, float* dxq, double* dy_sum,
                   int64_t begin, int64_t end) {
  const int64_t ncv = Cp / VL;
  const int64_t block = GradBlockRows(g);
  PaddedGradRows padded(g, g.s == 1 ? block : 0);
  std::vector<const float*> drows(g.kh);
  // Blocks of input rows [u0, u1) within one image (b, rows h0 .. h1 - 1).
  for (int64_t u0 = begin; u0 < end;) {
    const int64_t b = u0 / g.H, h0 = u0 % g.H;
    const int64_t h1 = std::min<int64_t>({g.H, h0 + block, h0 + end - u0});
    if (dy_sum != nullptr) {
      // Output rows whose first input row (i * s - pt clamped to 0) is in the block.
      for (int64_t i = 0; i < g.OH; ++i) {
        const int64_t h = std::max<int64_t>(i * g.s - g.pt, 0);
        if (h >= h0 && h < h1) ColumnSumRows(dy + (b * g.OH + i) * g.OW * g.O, g.O, dy_sum, 0, g.OW);
      }
    }
    if (g.s == 1) {
      padded.Fill(g, dy, b, h0, h1);
      for (int64_t cv = 0; cv < ncv; ++cv)
        for (int64_t h = h0; h < h1; ++h) {
          for (int64_t dh = 0; dh < g.kh; ++dh) drows[dh] = padded.Row(g, h, dh);
          if (VL == 16 && g.W % BWD_P != 0 && g.W % 7 == 0)
            // Rows a multiple of 7 wide but not of 8 (7, 14, 21, 28: ResNet's
            // last three stages): 8-wide tiles would compute up to 8 - 1 extra
            // columns a row. Same sums, same order.
            InputGradRowS1<7>(g, xq, Cp, wt, drows.data(), dxq, b, h, cv);
          else
            InputGradRowS1<BWD_P>(g, xq, Cp, wt, drows.data(), dxq, b, h, cv);
        }
    } else {
      for (int64_t cv = 0; cv < ncv; ++cv)
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t r = 0; r < g.s; ++r)
            InputGradRow<BWD_P>(g, xq, Cp, wt, dy, zeros, dxq, b, h, r, cv);
    }
    u0 += h1 - h0;
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
