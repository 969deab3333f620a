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
// gradient minus a rank-one term, which TensorFlow already does well.
//
// The arithmetic lives in adder_kernels.cc, compiled separately with the
// best -march the CPU accepts; this file only checks shapes, packs buffers
// and splits work over (image, row) with TensorFlow's intra-op thread pool.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

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
    const int64_t VL = VectorWidth();
    const int64_t K = g.kh * g.kw * g.C;
    const int64_t Op = RoundUp(g.O, VL);
    Buffer wp((K + 1) * Op);
    PackForwardWeights(g, wt.flat<float>().data(), Op, wp.p);
    Buffer zeros(g.C + VL);
    const float* x = xt.flat<float>().data();
    float* y = yt->flat<float>().data();
    auto work = [&](int64_t begin, int64_t end) {
      ForwardRows(g, x, wp.p, Op, zeros.p, y, begin, end);
    };
    const int64_t cost = std::max<int64_t>(g.OW * K * Op * 3, 1);
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(pool->num_threads, pool->workers, g.B * g.OH, cost, work);
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
    if (dxt->NumElements() == 0) return;
    const int64_t VL = VectorWidth();
    const int64_t Cp = RoundUp(g.C, VL);
    const float* x = xt.flat<float>().data();
    const float* dy = dyt.flat<float>().data();
    float* dx = dxt->flat<float>().data();

    // Kernel transposed to (kh, kw, O, Cp), channel padding zero.
    Buffer wtp(g.kh * g.kw * g.O * Cp);
    PackInputGradWeights(g, wt.flat<float>().data(), Cp, wtp.p);
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
    auto work = [&](int64_t begin, int64_t end) {
      InputGradRows(g, xq, Cp, wtp.p, dy, zeros.p, dxq, begin, end);
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
