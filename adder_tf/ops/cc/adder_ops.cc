// Adder convolution (AdderNet) as TensorFlow CPU ops: the TensorFlow glue.
//
//   AdderTfConv2D:          y[b,i,j,o] = -sum_{dh,dw,c} |xpad[b,i*s+dh,j*s+dw,c] - w[dh,dw,c,o]|
//   AdderTfConv2DInputGrad: dx[b,h,v,c] = sum over the (i,j,dh,dw) whose window reads x[b,h,v,c]
//                                         of sum_o clip(w[dh,dw,c,o] - x[b,h,v,c], -1, 1) * dy[b,i,j,o]
//   AdderTfBuildInfo:       the vector ISA and width the kernels were compiled for.
//
// NHWC input, kernel (kh, kw, c_in, c_out), TensorFlow SAME/VALID padding
// (zero padding: padded taps contribute |0 - w| to the forward, as in the
// reference). The filter gradient is not here: it is a convolution's filter
// gradient minus w times the sum of dy, which TensorFlow already does well;
// the input-gradient op gives that sum of dy as its second output.
//
// The arithmetic lives in adder_kernels.cc, compiled separately with the
// best -march the CPU accepts; this file only checks shapes, packs buffers
// and splits work over (image, row) with TensorFlow's intra-op thread pool.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "adder_kernels.h"
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

