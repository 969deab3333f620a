// The ops' per-call packing of a large kernel on one thread (the input
// gradient's buffer zeroed, then written) and in ranges of vectors on
// `threads` threads (started per call here, a pool's in the op; the buffer
// written once): the input gradient's is packed so now; the forward's sums,
// memory-bound, were no faster so (3x3x512x512 on Zen 4: 0.44-0.48 ms on one
// thread, 0.49-0.50 on each of two) and are summed inside ForwardRows
// instead. Alternated round by round: milliseconds a call, medians, as the
// longest thread's CPU time (what the call takes where every thread
// has a core; on a loaded machine, waiting for one dominates the wall time,
// printed last).
//
//   g++ -O3 -march=native -ffp-contract=fast -std=c++17 -pthread -Iadder_tf/ops/cc \
//       bench/experiments/pack_ab.cc adder_tf/ops/cc/adder_kernels.cc -o /tmp/pack_ab
//   /tmp/pack_ab [THREADS] [ROUNDS]     # 3x3x512 -> 512 and 1x1 2048 -> 512
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <thread>
#include <vector>
#include "adder_kernels.h"
using adder_tf::Geometry;
static double ThreadCpuMs() { timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec * 1e3 + 1e-6 * t.tv_nsec; }
static double wall_ms;  // of the last OnThreads call
// fn over `threads` ranges of [0, n), one a thread: the longest thread's CPU ms.
template <class Fn> static double OnThreads(int threads, int64_t n, Fn fn) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<double> cpu(threads);
  auto run = [&](int i) { const double c0 = ThreadCpuMs(); fn(n * i / threads, n * (i + 1) / threads); cpu[i] = ThreadCpuMs() - c0; };
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back(run, i);
  run(0);
  for (auto& t : pool) t.join();
  wall_ms = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() * 1e3;
  return *std::max_element(cpu.begin(), cpu.end());
}
static double med(std::vector<double> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; }
int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2, rounds = argc > 2 ? std::atoi(argv[2]) : 21;
  const int64_t VL = adder_tf::VectorWidth();
  for (const Geometry& g : {Geometry{1, 7, 7, 512, 512, 3, 3, 1, 7, 7, 1, 1},
                            Geometry{1, 7, 7, 2048, 512, 1, 1, 1, 7, 7, 0, 0}}) {
    const int64_t K = g.kh * g.kw * g.C, Op = (g.O + VL - 1) / VL * VL, Cp = (g.C + VL - 1) / VL * VL;
    float* w = static_cast<float*>(std::aligned_alloc(64, K * g.O * 4));
    for (int64_t i = 0; i < K * g.O; ++i) w[i] = (i % 97) * 0.01f - 0.4f;
    std::vector<double> so, sn, io, in, wn;
    for (int r = 0; r < rounds; ++r) {
      std::vector<float> s(adder_tf::ForwardSumRows(g) * Op);
      so.push_back(OnThreads(1, 1, [&](int64_t, int64_t) { adder_tf::PackForwardSums(g, w, Op, s.data()); }));
      sn.push_back(OnThreads(threads, Op / VL, [&](int64_t a, int64_t b) { adder_tf::PackForwardSums(g, w, Op, s.data(), a * VL, b * VL); }));
      const size_t bytes = K * g.O * 4 / g.C * Cp;
      float* wt = static_cast<float*>(std::aligned_alloc(64, bytes));
      io.push_back(OnThreads(1, 1, [&](int64_t, int64_t) { std::memset(wt, 0, bytes); adder_tf::PackInputGradWeights(g, w, Cp, wt); }));
      in.push_back(OnThreads(threads, Cp / VL, [&](int64_t a, int64_t b) { adder_tf::PackInputGradWeights(g, w, Cp, wt, a, b); }));
      wn.push_back(wall_ms);
      std::free(wt);
    }
    std::printf("%lldx%lldx%lld -> %lld: forward sums ms old %.2f new %.2f | input-grad packing ms old %.2f new %.2f (T%d; its wall ms %.2f)\n",
                (long long)g.kh, (long long)g.kw, (long long)g.C, (long long)g.O, med(so), med(sn), med(io), med(in), threads, med(wn));
    std::free(w);
  }
}
