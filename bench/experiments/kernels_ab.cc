// The adder kernels of two commits in one process, alternated round by round
// (so the machine's state affects both alike): forward and input-gradient
// throughput (G terms/s, medians of rounds) and the median of new/old time,
// on ResNet-20's and ResNet-18/50's shapes; outputs compared bit for bit.
//
//   bench/experiments/kernels_ab.sh OLD_COMMIT    # builds /tmp/kernels_ab
//   /tmp/kernels_ab BATCH THREADS [ROUNDS] [SHAPE_SUBSTRING]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>
#include "adder_kernels.h"
#include "old_kernels.h"
struct Floats { float* p; explicit Floats(size_t n) : p((float*)std::aligned_alloc(64, (n*4+63)/64*64)) {} ~Floats(){std::free(p);} };
template <class Fn> double Secs(int threads, int64_t rows, Fn fn, int calls) {
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back([&, i] { for (int c = 0; c < calls; ++c) fn(rows*i/threads, rows*(i+1)/threads); });
  for (auto& t : pool) t.join();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / calls;
}
static double med(std::vector<double> v){ std::sort(v.begin(), v.end()); return v[v.size()/2]; }
int main(int argc, char** argv) {
  const int64_t B = std::atoi(argv[1]); const int threads = std::atoi(argv[2]); const int rounds = argc > 3 ? std::atoi(argv[3]) : 7;
  struct Shape { const char* name; int64_t H, C, O, k, s, p; };
  std::vector<Shape> shapes = {{"c1_32x32x16_16", 32, 16, 16, 3, 1, 1}, {"c2_16x16x32_32", 16, 32, 32, 3, 1, 1}, {"c3_8x8x64_64", 8, 64, 64, 3, 1, 1},
    {"56x56x64_64_k3s1", 56, 64, 64, 3, 1, 1}, {"28x28x128_128_k3s1", 28, 128, 128, 3, 1, 1}, {"14x14x256_256_k3s1", 14, 256, 256, 3, 1, 1},
    {"7x7x512_512_k3s1", 7, 512, 512, 3, 1, 1}, {"58x58x64_128_k3s2", 58, 64, 128, 3, 2, 0}, {"16x16x256_512_k3s2", 16, 256, 512, 3, 2, 0},
    {"56x56x64_256_k1s1", 56, 64, 256, 1, 1, 0}, {"56x56x256_64_k1s1", 56, 256, 64, 1, 1, 0}, {"7x7x2048_512_k1s1", 7, 2048, 512, 1, 1, 0}, {"7x7x512_2048_k1s1", 7, 512, 2048, 1, 1, 0}};
  std::mt19937 gen(0); std::normal_distribution<float> normal;
  for (auto& sh : shapes) {
    if (argc > 4 && std::string(sh.name).find(argv[4]) == std::string::npos) continue;
    const int64_t OH = (sh.H + 2*sh.p - sh.k)/sh.s + 1, KK = sh.k*sh.k;
    const adder_tf::Geometry g{B, sh.H, sh.H, sh.C, sh.O, sh.k, sh.k, sh.s, OH, OH, sh.p, sh.p};
    const adder_old::Geometry go{B, sh.H, sh.H, sh.C, sh.O, sh.k, sh.k, sh.s, OH, OH, sh.p, sh.p};
    const int64_t VL = adder_tf::VectorWidth(), Op = (g.O+VL-1)/VL*VL, Cp = (g.C+VL-1)/VL*VL;
    const size_t nx = B*g.H*g.W*Cp, ny = B*OH*OH*g.O;
    Floats x(nx), dx(nx), dx2(nx), y(ny), y2(ny), dy(ny), w(KK*g.C*g.O), wp(adder_tf::ForwardPackedRows(g)*Op), wpo(adder_tf::ForwardPackedRows(g)*Op), wt(KK*g.O*Cp), wto(KK*g.O*Cp), zeros(g.O+VL);
    for (size_t i = 0; i < nx; ++i) x.p[i] = normal(gen);
    for (size_t i = 0; i < ny; ++i) dy.p[i] = normal(gen);
    for (int64_t i = 0; i < KK*g.C*g.O; ++i) w.p[i] = 0.1f*normal(gen);
    std::fill(zeros.p, zeros.p+g.O+VL, 0.0f);
    adder_tf::PackForwardWeights(g, w.p, Op, wp.p); adder_old::PackForwardWeights(go, w.p, Op, wpo.p);
    adder_tf::PackInputGradWeights(g, w.p, Cp, wt.p); adder_old::PackInputGradWeights(go, w.p, Cp, wto.p);
    const double terms = (double)B*OH*OH*KK*g.C*g.O;
    const int calls = std::max(1, (int)(2e9 / terms));
    std::vector<double> rf, rb, fn, fo, bn, bo;
    for (int r = 0; r < rounds; ++r) {
      double a = Secs(threads, B*OH, [&](int64_t b, int64_t e){ adder_old::ForwardRows(go, x.p, wpo.p, Op, y2.p, b, e); }, calls);
      double c = Secs(threads, B*OH, [&](int64_t b, int64_t e){ adder_tf::ForwardRows(g, x.p, wp.p, Op, y.p, b, e); }, calls);
      double d = Secs(threads, B*g.H, [&](int64_t b, int64_t e){ std::vector<double> s(g.O); adder_old::InputGradRows(go, x.p, Cp, wto.p, dy.p, zeros.p, dx2.p, s.data(), b, e); }, calls);
      double f = Secs(threads, B*g.H, [&](int64_t b, int64_t e){ std::vector<double> s(g.O); adder_tf::InputGradRows(g, x.p, Cp, wt.p, dy.p, zeros.p, dx.p, s.data(), b, e); }, calls);
      rf.push_back(c/a); rb.push_back(f/d); fo.push_back(terms/a/1e9); fn.push_back(terms/c/1e9); bo.push_back(terms/d/1e9); bn.push_back(terms/f/1e9);
    }
    double maxdiff = 0; for (size_t i = 0; i < ny; ++i) maxdiff = std::max(maxdiff, (double)std::abs(y.p[i]-y2.p[i]));
    double maxdx = 0; for (size_t i = 0; i < nx; ++i) maxdx = std::max(maxdx, (double)std::abs(dx.p[i]-dx2.p[i]));
    std::printf("%-20s B%-3lld T%d fwd old %6.1f new %6.1f (new/old time %.3f) | igrad old %6.1f new %6.1f (%.3f) | max|dy| %.1e max|dx| %.1e\n", sh.name, (long long)B, threads, med(fo), med(fn), med(rf), med(bo), med(bn), med(rb), maxdiff, maxdx);
    std::fflush(stdout);
  }
}