// 64-byte aligned scratch buffer, zero filled unless `zero` is false (for
// buffers that are written whole anyway).
struct Buffer {
  float* p = nullptr;
  explicit Buffer(int64_t n, bool zero = true) {
    size_t bytes = ((std::max<int64_t>(n, 1) * sizeof(float)) + 63) / 64 * 64;
    p = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (zero) std::memset(p, 0, bytes);
  }
  ~Buffer() { std::free(p); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

static inline int64_t RoundUp(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// Packing a kernel of `bytes`: fn over ranges of [0, n) on the pool's threads
// where the kernel is large enough to be worth waking them (1 MB: a 3x3x512x512
// kernel is 9.4 MB), else fn(0, n) on this thread.
static void PackOnThreads(OpKernelContext* ctx, int64_t n, int64_t bytes,
                          const std::function<void(int64_t, int64_t)>& fn) {
  if (bytes < (1 << 20)) return fn(0, n);
  auto* pool = ctx->device()->tensorflow_cpu_worker_threads();
  tensorflow::Shard(pool->num_threads, pool->workers, n, 1 << 20, fn);
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
    if (g.C == 0) {  // no input channels: every sum is empty
      yt->flat<float>().setZero();
      return;
    }
    const int64_t VL = VectorWidth();
    const int64_t K = g.kh * g.kw * g.C;
    // Rows of packed weights a multiple of 2 KB apart (c_out 512, 1024,
    // 2048) put a block of output-channel vectors into few of the L2's sets
    // (8-way, 2048 sets of 64 B on Zen 4: a 3-vector block in 3/32 of them,
    // 96 KB for its 885 KB of 3x3x512 weights), so the block cannot stay in
    // L2 from one tile to the next. Above 1 MB of weights and with 1024
    // output positions or more (between the batch-8 and batch-32 positions
    // of ResNet's 7x7 layers; not tuned) they are copied with one vector of
    // padding a row (the extra channels compute values that are not stored:
    // 1/32 more work at c_out 512). On Zen 4 against 38ecf72 in one process
    // (bench/results/amd_epyc_zen4_2026-12-06/op_ab_38ecf72_pad_rows.txt):
    // batch 32 0.89-0.96 of the time for 14x14x512 /2, 0.94-1.02 for 7x7x512
    // (within the noise); at batch 1 the copy cost more than it saved
    // (1.19-1.44). 1x1 layers keep reading w in place (not measured so).
    const bool pad_rows = g.kh * g.kw > 1 && RoundUp(g.O, VL) % 512 == 0 &&
                          K * g.O * 4 >= (1 << 20) && g.B * g.OH * g.OW >= 1024;
    const int64_t Op = RoundUp(g.O, VL) + (pad_rows ? VL : 0);
    // w's rows are read in place where they are already what the packing
    // would write (c_out a multiple of VL, w 64-byte aligned): only the
    // sums are packed. Copying a 3x3x512x512 kernel (9.4 MB) took about as
    // long as the 7x7 layer's sums at batch 1.
    const float* w = wt.flat<float>().data();
    const bool in_place = Op == g.O && reinterpret_cast<uintptr_t>(w) % (VL * 4) == 0;
    // Kernels over 1 MB read in place, in blocks of whole images: each call
    // of ForwardRows (a thread's range of rows, or one channel group) sums
    // its channels' weights as it reaches them, kernel row by kernel row
    // (own_sums), so w is read from memory with the rows, not in a pass of
    // its own first. 7x7x512 -> 512 on Zen 4, 87a341f against 12fca07 in one
    // process (bench/results/amd_epyc_zen4_2026-12-06/op_ab_87a341f_12fca07.txt):
    // batch 1 0.815 of the time with w in cache, 0.947 with w from memory
    // (8 kernels in turn), batch 32 0.989.
    // Elsewhere the sums are packed first, the threads each a range of
    // channels.
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads();
    const bool own_sums = in_place && K * g.O * 4 >= (1 << 20) && ForwardSumsAsItGoes(g);
    // A packed copy is written whole (its rows, then the sums), not zeroed first.
    Buffer wp_buf(own_sums ? 0 : in_place ? (ForwardPackedRows(g) - K) * Op : ForwardPackedRows(g) * Op,
                  in_place);
    const float* wp = in_place ? w : wp_buf.p;
    float* sums = in_place ? wp_buf.p : wp_buf.p + K * Op;
    if (!in_place)  // on the threads: ranges of rows
      PackOnThreads(ctx, K, K * g.O * 4, [&](int64_t k0, int64_t k1) {
        PackForwardRows(g, w, Op, wp_buf.p, k0, k1);
      });
    if (!own_sums)  // then ranges of channels
      PackOnThreads(ctx, Op / VL, K * g.O * 4, [&](int64_t v0, int64_t v1) {
        PackForwardSums(g, w, Op, sums, v0 * VL, v1 * VL);
      });
    const float* x = xt.flat<float>().data();
    float* y = yt->flat<float>().data();
    // Work units: (channel group, row), group-major; one group unless the rows
    // are too few to keep every thread busy.
    const int64_t rows = g.B * g.OH;
    const int64_t groups = ForwardChannelGroups(g, pool->num_threads);
    auto work = [&](int64_t begin, int64_t end) {
      for (int64_t u = begin; u < end;) {
        const int64_t group = u / rows, r0 = u % rows;
        const int64_t r1 = std::min(rows, r0 + end - u);
        ForwardRows(g, x, wp, Op, y, r0, r1, group, groups, sums, own_sums);
        u += r1 - r0;
      }
    };
    // Channel groups (few rows), at least one a thread: one group a call, all
    // its rows, so that each group's sums and padded rows are made once.
    // Adaptive sharding cut 7x7x512's 14 units at batch 1 into calls across
    // groups and rows; one group a call took 0.74 of the op's time with w in
    // cache, 0.81 from memory (Zen 4, bench/results/amd_epyc_zen4_2026-12-06/
    // op_ab_12fca07_groups.txt).
    if (groups > 1 && groups >= pool->num_threads)
      return pool->workers->ParallelFor(
          rows * groups, tensorflow::thread::ThreadPool::SchedulingParams::Fixed(rows), work);
    const int64_t cost = std::max<int64_t>(g.OW * K * Op * 3 / groups, 1);
    tensorflow::Shard(pool->num_threads, pool->workers, rows * groups, cost, work);
  }

 private:
  int stride_;
  std::string padding_;
};

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
    Tensor* dy_sum_t = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({g.O}), &dy_sum_t));
    float* dy_sum_out = dy_sum_t->flat<float>().data();
    std::fill(dy_sum_out, dy_sum_out + g.O, 0.0f);
    if (dxt->NumElements() == 0) return;
    if (g.O == 0) {  // no output channels: nothing flows back
      dxt->flat<float>().setZero();
      return;
    }
    const int64_t VL = VectorWidth();
    const int64_t Cp = RoundUp(g.C, VL);
    const float* x = xt.flat<float>().data();
    const float* dy = dyt.flat<float>().data();
    float* dx = dxt->flat<float>().data();

    // Kernel transposed to (Cp / VL, kh, kw, O, VL), channel padding zero,
    // in ranges of channel vectors over the threads (a 3x3x512x512 kernel's:
    // 1.7-2.8 ms on one thread); every float of it is written.
    Buffer wtp(g.kh * g.kw * g.O * Cp, /*zero=*/false);
    PackOnThreads(ctx, Cp / VL, g.kh * g.kw * g.O * Cp * 4, [&](int64_t cv0, int64_t cv1) {
      PackInputGradWeights(g, wt.flat<float>().data(), Cp, wtp.p, cv0, cv1);
    });
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
    // Each range sums its share of dy in double; the shares are added in
    // row order afterwards, so the sum does not depend on which thread ends first.
    std::vector<std::pair<int64_t, std::vector<double>>> parts;
    std::mutex parts_mu;
    auto work = [&](int64_t begin, int64_t end) {
      std::vector<double> part(g.O, 0.0);
      InputGradRows(g, xq, Cp, wtp.p, dy, zeros.p, dxq, part.data(), begin, end);
      std::lock_guard<std::mutex> lock(parts_mu);
      parts.emplace_back(begin, std::move(part));
    };
    const int64_t taps = (g.kh * g.kw + g.s * g.s - 1) / (g.s * g.s);
    const int64_t cost = std::max<int64_t>(g.W * Cp * g.O * taps * 4, 1);
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(pool->num_threads, pool->workers, g.B * g.H, cost, work);

    if (padded) {
      for (int64_t n = 0; n < npos; ++n)
        std::memcpy(dx + n * g.C, dxq + n * Cp, g.C * sizeof(float));
    }
    std::sort(parts.begin(), parts.end());
    std::vector<double> dy_sum(g.O, 0.0);
    for (const auto& part : parts)
      for (int64_t o = 0; o < g.O; ++o) dy_sum[o] += part.second[o];
    for (int64_t o = 0; o < g.O; ++o) dy_sum_out[o] = static_cast<float>(dy_sum[o]);
  }

 private:
  int stride_;
  std::string padding_;
};

