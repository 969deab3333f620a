// The most this CPU can issue of each vector-op mix the kernels use, with no
// memory traffic and no loop overhead worth counting: the ceiling against
// which the kernels' rates (bench/kernels_alone.cc) and oneDNN's (the conv
// columns of bench/op_profile.py) are read. x86-64 with AVX-512F/DQ only
// (the loops are written in assembly so that the compiler can neither fold
// nor spill anything).
//
//   g++ -O2 -march=native -pthread bench/vector_peak.cc -o /tmp/vector_peak
//   /tmp/vector_peak          # one JSON object per line
//
// Mixes, per (position, tap, c_in, c_out) term of 16 lanes:
//   fma            1 op  (a convolution's inner loop)
//   min_add        2 ops (the adder forward: |x - w| = x + w - 2 min(x, w))
//   add_range_fma  3 ops (the adder input gradient: clip(w - x) * dy)
//   min_fma        2 ops (min_add with the accumulation issued as fma(m, 1, acc):
//                  the same sum, on the FMA pipes where a CPU has separate ones)
//   forward_loop   the adder forward's stage-1 inner loop as g++ compiled
//                  it for the 8-position tile used before the 16-position one
//                  (8 positions x 16 channels: one weight load, 8 broadcast
//                  loads, 8 min, 8 add per tap), loads from L1, 48 taps a pass
// 12 independent accumulators each (8 for forward_loop, as in the kernel).
// G terms/s = 16 lanes x terms per second, summed over the threads; best of 5
// timings. The clock is not read (no counters): the rates are what they are.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

