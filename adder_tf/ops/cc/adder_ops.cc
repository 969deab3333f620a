// Adder convolution (AdderNet) as TensorFlow CPU ops.
//
//   AdderTfConv2D:          y[b,i,j,o] = -sum_{dh,dw,c} |xpad[b,i*s+dh,j*s+dw,c] - w[dh,dw,c,o]|
//   AdderTfConv2DInputGrad: dx[b,h,v,c] = sum over the (i,j,dh,dw) whose window reads x[b,h,v,c]
//                                         of sum_o clip(w[dh,dw,c,o] - x[b,h,v,c], -1, 1) * dy[b,i,j,o]
//
// NHWC input, kernel (kh, kw, c_in, c_out), TensorFlow SAME/VALID padding
// (zero padding: padded taps contribute |0 - w| to the forward, as in the
// reference). The filter gradient is not here: it is a convolution's filter
// gradient minus a rank-one term, which TensorFlow already does well.
//
// Both kernels are written with GCC vector extensions (one vector = VL
// floats: 16 with AVX-512, 8 otherwise), keep a small tile of accumulators in
// registers and never build an im2col buffer:
//   forward:    tile = P output positions of one row x NV vectors of c_out;
//               inner loop over the K = kh*kw*c_in taps, w packed as (K, c_out).
//   input grad: gather form, tile = P input positions of one row (same
//               column residue mod stride, so they share the valid kernel
//               offsets) x one vector of c_in; inner loop over c_out, w packed
//               as (kh, kw, c_out, c_in). Each input position is written by
//               exactly one work item, so threads never race.
// Work is split over (image, row) with TensorFlow's intra-op thread pool.

