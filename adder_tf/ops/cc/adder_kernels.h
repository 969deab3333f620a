// The adder compute kernels, free of TensorFlow and Eigen headers.
//
// adder_kernels.cc is compiled on its own with the best -march this CPU
// accepts (see adder_tf/ops/adder_fast.py): TensorFlow's bundled Eigen does
// not compile with every -march (GCC 12 fails on Eigen's AVX512-FP16 code),
// and keeping it out of this translation unit means the vector ISA of the
// kernels never depends on it. adder_ops.cc (the TensorFlow glue: shapes,
// buffers, thread pool) includes only this header from here.
#ifndef ADDER_TF_ADDER_KERNELS_H_
#define ADDER_TF_ADDER_KERNELS_H_

#include <cstdint>

namespace adder_tf {

// Geometry of one call: NHWC input (B, H, W, C), kernel (kh, kw, C, O),
// stride s, output (B, OH, OW, O), top/left zero padding (pt, pl).
struct Geometry {
  int64_t B, H, W, C, O, kh, kw, s, OH, OW, pt, pl;
};

// Floats per vector in the kernels (16 with AVX-512, 8 otherwise).
int VectorWidth();
// The vector ISA the kernels were compiled for: "avx512", "avx2", "avx",
// "sse4.2", "sse2", "neon" or "generic".
const char* IsaName();

// Forward. PackForwardWeights writes w as (K, Op), Op = O rounded up to
// VectorWidth(), zero filled, then the ForwardSumRows(g) rows of sums: one
// row of sum_k w, kh rows of the sum over (kw, C) of min(0, w) (a kernel row
// wholly in the padding), kh * kw rows of the sum over C of min(0, w) (one
// kernel column of a kernel row in the padding at a row's end);
// ForwardPackedRows(g) * Op floats in all;
// ForwardRows computes output rows [begin, end) of the flattened (B * OH)
// rows, output channels of group `group` of `groups` (whole blocks of
// vectors; groups = 1: all of them). ForwardChannelGroups says into how many
// groups to split the channels so that `threads` threads each get work when
// there are few rows (a 7x7 layer at batch 1 has 7): 1 when rows suffice,
// else at least one a thread where the channels allow it.
int64_t ForwardSumRows(const Geometry& g);
int64_t ForwardPackedRows(const Geometry& g);
void PackForwardWeights(const Geometry& g, const float* w, int64_t Op, float* wp);
// Its rows [k_begin, k_end) of w alone (each Op floats, zero after c_out), so
// that threads can each copy a range of rows.
void PackForwardRows(const Geometry& g, const float* w, int64_t Op, float* wp, int64_t k_begin,
                     int64_t k_end);
// The last ForwardSumRows(g) rows of PackForwardWeights's alone, into sums
// (ForwardSumRows(g) * Op floats): ForwardRows reads them from there when given `sums`, and then
// reads w's rows from wp as they are, (K, Op) with row stride Op (w itself
// when O = Op and w is 64-byte aligned: nothing to copy).
// o_begin, o_end: only those columns (o_end < 0: up to Op; o_begin a
// multiple of VectorWidth()), so that threads can each pack a range of output
// channels (each column is summed in the same order whatever the ranges).
void PackForwardSums(const Geometry& g, const float* w, int64_t Op, float* sums,
                     int64_t o_begin = 0, int64_t o_end = -1);
int64_t ForwardChannelGroups(const Geometry& g, int threads);
// own_sums (w read in place, Op = O): `sums` is ignored and each call sums
// its own channels' weights (bit for bit PackForwardSums's), so that no pass
// over w precedes the threads' work (0.3-0.5 ms on one thread for
// 3x3x512x512). ForwardSumsAsItGoes says where that costs no pass of its
// own (blocks of whole images: each kernel row's sums as the rows reach it);
// elsewhere each call packs its channels' sums first.
bool ForwardSumsAsItGoes(const Geometry& g);
void ForwardRows(const Geometry& g, const float* x, const float* wp, int64_t Op, float* y,
                 int64_t begin, int64_t end, int64_t group = 0, int64_t groups = 1,
                 const float* sums = nullptr, bool own_sums = false);

// Input gradient. PackInputGradWeights writes w as (Cp / VL, kh, kw, O, VL),
// VL = VectorWidth(), the kernel columns in reverse order, Cp = C rounded up
// to VL, channel padding zero;
// xq/dxq are (B, H, W, Cp), 64-byte aligned; InputGradRows computes input
// rows [begin, end) of the flattened (B * H) rows. zeros: O + VL zero
// floats. dy_sum (nullable, O doubles): adds the sums over positions of the
// rows of dy that these input rows are the first to read, so that the
// ranges of one call add up to sum dy over (B, OH, OW) (the filter
// gradient's rank-one term) without another pass over dy.
// cv_begin, cv_end: only those channel vectors (cv_end < 0: up to Cp / VL),
// each a contiguous slab of wt, so that threads can pack ranges of them.
void PackInputGradWeights(const Geometry& g, const float* w, int64_t Cp, float* wt,
                          int64_t cv_begin = 0, int64_t cv_end = -1);
void InputGradRows(const Geometry& g, const float* xq, int64_t Cp, const float* wt,
                   const float* dy, const float* zeros, float* dxq, double* dy_sum,
                   int64_t begin, int64_t end);
// acc[C] += the sums of the rows [begin, end) of the (rows, C) matrix a.
void ColumnSumRows(const float* a, int64_t C, double* acc, int64_t begin, int64_t end);

// PKKD's heads and feature loss, fused into single passes (float32 data,
// float64 sums). Ranges are element indices [begin, end) for the maps and
// row indices of a (rows, C) matrix for the moments.
//   ExpMap:      g = exp(min(c * z, limit))
//   ExpMapGrad:  dz = dg * g * c where c * z <= limit (else 0), returns
//                sum(dg * g * z) over the same elements (the gradient of c)
//   Moments:     acc[5 * C] += per-channel sums of s, t, s*s, t*t, s*t
//   MomentsGrad: ds = coef[0] + coef[1] * (s - coef[2]) + coef[3] * (t - coef[4]),
//                coef rows of C floats
void ExpMapRange(const float* z, float c, float limit, float* g, int64_t begin, int64_t end);
double ExpMapGradRange(const float* z, const float* g, const float* dg, float c, float limit,
                       float* dz, int64_t begin, int64_t end);
void MomentRows(const float* s, const float* t, int64_t C, double* acc, int64_t begin,
                int64_t end);
void MomentsGradRows(const float* s, const float* t, int64_t C, const float* coef, float* ds,
                     int64_t begin, int64_t end);

}  // namespace adder_tf

#endif  // ADDER_TF_ADDER_KERNELS_H_