// ------------------------------------------------------------ PKKD heads
//
// Fused single passes for the heads and the feature loss (see
// adder_tf/ops/fused.py): the kernel map g = exp(min(c z, limit)) and its
// gradient, per-channel moments of two features and their gradient. Work is
// split over fixed blocks and block partials are added in block order, so
// the sums do not depend on the thread count.

static constexpr int64_t kMapBlock = 16384;   // elements
static constexpr int64_t kRowBlock = 512;     // rows of C channels

static void ShardBlocks(OpKernelContext* ctx, int64_t nblocks, int64_t cost,
                        const std::function<void(int64_t, int64_t)>& work) {
  auto* pool = ctx->device()->tensorflow_cpu_worker_threads();
  tensorflow::Shard(pool->num_threads, pool->workers, nblocks, cost, work);
}

class ExpMapOp : public OpKernel {
 public:
  explicit ExpMapOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("limit", &limit_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& z = ctx->input(0);
    const Tensor& c = ctx->input(1);
    OP_REQUIRES(ctx, c.NumElements() == 1, InvalidArgument("c must be a scalar"));
    Tensor* g = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, z.shape(), &g));
    const int64_t n = z.NumElements();
    const float cv = c.flat<float>()(0);
    const float* zp = z.flat<float>().data();
    float* gp = g->flat<float>().data();
    ShardBlocks(ctx, (n + kMapBlock - 1) / kMapBlock, kMapBlock * 20,
                [&](int64_t b0, int64_t b1) {
                  ExpMapRange(zp, cv, limit_, gp, b0 * kMapBlock,
                              std::min(n, b1 * kMapBlock));
                });
  }
 private:
  float limit_;
};