#include <algorithm>
#if defined(__AVX__)
#include <immintrin.h>
#endif
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace adder_tf {

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::errors::InvalidArgument;
namespace shape_inference = tensorflow::shape_inference;

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

// a + b issued as fma(a, 1, b): on CPUs with separate add and FMA pipes
// (AMD Zen 4) this moves the subtraction off the add pipes, which the
// accumulation already keeps busy. Same rounding as a plain add.
static inline vf add_on_fma(vf a, vf b) {
#if defined(__AVX512F__)
  return (vf)_mm512_fmadd_ps((__m512)a, _mm512_set1_ps(1.0f), (__m512)b);
#elif defined(__FMA__)
  return (vf)_mm256_fmadd_ps((__m256)a, _mm256_set1_ps(1.0f), (__m256)b);
#else
  return a + b;
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

struct Geometry {
  int64_t B, H, W, C, O, kh, kw, s, OH, OW, pt, pl;
};

static tensorflow::Status MakeGeometry(const TensorShape& xs, const TensorShape& ws,
                                       int stride, const std::string& padding,
                                       Geometry* g) {
  if (xs.dims() != 4) return InvalidArgument("x must be rank 4 (NHWC), got ", xs.DebugString());
  if (ws.dims() != 4) return InvalidArgument("w must be rank 4 (kh, kw, c_in, c_out), got ", ws.DebugString());
  if (xs.dim_size(3) != ws.dim_size(2))
    return InvalidArgument("x has ", xs.dim_size(3), " channels but w expects ", ws.dim_size(2));
  if (stride < 1) return InvalidArgument("stride must be >= 1");
  g->B = xs.dim_size(0);
  g->H = xs.dim_size(1);
  g->W = xs.dim_size(2);
  g->C = xs.dim_size(3);
  g->kh = ws.dim_size(0);
  g->kw = ws.dim_size(1);
  g->O = ws.dim_size(3);
  g->s = stride;
  if (padding == "SAME") {
    g->OH = (g->H + stride - 1) / stride;
    g->OW = (g->W + stride - 1) / stride;
    int64_t th = std::max<int64_t>((g->OH - 1) * stride + g->kh - g->H, 0);
    int64_t tw = std::max<int64_t>((g->OW - 1) * stride + g->kw - g->W, 0);
    g->pt = th / 2;
    g->pl = tw / 2;
  } else {
    g->OH = g->H >= g->kh ? (g->H - g->kh) / stride + 1 : 0;
    g->OW = g->W >= g->kw ? (g->W - g->kw) / stride + 1 : 0;
    g->pt = g->pl = 0;
  }
  return tensorflow::OkStatus();
}

// 64-byte aligned scratch buffer.
struct Buffer {
  float* p = nullptr;
  explicit Buffer(int64_t n) {
    size_t bytes = ((std::max<int64_t>(n, 1) * sizeof(float)) + 63) / 64 * 64;
    p = static_cast<float*>(std::aligned_alloc(64, bytes));
    std::memset(p, 0, bytes);
  }
  ~Buffer() { std::free(p); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

static inline int64_t RoundUp(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// ---------------------------------------------------------------- forward

// One output row (b, i), output-channel vectors [v0, v0 + NV), all columns.
// wp: (K, Op) holding -w, Op = c_out rounded up to VL, zero filled.
template <int NV, int P>
static void ForwardRow(const Geometry& g, const float* x, const float* wp, int64_t Op,
                       const float* zeros, float* y, int64_t b, int64_t i, int64_t v0) {
  const int64_t C = g.C;
  for (int64_t j0 = 0; j0 < g.OW; j0 += P) {
    vf acc[P][NV];
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[p][v] = vf{};
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
            for (int v = 0; v < NV; ++v) acc[p][v] += vabs(add_on_fma(xb, wv[v]));
          }
        }
      }
    }
    for (int p = 0; p < P; ++p) {
      const int64_t j = j0 + p;
      if (j >= g.OW) break;
      float* yp = y + ((b * g.OH + i) * g.OW + j) * g.O;
      for (int v = 0; v < NV; ++v) {
        const int64_t o = (v0 + v) * VL;
        const vf r = -acc[p][v];
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

class AdderConv2DOp : public OpKernel {
 public:
  explicit AdderConv2DOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("stride", &stride_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("padding", &padding_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& xt = ctx->input(0);
    const Tensor& wt = ctx->input(1);
    Geometry g;
    OP_REQUIRES_OK(ctx, MakeGeometry(xt.shape(), wt.shape(), stride_, padding_, &g));
    Tensor* yt = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({g.B, g.OH, g.OW, g.O}), &yt));
    if (yt->NumElements() == 0) return;
    const int64_t K = g.kh * g.kw * g.C;
    const int64_t Op = RoundUp(g.O, VL);
    Buffer wp(K * Op);
    const float* w = wt.flat<float>().data();
    for (int64_t k = 0; k < K; ++k)
      for (int64_t o = 0; o < g.O; ++o) wp.p[k * Op + o] = -w[k * g.O + o];
    Buffer zeros(g.C + VL);
    const float* x = xt.flat<float>().data();
    float* y = yt->flat<float>().data();
    const int64_t nvec = Op / VL;

    auto work = [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / g.OH, i = r % g.OH;
        if (nvec >= 4)
          ForwardRowAllBlocks<4, FWD_P_LARGE>(g, x, wp.p, Op, zeros.p, y, b, i);
        else if (nvec == 3)
          ForwardRowAllBlocks<3, FWD_P_LARGE>(g, x, wp.p, Op, zeros.p, y, b, i);
        else if (nvec == 2)
          ForwardRowAllBlocks<2, FWD_P_SMALL>(g, x, wp.p, Op, zeros.p, y, b, i);
        else
          ForwardRowAllBlocks<1, FWD_P_SMALL>(g, x, wp.p, Op, zeros.p, y, b, i);
      }
    };
    const int64_t cost = std::max<int64_t>(g.OW * K * Op * 3, 1);
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(pool->num_threads, pool->workers, g.B * g.OH, cost, work);
  }

 private:
  int stride_;
  std::string padding_;
};

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
            const vf d = vmin(vmax(add_on_fma(wv, xr[p]), mone), one);
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

class AdderConv2DInputGradOp : public OpKernel {
 public:
  explicit AdderConv2DInputGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("stride", &stride_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("padding", &padding_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& xt = ctx->input(0);
    const Tensor& wt = ctx->input(1);
    const Tensor& dyt = ctx->input(2);
    Geometry g;
    OP_REQUIRES_OK(ctx, MakeGeometry(xt.shape(), wt.shape(), stride_, padding_, &g));
    OP_REQUIRES(ctx, dyt.shape() == TensorShape({g.B, g.OH, g.OW, g.O}),
                InvalidArgument("dy has shape ", dyt.shape().DebugString(), ", expected ",
                                TensorShape({g.B, g.OH, g.OW, g.O}).DebugString()));
    Tensor* dxt = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, xt.shape(), &dxt));
    if (dxt->NumElements() == 0) return;
    const int64_t Cp = RoundUp(g.C, VL);
    const float* x = xt.flat<float>().data();
    const float* w = wt.flat<float>().data();
    const float* dy = dyt.flat<float>().data();
    float* dx = dxt->flat<float>().data();

    // Kernel transposed to (kh, kw, O, Cp), channel padding zero.
    Buffer wtp(g.kh * g.kw * g.O * Cp);
    for (int64_t kk = 0; kk < g.kh * g.kw; ++kk)
      for (int64_t c = 0; c < g.C; ++c)
        for (int64_t o = 0; o < g.O; ++o)
          wtp.p[(kk * g.O + o) * Cp + c] = w[(kk * g.C + c) * g.O + o];
    Buffer zeros(g.O + VL);

    // Channel counts that are not a multiple of VL go through padded copies.
    bool padded = Cp != g.C;
    const int64_t npos = g.B * g.H * g.W;
    std::unique_ptr<Buffer> xbuf, dxbuf;
    const float* xq = x;
    float* dxq = dx;
    if (padded) {
      xbuf.reset(new Buffer(npos * Cp));
      dxbuf.reset(new Buffer(npos * Cp));
      for (int64_t n = 0; n < npos; ++n)
        std::memcpy(xbuf->p + n * Cp, x + n * g.C, g.C * sizeof(float));
      xq = xbuf->p;
      dxq = dxbuf->p;
    } else if (reinterpret_cast<uintptr_t>(x) % (VL * 4) ||
               reinterpret_cast<uintptr_t>(dx) % (VL * 4)) {
      // Vector loads/stores below assume alignment; TF buffers are 64-byte
      // aligned, but be safe.
      xbuf.reset(new Buffer(npos * Cp));
      dxbuf.reset(new Buffer(npos * Cp));
      std::memcpy(xbuf->p, x, npos * Cp * sizeof(float));
      xq = xbuf->p;
      dxq = dxbuf->p;
      padded = true;
    }
    const int64_t ncv = Cp / VL;

    auto work = [&](int64_t begin, int64_t end) {
      for (int64_t u = begin; u < end; ++u) {
        const int64_t b = u / g.H, h = u % g.H;
        for (int64_t cv = 0; cv < ncv; ++cv)
          for (int64_t r = 0; r < g.s; ++r)
            InputGradRow<BWD_P>(g, xq, Cp, wtp.p, dy, zeros.p, dxq, b, h, r, cv);
      }
    };
    const int64_t taps = (g.kh * g.kw + g.s * g.s - 1) / (g.s * g.s);
    const int64_t cost = std::max<int64_t>(g.W * Cp * g.O * taps * 4, 1);
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(pool->num_threads, pool->workers, g.B * g.H, cost, work);

    if (padded) {
      for (int64_t n = 0; n < npos; ++n)
        std::memcpy(dx + n * g.C, dxq + n * Cp, g.C * sizeof(float));
    }
  }

 private:
  int stride_;
  std::string padding_;
};

// ------------------------------------------------------------ registration

static tensorflow::Status OutputShape(shape_inference::InferenceContext* c) {
  shape_inference::ShapeHandle x, w;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &x));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 4, &w));
  int stride;
  std::string padding;
  TF_RETURN_IF_ERROR(c->GetAttr("stride", &stride));
  TF_RETURN_IF_ERROR(c->GetAttr("padding", &padding));
  auto out_dim = [&](shape_inference::DimensionHandle in, shape_inference::DimensionHandle k) {
    if (!c->ValueKnown(in) || !c->ValueKnown(k)) return c->UnknownDim();
    const int64_t n = c->Value(in), kk = c->Value(k);
    if (padding == "SAME") return c->MakeDim((n + stride - 1) / stride);
    return c->MakeDim(n >= kk ? (n - kk) / stride + 1 : 0);
  };
  c->set_output(0, c->MakeShape({c->Dim(x, 0), out_dim(c->Dim(x, 1), c->Dim(w, 0)),
                                 out_dim(c->Dim(x, 2), c->Dim(w, 1)), c->Dim(w, 3)}));
  return tensorflow::OkStatus();
}

REGISTER_OP("AdderTfConv2D")
    .Input("x: float")
    .Input("w: float")
    .Output("y: float")
    .Attr("stride: int >= 1")
    .Attr("padding: {'SAME', 'VALID'}")
    .SetShapeFn(OutputShape)
    .Doc("Adder convolution: y = -sum |x - w| over each window (NHWC).");

REGISTER_OP("AdderTfConv2DInputGrad")
    .Input("x: float")
    .Input("w: float")
    .Input("dy: float")
    .Output("dx: float")
    .Attr("stride: int >= 1")
    .Attr("padding: {'SAME', 'VALID'}")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(0));
      return tensorflow::OkStatus();
    })
    .Doc("AdderNet input gradient: dx = sum_o clip(w - x, -1, 1) * dy, scattered to inputs.");

REGISTER_KERNEL_BUILDER(Name("AdderTfConv2D").Device(DEVICE_CPU), AdderConv2DOp);
REGISTER_KERNEL_BUILDER(Name("AdderTfConv2DInputGrad").Device(DEVICE_CPU),
                        AdderConv2DInputGradOp);

}  // namespace adder_tf
