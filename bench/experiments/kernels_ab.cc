// The adder kernels of two commits in one process, alternated round by round
// (so the machine's state affects both alike): forward and input-gradient
// throughput (G terms/s, medians of rounds) and the median of new/old time,
// on ResNet-20's and ResNet-18/50's shapes; outputs compared bit for bit.
//
//   bench/experiments/kernels_ab.sh OLD_COMMIT    # builds /tmp/kernels_ab
//   /tmp/kernels_ab BATCH THREADS [ROUNDS] [SHAPE_SUBSTRING] [fwd]
// "fwd": forward only. Besides wall-clock rates it prints the median ratio of
// the threads' CPU time (cpu new/old), which a busy machine's preemptions
// (other processes on the same cores) disturb less than wall-clock time, and
// the rates per thread-CPU second times the threads (old, new; forward and input gradient) (what the threads would
// do if they had their cores to themselves, caches and memory shared aside).
// Kernels over 1 MB read in place in blocks of whole images, more images than
// threads, are timed as the op runs them: the new side
// sums its own channels' weights inside ForwardRows (own_sums), the old side
// packs the sums first on the first range's thread (its CPU time counted;
// in the op the other threads also wait for it; here into a scratch copy, the
// rows reading one packed before). The old commit must have
// PackForwardSums (4c8abb2 and later).
// The ResNet-50 1x1 shapes are all listed (stage by stage, the stride-2
// projections included); batch 1 and 32 are what bench/imagenet_bench.py
// times forward only.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>
#include "adder_kernels.h"
#include "old_kernels.h"
struct Floats { float* p; explicit Floats(size_t n) : p((float*)std::aligned_alloc(64, (n*4+63)/64*64)) {} ~Floats(){std::free(p);} };
static double ThreadCpu() { timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
// Wall seconds per call; *cpu: the threads' CPU seconds per call, summed.
template <class Fn> double Secs(int threads, int64_t rows, Fn fn, int calls, double* cpu) {
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  std::vector<double> used(threads);
  for (int i = 0; i < threads; ++i) pool.emplace_back([&, i] { const double c0 = ThreadCpu(); for (int c = 0; c < calls; ++c) fn(rows*i/threads, rows*(i+1)/threads); used[i] = ThreadCpu() - c0; });
  for (auto& t : pool) t.join();
  *cpu = 0; for (double u : used) *cpu += u / calls;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / calls;
}
// Units [begin, end) of (group, row) pairs, group-major: fn(r0, r1, group) per group's run of rows.
template <class Fn> void Units(int64_t rows, int64_t begin, int64_t end, Fn fn) {
  for (int64_t u = begin; u < end;) { const int64_t q = u / rows, r0 = u % rows, r1 = std::min(rows, r0 + end - u); fn(r0, r1, q); u += r1 - r0; }
}
static double med(std::vector<double> v){ std::sort(v.begin(), v.end()); return v[v.size()/2]; }
int main(int argc, char** argv) {
  const int64_t B = std::atoi(argv[1]); const int threads = std::atoi(argv[2]); const int rounds = argc > 3 ? std::atoi(argv[3]) : 7;
  struct Shape { const char* name; int64_t H, C, O, k, s, p, oh = 0; };  // oh: output rows when not (H + 2p - k) / s + 1
  std::vector<Shape> shapes = {{"c1_32x32x16_16", 32, 16, 16, 3, 1, 1}, {"c2_16x16x32_32", 16, 32, 32, 3, 1, 1}, {"c3_8x8x64_64", 8, 64, 64, 3, 1, 1},
    {"56x56x64_64_k3s1", 56, 64, 64, 3, 1, 1}, {"28x28x128_128_k3s1", 28, 128, 128, 3, 1, 1}, {"14x14x256_256_k3s1", 14, 256, 256, 3, 1, 1},
    {"7x7x512_512_k3s1", 7, 512, 512, 3, 1, 1}, {"58x58x64_128_k3s2", 58, 64, 128, 3, 2, 0}, {"30x30x128_256_k3s2", 30, 128, 256, 3, 2, 0}, {"16x16x256_512_k3s2", 16, 256, 512, 3, 2, 0},
    {"14x14x512_512_k3s2_same", 14, 512, 512, 3, 2, 0, 7}, {"14x14x256_512_k3s2_same", 14, 256, 512, 3, 2, 0, 7},
    {"56x56x64_256_k1s1", 56, 64, 256, 1, 1, 0}, {"56x56x256_64_k1s1", 56, 256, 64, 1, 1, 0}, {"7x7x2048_512_k1s1", 7, 2048, 512, 1, 1, 0}, {"7x7x512_2048_k1s1", 7, 512, 2048, 1, 1, 0},
    {"56x56x64_64_k1s1", 56, 64, 64, 1, 1, 0}, {"56x56x256_128_k1s1", 56, 256, 128, 1, 1, 0}, {"56x56x256_512_k1s2", 56, 256, 512, 1, 2, 0},
    {"28x28x128_512_k1s1", 28, 128, 512, 1, 1, 0}, {"28x28x512_128_k1s1", 28, 512, 128, 1, 1, 0}, {"28x28x512_256_k1s1", 28, 512, 256, 1, 1, 0}, {"28x28x512_1024_k1s2", 28, 512, 1024, 1, 2, 0},
    {"14x14x256_1024_k1s1", 14, 256, 1024, 1, 1, 0}, {"14x14x1024_256_k1s1", 14, 1024, 256, 1, 1, 0}, {"14x14x1024_512_k1s1", 14, 1024, 512, 1, 1, 0}, {"14x14x1024_2048_k1s2", 14, 1024, 2048, 1, 2, 0}};
  const bool fwd_only = argc > 5 && std::string(argv[5]) == "fwd";
  std::mt19937 gen(0); std::normal_distribution<float> normal;
  for (auto& sh : shapes) {
    if (argc > 4 && std::string(sh.name).find(argv[4]) == std::string::npos) continue;
    const int64_t OH = sh.oh ? sh.oh : (sh.H + 2*sh.p - sh.k)/sh.s + 1, KK = sh.k*sh.k;
    const adder_tf::Geometry g{B, sh.H, sh.H, sh.C, sh.O, sh.k, sh.k, sh.s, OH, OH, sh.p, sh.p};
    const adder_old::Geometry go{B, sh.H, sh.H, sh.C, sh.O, sh.k, sh.k, sh.s, OH, OH, sh.p, sh.p};
    // KAB_PAD_ROWS set: w's rows copied with one vector of padding each (the
    // op's pad_rows, 3x3 kernels over 1 MB at c_out a multiple of 512, 1024
    // output positions or more), on both sides.
    const int64_t VL = adder_tf::VectorWidth(), Cp = (g.C+VL-1)/VL*VL;
    const int64_t Op = (g.O+VL-1)/VL*VL + (std::getenv("KAB_PAD_ROWS") ? VL : 0);
    const size_t nx = B*g.H*g.W*Cp, ny = B*OH*OH*g.O;
    Floats x(nx), dx(nx), dx2(nx), y(ny), y2(ny), dy(ny), w(KK*g.C*g.O), wp(adder_tf::ForwardPackedRows(g)*Op), wpo(adder_tf::ForwardPackedRows(g)*Op), wt(KK*g.O*Cp), wto(KK*g.O*Cp), zeros(g.O+VL);
    for (size_t i = 0; i < nx; ++i) x.p[i] = normal(gen);
    for (size_t i = 0; i < ny; ++i) dy.p[i] = normal(gen);
    for (int64_t i = 0; i < KK*g.C*g.O; ++i) w.p[i] = 0.1f*normal(gen);
    std::fill(zeros.p, zeros.p+g.O+VL, 0.0f);
    adder_tf::PackForwardWeights(g, w.p, Op, wp.p); adder_old::PackForwardWeights(go, w.p, Op, wpo.p);
    // New: as the op does, w's rows read in place when c_out is a multiple of VL (only
    // the sums packed); old: w copied into the packed rows. The packing's milliseconds
    // a call, one thread, with the op's buffer (allocated and zeroed) on the old side.
    Floats sums(adder_tf::ForwardSumRows(g) * Op);
    const bool in_place = Op == g.O;
    const float* wnew = in_place ? w.p : wp.p;
    const float* snew = in_place ? sums.p : wp.p + KK * g.C * Op;
    // As the op: own sums for kernels over 1 MB read in place; the old side
    // reads w in place too and packs the sums (on the first range's thread).
    const bool own = in_place && KK * g.C * g.O * 4 >= (1 << 20) && adder_tf::ForwardSumsAsItGoes(g) && B > threads;
    // (Room for the sums of any commit: 1 + kh rows before bac2a72, 1 + kh + kh * kw since.)
    Floats sums_old((1 + sh.k + KK) * Op), scratch((1 + sh.k + KK) * Op);  // scratch: the timed packing's
    const float* wold = in_place ? w.p : wpo.p;
    const float* sold = in_place ? sums_old.p : wpo.p + KK * g.C * Op;
    if (in_place) adder_old::PackForwardSums(go, w.p, Op, sums_old.p);
    std::vector<double> pko, pkn;
    for (int r = 0; r < 5; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      { Floats buf(adder_old::ForwardPackedRows(go) * Op); std::memset(buf.p, 0, adder_old::ForwardPackedRows(go) * Op * 4); adder_old::PackForwardWeights(go, w.p, Op, buf.p); }
      auto t1 = std::chrono::steady_clock::now();
      if (in_place) adder_tf::PackForwardSums(g, w.p, Op, sums.p); else adder_tf::PackForwardWeights(g, w.p, Op, wp.p);
      auto t2 = std::chrono::steady_clock::now();
      pko.push_back(std::chrono::duration<double>(t1 - t0).count() * 1e3); pkn.push_back(std::chrono::duration<double>(t2 - t1).count() * 1e3);
    }
    adder_tf::PackInputGradWeights(g, w.p, Cp, wt.p); adder_old::PackInputGradWeights(go, w.p, Cp, wto.p);
    const double terms = (double)B*OH*OH*KK*g.C*g.O;
    const int calls = std::max(1, (int)(2e9 / terms));
    // The forward's work units as the op splits them: (channel group, row), group-major.
    const int64_t g_groups = adder_tf::ForwardChannelGroups(g, threads), go_groups = adder_old::ForwardChannelGroups(go, threads);
    std::vector<double> rf, rb, fn, fo, bn, bo, rc, rcb, fco, fcn, bco, bcn;
    for (int r = 0; r < rounds; ++r) {
      double ca, cc, cd = 1, cf = 1, d = 1, f = 1;
      double a = Secs(threads, B*OH*go_groups, [&](int64_t b, int64_t e){ if (own && b == 0) adder_old::PackForwardSums(go, w.p, Op, scratch.p); Units(B*OH, b, e, [&](int64_t r0, int64_t r1, int64_t q){ adder_old::ForwardRows(go, x.p, wold, Op, y2.p, r0, r1, q, go_groups, sold); }); }, calls, &ca);
      double c = Secs(threads, B*OH*g_groups, [&](int64_t b, int64_t e){ Units(B*OH, b, e, [&](int64_t r0, int64_t r1, int64_t q){ adder_tf::ForwardRows(g, x.p, wnew, Op, y.p, r0, r1, q, g_groups, snew, own); }); }, calls, &cc);
      if (!fwd_only) {
        d = Secs(threads, B*g.H, [&](int64_t b, int64_t e){ std::vector<double> s(g.O); adder_old::InputGradRows(go, x.p, Cp, wto.p, dy.p, zeros.p, dx2.p, s.data(), b, e); }, calls, &cd);
        f = Secs(threads, B*g.H, [&](int64_t b, int64_t e){ std::vector<double> s(g.O); adder_tf::InputGradRows(g, x.p, Cp, wt.p, dy.p, zeros.p, dx.p, s.data(), b, e); }, calls, &cf);
      }
      rf.push_back(c/a); rb.push_back(f/d); fo.push_back(terms/a/1e9); fn.push_back(terms/c/1e9); bo.push_back(terms/d/1e9); bn.push_back(terms/f/1e9);
      rc.push_back(cc/ca); rcb.push_back(cf/cd); fco.push_back(terms*threads/ca/1e9); fcn.push_back(terms*threads/cc/1e9);
      bco.push_back(terms*threads/cd/1e9); bcn.push_back(terms*threads/cf/1e9);
    }
    double maxdiff = 0; for (size_t i = 0; i < ny; ++i) maxdiff = std::max(maxdiff, (double)std::abs(y.p[i]-y2.p[i]));
    double maxdx = 0; for (size_t i = 0; i < nx; ++i) maxdx = std::max(maxdx, (double)std::abs(dx.p[i]-dx2.p[i]));
    if (fwd_only)
      std::printf("%-20s B%-3lld T%d fwd old %6.1f new %6.1f (new/old time %.3f, cpu %.3f) | per CPU second x threads: old %6.1f new %6.1f | pack ms old %.2f new %.2f%s | max|dy| %.1e\n", sh.name, (long long)B, threads, med(fo), med(fn), med(rf), med(rc), med(fco), med(fcn), med(pko), med(pkn), own ? " (own sums)" : "", maxdiff);
    else
      std::printf("%-20s B%-3lld T%d fwd old %6.1f new %6.1f (new/old time %.3f, cpu %.3f) | igrad old %6.1f new %6.1f (%.3f, cpu %.3f) | per CPU second x threads: fwd %6.1f %6.1f igrad %6.1f %6.1f | max|dy| %.1e max|dx| %.1e\n", sh.name, (long long)B, threads, med(fo), med(fn), med(rf), med(rc), med(bo), med(bn), med(rb), med(rcb), med(fco), med(fcn), med(bco), med(bcn), maxdiff, maxdx);
    std::fflush(stdout);
  }
}