class ExpMapGradOp : public OpKernel {
 public:
  explicit ExpMapGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("limit", &limit_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& z = ctx->input(0);
    const Tensor& g = ctx->input(1);
    const Tensor& dg = ctx->input(2);
    const Tensor& c = ctx->input(3);
    OP_REQUIRES(ctx, c.NumElements() == 1, InvalidArgument("c must be a scalar"));
    OP_REQUIRES(ctx, g.shape() == z.shape() && dg.shape() == z.shape(),
                InvalidArgument("z, g and dg must have one shape"));
    Tensor* dz = nullptr;
    Tensor* dc = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, z.shape(), &dz));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, c.shape(), &dc));
    const int64_t n = z.NumElements();
    const int64_t nblocks = (n + kMapBlock - 1) / kMapBlock;
    std::vector<double> part(std::max<int64_t>(nblocks, 1), 0.0);
    const float cv = c.flat<float>()(0);
    const float* zp = z.flat<float>().data();
    const float* gp = g.flat<float>().data();
    const float* dgp = dg.flat<float>().data();
    float* dzp = dz->flat<float>().data();
    ShardBlocks(ctx, nblocks, kMapBlock * 8, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b)
        part[b] = ExpMapGradRange(zp, gp, dgp, cv, limit_, dzp, b * kMapBlock,
                                  std::min(n, (b + 1) * kMapBlock));
    });
    double total = 0.0;
    for (double v : part) total += v;
    dc->flat<float>()(0) = static_cast<float>(total);
  }
 private:
  float limit_;
};

static tensorflow::Status RowsAndChannels(const Tensor& s, const Tensor& t, int64_t* rows,
                                          int64_t* C) {
  if (s.dims() < 1) return InvalidArgument("features must have a channel axis");
  if (s.shape() != t.shape())
    return InvalidArgument("the two features differ in shape: ", s.shape().DebugString(),
                           " and ", t.shape().DebugString());
  *C = s.dim_size(s.dims() - 1);
  *rows = *C ? s.NumElements() / *C : 0;
  return tensorflow::OkStatus();
}

class MomentsOp : public OpKernel {
 public:
  explicit MomentsOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& s = ctx->input(0);
    const Tensor& t = ctx->input(1);
    int64_t rows, C;
    OP_REQUIRES_OK(ctx, RowsAndChannels(s, t, &rows, &C));
    Tensor* m = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({5, C}), &m));
    const int64_t nblocks = (rows + kRowBlock - 1) / kRowBlock;
    std::vector<double> part(std::max<int64_t>(nblocks, 1) * 5 * C, 0.0);
    const float* sp = s.flat<float>().data();
    const float* tp = t.flat<float>().data();
    ShardBlocks(ctx, nblocks, kRowBlock * C * 8, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b)
        MomentRows(sp, tp, C, part.data() + b * 5 * C, b * kRowBlock,
                   std::min(rows, (b + 1) * kRowBlock));
    });
    double* out = m->flat<double>().data();
    for (int64_t k = 0; k < 5 * C; ++k) out[k] = 0.0;
    for (int64_t b = 0; b < nblocks; ++b)
      for (int64_t k = 0; k < 5 * C; ++k) out[k] += part[b * 5 * C + k];
  }
};

class MomentsGradOp : public OpKernel {
 public:
  explicit MomentsGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& s = ctx->input(0);
    const Tensor& t = ctx->input(1);
    const Tensor& coef = ctx->input(2);
    int64_t rows, C;
    OP_REQUIRES_OK(ctx, RowsAndChannels(s, t, &rows, &C));
    OP_REQUIRES(ctx, coef.shape() == TensorShape({5, C}),
                InvalidArgument("coef must be (5, channels), got ", coef.shape().DebugString()));
    Tensor* ds = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, s.shape(), &ds));
    const int64_t nblocks = (rows + kRowBlock - 1) / kRowBlock;
    const float* sp = s.flat<float>().data();
    const float* tp = t.flat<float>().data();
    const float* cp = coef.flat<float>().data();
    float* dp = ds->flat<float>().data();
    ShardBlocks(ctx, nblocks, kRowBlock * C * 4, [&](int64_t b0, int64_t b1) {
      MomentsGradRows(sp, tp, C, cp, dp, b0 * kRowBlock, std::min(rows, b1 * kRowBlock));
    });
  }
};