namespace {

#define CLOBBER_ACC "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", \
                    "zmm9", "zmm10", "zmm11"
#define CLOBBER_X "zmm12", "zmm13", "zmm14", "zmm15", "zmm16", "zmm17", "zmm18", "zmm19", \
                  "zmm20", "zmm21", "zmm22", "zmm23"
// Accumulators start at 0 and inputs at 1.0 (set from zmm24 after it is
// loaded), so no lane holds a denormal or NaN left over from elsewhere.
#define Z(a) "vxorps %%zmm" #a ", %%zmm" #a ", %%zmm" #a "\n\t"
#define ZERO_ACC Z(0) Z(1) Z(2) Z(3) Z(4) Z(5) Z(6) Z(7) Z(8) Z(9) Z(10) Z(11)
#define O(x) "vmovaps %%zmm24, %%zmm" #x "\n\t"
#define ONE_X O(12) O(13) O(14) O(15) O(16) O(17) O(18) O(19) O(20) O(21) O(22) O(23)
#define FMA(a) "vfmadd231ps %%zmm24, %%zmm26, %%zmm" #a "\n\t"
#define MINADD(a, x, t) "vminps %%zmm" #x ", %%zmm24, %%zmm" #t "\n\t" \
                        "vaddps %%zmm" #t ", %%zmm" #a ", %%zmm" #a "\n\t"
#define MINFMA(a, x, t) "vminps %%zmm" #x ", %%zmm24, %%zmm" #t "\n\t" \
                        "vfmadd231ps %%zmm25, %%zmm" #t ", %%zmm" #a "\n\t"
// The twelve accumulators of one pass, each with its own input register, then the loop.
#define TWELVE(M) "1:\n\t" M(0, 12, 27) M(1, 13, 28) M(2, 14, 29) M(3, 15, 30) M(4, 16, 31) \
                  M(5, 17, 27) M(6, 18, 28) M(7, 19, 29) M(8, 20, 30) M(9, 21, 31)       \
                  M(10, 22, 27) M(11, 23, 28) "dec %[n]\n\tjnz 1b\n\t"
#define ARF(a, x, t) "vaddps %%zmm" #x ", %%zmm24, %%zmm" #t "\n\t"                  \
                     "vrangeps $2, %%zmm26, %%zmm" #t ", %%zmm" #t "\n\t"            \
                     "vfmadd231ps %%zmm25, %%zmm" #t ", %%zmm" #a "\n\t"
#define BMA(p, a) "vbroadcastss (%[x" #p "],%%rax,4), %%zmm26\n\t"                    \
                  "vminps %%zmm25, %%zmm26, %%zmm26\n\t"                              \
                  "vaddps %%zmm26, %%zmm" #a ", %%zmm" #a "\n\t"

const float kOne = 1.0f;
constexpr int64_t kTaps = 48;                            // stage 1: kw * c_in
float g_x[8 * 16 + kTaps] __attribute__((aligned(64)));  // 8 positions, 16 floats apart
float g_w[kTaps * 16] __attribute__((aligned(64)));

// Terms per pass of each mix (16 lanes each).
constexpr int64_t kTermsPerIter[5] = {12, 12, 12, 8 * kTaps, 12};

void Run(int mix, int64_t iters) {
  if (mix == 0) {
    asm volatile("vbroadcastss %[one], %%zmm26\n\tvmovaps %%zmm26, %%zmm24\n\t" ZERO_ACC
                 "1:\n\t" FMA(0) FMA(1) FMA(2) FMA(3) FMA(4) FMA(5) FMA(6) FMA(7) FMA(8)
                 FMA(9) FMA(10) FMA(11) "dec %[n]\n\tjnz 1b\n\t"
                 : [n] "+r"(iters) : [one] "m"(kOne)
                 : CLOBBER_ACC, "zmm24", "zmm26", "cc");
  } else if (mix == 1) {
    asm volatile("vbroadcastss %[one], %%zmm24\n\t" ZERO_ACC ONE_X
                 TWELVE(MINADD)
                 : [n] "+r"(iters) : [one] "m"(kOne)
                 : CLOBBER_ACC, CLOBBER_X, "zmm24", "zmm27", "zmm28", "zmm29", "zmm30",
                   "zmm31", "cc");
  } else if (mix == 2) {
    asm volatile("vbroadcastss %[one], %%zmm26\n\tvmovaps %%zmm26, %%zmm24\n\t"
                 "vmovaps %%zmm26, %%zmm25\n\t" ZERO_ACC ONE_X
                 "1:\n\t" ARF(0, 12, 27) ARF(1, 13, 28) ARF(2, 14, 29) ARF(3, 15, 30)
                 ARF(4, 16, 31) ARF(5, 17, 27) ARF(6, 18, 28) ARF(7, 19, 29) ARF(8, 20, 30)
                 ARF(9, 21, 31) ARF(10, 22, 27) ARF(11, 23, 28) "dec %[n]\n\tjnz 1b\n\t"
                 : [n] "+r"(iters) : [one] "m"(kOne)
                 : CLOBBER_ACC, CLOBBER_X, "zmm24", "zmm25", "zmm26", "zmm27", "zmm28",
                   "zmm29", "zmm30", "zmm31", "cc");
  } else if (mix == 4) {  // min_add with the add issued as fma(min, 1, acc)
    asm volatile("vbroadcastss %[one], %%zmm24\n\tvmovaps %%zmm24, %%zmm25\n\t" ZERO_ACC ONE_X
                 TWELVE(MINFMA)
                 : [n] "+r"(iters) : [one] "m"(kOne)
                 : CLOBBER_ACC, CLOBBER_X, "zmm24", "zmm25", "zmm27", "zmm28", "zmm29",
                   "zmm30", "zmm31", "cc");
  } else {
    for (int64_t it = 0; it < iters; ++it) {
      asm volatile("xor %%rax, %%rax\n\tmov %[w], %%rdx\n\t"
                   Z(16) Z(17) Z(18) Z(19) Z(20) Z(21) Z(22) Z(23)
                   "1:\n\t"
                   "vmovaps (%%rdx), %%zmm25\n\tadd $64, %%rdx\n\t"
                   BMA(0, 16) BMA(1, 17) BMA(2, 18) BMA(3, 19) BMA(4, 20) BMA(5, 21)
                   BMA(6, 22) BMA(7, 23)
                   "inc %%rax\n\tcmp %%rax, %[taps]\n\tjne 1b\n\t"
                   :
                   : [w] "r"(g_w), [taps] "r"(kTaps), [x0] "r"(g_x), [x1] "r"(g_x + 16),
                     [x2] "r"(g_x + 32), [x3] "r"(g_x + 48), [x4] "r"(g_x + 64),
                     [x5] "r"(g_x + 80), [x6] "r"(g_x + 96), [x7] "r"(g_x + 112)
                   : "rax", "rdx", "zmm16", "zmm17", "zmm18", "zmm19", "zmm20", "zmm21",
                     "zmm22", "zmm23", "zmm25", "zmm26", "cc", "memory");
    }
  }
}

}  // namespace

int main() {
  for (int i = 0; i < 8 * 16 + kTaps; ++i) g_x[i] = 0.25f * (i % 7);
  for (int i = 0; i < kTaps * 16; ++i) g_w[i] = 0.5f * (i % 5);
  const char* names[5] = {"fma", "min_add", "add_range_fma", "forward_loop", "min_fma"};
  const int ops[5] = {1, 2, 3, 2, 2};
  const int64_t terms_per_thread = 4000000000LL / 16;  // ~0.1-0.3 s per timing
  for (int threads = 1; threads <= 2; ++threads) {
    for (int mix = 0; mix < 5; ++mix) {
      const int64_t iters = terms_per_thread / kTermsPerIter[mix];
      double best = 0.0;
      for (int rep = 0; rep < 5; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t) pool.emplace_back(Run, mix, iters);
        for (auto& th : pool) th.join();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double g_terms = double(iters) * kTermsPerIter[mix] * 16 * threads / s / 1e9;
        if (g_terms > best) best = g_terms;
      }
      std::printf("{\"mix\": \"%s\", \"threads\": %d, \"vector_ops_per_term\": %d, "
                  "\"g_terms_s\": %.1f, \"g_vector_ops_s\": %.2f}\n",
                  names[mix], threads, ops[mix], best, best * ops[mix] / 16);
    }
  }
}
