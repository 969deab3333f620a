// The adder kernels alone, outside TensorFlow: forward and input-gradient
// throughput on ResNet-20's stage shapes, one and two threads (each thread
// an equal range of rows, the same range 10 times), best of 7. What the kernels can do on this CPU
// with nothing of TF's around them (thread pool, allocator, other ops).
//
//   g++ -O3 -march=native -ffp-contract=fast -pthread -Iadder_tf/ops/cc \
//       bench/kernels_alone.cc adder_tf/ops/cc/adder_kernels.cc -o /tmp/kernels_alone
//   /tmp/kernels_alone 128           # batch; prints one JSON object per line
//   /tmp/kernels_alone 32 imagenet   # ResNet-18/50's large-channel shapes instead
//   /tmp/kernels_alone 1 imagenet 1  # one thread only
//
// Throughput in G terms/s, one term being one (position, tap, c_in, c_out).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "adder_kernels.h"

using adder_tf::Geometry;

namespace {

// 64-byte aligned floats (the input-gradient kernel loads whole vectors).
struct Floats {
  float* p;
  explicit Floats(size_t n) : p(static_cast<float*>(std::aligned_alloc(64, (n * 4 + 63) / 64 * 64))) {}
  ~Floats() { std::free(p); }
};

// Seconds per call, best of 7 timings of kCalls calls each: every thread runs
// its range kCalls times, so starting the threads is spread over kCalls calls.
constexpr int kCalls = 10;
template <class Fn>
double BestSeconds(int threads, int64_t rows, Fn fn) {
  double best = 1e9;
  for (int rep = 0; rep < 7; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i)
      pool.emplace_back([&, i] {
        for (int c = 0; c < kCalls; ++c) fn(rows * i / threads, rows * (i + 1) / threads);
      });
    for (auto& t : pool) t.join();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best / kCalls;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t B = argc > 1 ? std::atoi(argv[1]) : 128;
  const bool imagenet = argc > 2 && std::string(argv[2]) == "imagenet";
  const int only_threads = argc > 3 ? std::atoi(argv[3]) : 0;
  // H = W (input, padding included for the "valid" ones), C, O, kernel, stride, top/left pad.
  struct Shape { const char* name; int64_t H, C, O, k, s, p; };
  const std::vector<Shape> cifar = {{"stage1_32x32x16_16_k3s1", 32, 16, 16, 3, 1, 1},
                                    {"stage2_16x16x32_32_k3s1", 16, 32, 32, 3, 1, 1},
                                    {"stage3_8x8x64_64_k3s1", 8, 64, 64, 3, 1, 1}};
  const std::vector<Shape> large = {{"56x56x64_64_k3s1", 56, 64, 64, 3, 1, 1},
                                    {"28x28x128_128_k3s1", 28, 128, 128, 3, 1, 1},
                                    {"14x14x256_256_k3s1", 14, 256, 256, 3, 1, 1},
                                    {"7x7x512_512_k3s1", 7, 512, 512, 3, 1, 1},
                                    {"58x58x64_128_k3s2", 58, 64, 128, 3, 2, 0},
                                    {"16x16x256_512_k3s2", 16, 256, 512, 3, 2, 0},
                                    {"56x56x64_256_k1s1", 56, 64, 256, 1, 1, 0},
                                    {"56x56x256_64_k1s1", 56, 256, 64, 1, 1, 0},
                                    {"7x7x2048_512_k1s1", 7, 2048, 512, 1, 1, 0},
                                    {"7x7x512_2048_k1s1", 7, 512, 2048, 1, 1, 0}};
  const std::vector<Shape>& shapes = imagenet ? large : cifar;
  std::mt19937 gen(0);
  std::normal_distribution<float> normal;
  for (const Shape& sh : shapes) {
    const int64_t OH = (sh.H + 2 * sh.p - sh.k) / sh.s + 1;
    const Geometry g{B, sh.H, sh.H, sh.C, sh.O, sh.k, sh.k, sh.s, OH, OH, sh.p, sh.p};
    const int64_t KK = sh.k * sh.k;
    const int64_t VL = adder_tf::VectorWidth();
    const int64_t Op = (g.O + VL - 1) / VL * VL, Cp = (g.C + VL - 1) / VL * VL;
    const size_t nx = B * g.H * g.W * Cp, ny = B * g.OH * g.OW * g.O;
    Floats x(nx), dx(nx), y(ny), dy(ny), w(KK * g.C * g.O);
    Floats wp(adder_tf::ForwardPackedRows(g) * Op), wt(KK * g.O * Cp), zeros(g.O + VL);
    for (size_t i = 0; i < nx; ++i) x.p[i] = normal(gen);
    for (size_t i = 0; i < ny; ++i) dy.p[i] = normal(gen);
    for (int64_t i = 0; i < KK * g.C * g.O; ++i) w.p[i] = 0.1f * normal(gen);
    std::fill(zeros.p, zeros.p + g.O + VL, 0.0f);
    adder_tf::PackForwardWeights(g, w.p, Op, wp.p);
    adder_tf::PackInputGradWeights(g, w.p, Cp, wt.p);
    const double terms = static_cast<double>(B) * g.OH * g.OW * KK * g.C * g.O;
    for (int threads : {1, 2}) {
      if (only_threads && threads != only_threads) continue;
      const double fwd = BestSeconds(threads, B * g.OH, [&](int64_t b, int64_t e) {
        adder_tf::ForwardRows(g, x.p, wp.p, Op, y.p, b, e);
      });
      const double bin = BestSeconds(threads, B * g.H, [&](int64_t b, int64_t e) {
        std::vector<double> dy_sum(g.O, 0.0);
        adder_tf::InputGradRows(g, x.p, Cp, wt.p, dy.p, zeros.p, dx.p, dy_sum.data(), b, e);
      });
      std::printf("{\"shape\": \"%s\", \"batch\": %lld, \"isa\": \"%s\", \"threads\": %d, "
                  "\"forward_g_terms_s\": %.1f, \"input_grad_g_terms_s\": %.1f}\n",
                  sh.name, static_cast<long long>(B), adder_tf::IsaName(), threads,
                  terms / fwd / 1e9, terms / bin / 1e9);
    }
  }
  return 0;
}