REGISTER_OP("AdderTfExpMap")
    .Input("z: float")
    .Input("c: float")
    .Output("g: float")
    .Attr("limit: float")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(0));
      return tensorflow::OkStatus();
    })
    .Doc("PKKD kernel map: g = exp(min(c * z, limit)), c a scalar.");

REGISTER_OP("AdderTfExpMapGrad")
    .Input("z: float")
    .Input("g: float")
    .Input("dg: float")
    .Input("c: float")
    .Output("dz: float")
    .Output("dc: float")
    .Attr("limit: float")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(3));
      return tensorflow::OkStatus();
    })
    .Doc("Gradient of AdderTfExpMap: dz = dg g c where c z <= limit, dc = sum(dg g z) there.");

REGISTER_OP("AdderTfMoments")
    .Input("s: float")
    .Input("t: float")
    .Output("m: double")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle s;
      TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 1, &s));
      c->set_output(0, c->Matrix(5, c->Dim(s, -1)));
      return tensorflow::OkStatus();
    })
    .Doc("Per-channel sums of s, t, s*s, t*t, s*t over all leading axes, in float64.");

REGISTER_OP("AdderTfMomentsGrad")
    .Input("s: float")
    .Input("t: float")
    .Input("coef: float")
    .Output("ds: float")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(0));
      return tensorflow::OkStatus();
    })
    .Doc("ds = coef[0] + coef[1] (s - coef[2]) + coef[3] (t - coef[4]), per channel.");

REGISTER_KERNEL_BUILDER(Name("AdderTfExpMap").Device(DEVICE_CPU), ExpMapOp);
REGISTER_KERNEL_BUILDER(Name("AdderTfExpMapGrad").Device(DEVICE_CPU), ExpMapGradOp);
REGISTER_KERNEL_BUILDER(Name("AdderTfMoments").Device(DEVICE_CPU), MomentsOp);
REGISTER_KERNEL_BUILDER(Name("AdderTfMomentsGrad").Device(DEVICE_CPU), MomentsGradOp);

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
    .Output("dy_sum: float")
    .Attr("stride: int >= 1")
    .Attr("padding: {'SAME', 'VALID'}")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->Vector(c->Dim(c->input(1), 3)));
      return tensorflow::OkStatus();
    })
    .Doc("AdderNet input gradient: dx = sum_o clip(w - x, -1, 1) * dy, scattered to inputs; "
         "dy_sum = sum of dy over (batch, rows, columns), for the filter gradient.");

class AdderBuildInfoOp : public OpKernel {
 public:
  explicit AdderBuildInfoOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    Tensor* isa = nullptr;
    Tensor* width = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &isa));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({}), &width));
    isa->scalar<tensorflow::tstring>()() = IsaName();
    width->scalar<int32_t>()() = VectorWidth();
  }
};

REGISTER_OP("AdderTfBuildInfo")
    .Output("isa: string")
    .Output("vector_width: int32")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      c->set_output(0, c->Scalar());
      c->set_output(1, c->Scalar());
      return tensorflow::OkStatus();
    })
    .Doc("The vector ISA and float width the adder kernels were compiled for.");

REGISTER_KERNEL_BUILDER(Name("AdderTfConv2D").Device(DEVICE_CPU), AdderConv2DOp);
REGISTER_KERNEL_BUILDER(Name("AdderTfConv2DInputGrad").Device(DEVICE_CPU),
                        AdderConv2DInputGradOp);
REGISTER_KERNEL_BUILDER(Name("AdderTfBuildInfo").Device(DEVICE_CPU), AdderBuildInfoOp);

}  // namespace adder_tf
