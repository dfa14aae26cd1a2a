// The tilted sampler on the CPU: rows in parallel (OpenMP), each row's inputs streamed from memory once.
// The tilted row t lives in a per-thread buffer (the vocabulary of one row fits in L2); the filters and the
// draw sweep that buffer, without sorting it: top-k by a threshold buffer, top-p by mass bins, min-p by a
// comparison with the row max, the draw by block masses and one scan inside the chosen block.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu/kernels/kernels.h"
#include "moafast/philox.h"
#include "moafast/softmax_math.h"
#include "moafast/tilted_sampling.h"

namespace moafast::cpu::MOAFAST_CPU_ISA {
namespace {

constexpr int64_t kBlock = 512;
constexpr int64_t kSelectBlock = 64;
constexpr int kLanes = 16;
// Top-p mass bins: kBinsPerNat per nat below the row max, over kBinNats nats; one more bin for the rest.
constexpr int kBinsPerNat = 32;
constexpr int kBinNats = 64;
constexpr int kBins = kBinsPerNat * kBinNats + 1;
// Top-p over at most this many survivors selects among them directly instead of binning the row.
constexpr int64_t kSortedTopPLimit = 8192;

template <typename A> struct Workspace {
  std::vector<A> tilted, selection, maxima, taken;
  std::vector<double> block_mass, bin_mass;
};

// A row's objectives with a nonzero coefficient: their rows of values and their coefficients.
template <typename A, typename SV> struct TiltTerms {
  std::vector<const SV*> rows;
  std::vector<A> weights;
};

// The max of kLanes lanes (NaN never wins), folded in halves: vector steps, not a chain of scalars.
template <typename A> A fold_max(A* lanes) {
  for (int width = kLanes / 2; width > 0; width /= 2)
    for (int lane = 0; lane < width; ++lane)
      lanes[lane] = lanes[lane + width] > lanes[lane] ? lanes[lane + width] : lanes[lane];
  return lanes[0];
}

// max of x[0, count) (NaN never wins), in kLanes independent lanes so that the loop vectorises.
template <typename A> A block_max(const A* x, int64_t count) {
  A lanes[kLanes];
  for (int lane = 0; lane < kLanes; ++lane) lanes[lane] = negative_infinity<A>();
  int64_t j = 0;
  for (; j + kLanes <= count; j += kLanes) {
#pragma omp simd
    for (int lane = 0; lane < kLanes; ++lane) lanes[lane] = x[j + lane] > lanes[lane] ? x[j + lane] : lanes[lane];
  }
  for (; j < count; ++j) lanes[0] = x[j] > lanes[0] ? x[j] : lanes[0];
  return fold_max(lanes);
}

// The max of each kSelectBlock-entry part of x[0, count) (NaN never wins) into part_maxima, and the count of
// NaN or +inf entries added to `bad`, in kLanes independent lanes so that the loops vectorise. The counts stay
// in their lanes across the parts (a fresh load of lanes the caller stored one by one would wait for them).
template <typename A> void part_maxima_counting_bad(const A* x, int64_t count, A* part_maxima, A& bad) {
  const A infinity = -negative_infinity<A>();
  A bads[kLanes];
  for (int lane = 0; lane < kLanes; ++lane) bads[lane] = 0;
  for (int64_t part = 0; part < count; part += kSelectBlock) {
    const int64_t end = std::min(part + kSelectBlock, count);
    A maxes[kLanes];
    for (int lane = 0; lane < kLanes; ++lane) maxes[lane] = negative_infinity<A>();
    int64_t j = part;
    for (; j + kLanes <= end; j += kLanes) {
#pragma omp simd
      for (int lane = 0; lane < kLanes; ++lane) {
        const A value = x[j + lane];
        maxes[lane] = value > maxes[lane] ? value : maxes[lane];
        bads[lane] += value < infinity ? A(0) : A(1);
      }
    }
    for (; j < end; ++j) {
      maxes[0] = x[j] > maxes[0] ? x[j] : maxes[0];
      bads[0] += x[j] < infinity ? A(0) : A(1);
    }
    part_maxima[part / kSelectBlock] = fold_max(maxes);
  }
  for (int width = kLanes / 2; width > 0; width /= 2)
    for (int lane = 0; lane < width; ++lane) bads[lane] += bads[lane + width];
  bad += bads[0];
}

// Eight floats in one vector register (a GCC/Clang vector extension), for the float32 part maxima: from an array
// of lanes GCC folds each part's lanes in a loop of scalar steps through the stack, which cost more than the part.
typedef float Float8 __attribute__((vector_size(32)));
// The baseline (SSE2) build passes these vectors only between functions of this file, so GCC's note that AVX
// would pass them differently (an ABI change across files) does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

inline Float8 load8(const float* values) {
  Float8 lanes;
  __builtin_memcpy(&lanes, values, sizeof lanes);
  return lanes;
}

inline Float8 max8(Float8 a, Float8 b) { return a > b ? a : b; }  // NaN in a never wins

inline float fold_max8(Float8 lanes) {
  lanes = max8(lanes, __builtin_shufflevector(lanes, lanes, 4, 5, 6, 7, 0, 1, 2, 3));
  lanes = max8(lanes, __builtin_shufflevector(lanes, lanes, 2, 3, 0, 1, 6, 7, 4, 5));
  lanes = max8(lanes, __builtin_shufflevector(lanes, lanes, 1, 0, 3, 2, 5, 4, 7, 6));
  return lanes[0];
}

inline void store8(float* values, Float8 lanes) { __builtin_memcpy(values, &lanes, sizeof lanes); }

// Sixteen bfloat16 bit patterns in one register, and their float32 values in two: each float is its bfloat16
// bits above sixteen zero bits, interleaved within each 128-bit half (entries 0-3 and 8-11, then 4-7 and 12-15).
typedef uint16_t U16x16 __attribute__((vector_size(32)));

inline U16x16 load16(const uint16_t* values) {
  U16x16 lanes;
  __builtin_memcpy(&lanes, values, sizeof lanes);
  return lanes;
}

inline Float8 low_quads(U16x16 bits) {
  return reinterpret_cast<Float8>(
      __builtin_shufflevector(U16x16{}, bits, 0, 16, 1, 17, 2, 18, 3, 19, 8, 24, 9, 25, 10, 26, 11, 27));
}

inline Float8 high_quads(U16x16 bits) {
  return reinterpret_cast<Float8>(
      __builtin_shufflevector(U16x16{}, bits, 4, 20, 5, 21, 6, 22, 7, 23, 12, 28, 13, 29, 14, 30, 15, 31));
}

// The float32 version of the template above: sixteen entries per step in two registers, each part folded in
// three shuffles. With kCountBad, NaN and +inf entries are counted into `bad`.
template <bool kCountBad = true>
void part_maxima_counting_bad(const float* x, int64_t count, float* part_maxima, float& bad) {
  const float infinity = -negative_infinity<float>();
  const Float8 lowest = Float8{} + negative_infinity<float>(), ceiling = Float8{} + infinity;
  const Float8 zero = Float8{}, one = Float8{} + 1.0f;
  Float8 bads = zero;
  for (int64_t part = 0; part < count; part += kSelectBlock) {
    const int64_t end = std::min(part + kSelectBlock, count);
    Float8 high_a = lowest, high_b = lowest;
    int64_t j = part;
    for (; j + 16 <= end; j += 16) {
      const Float8 a = load8(x + j), b = load8(x + j + 8);
      high_a = max8(a, high_a);
      high_b = max8(b, high_b);
      if constexpr (kCountBad) bads += (a < ceiling ? zero : one) + (b < ceiling ? zero : one);
    }
    float high = fold_max8(max8(high_a, high_b));
    for (; j < end; ++j) {
      high = x[j] > high ? x[j] : high;
      if constexpr (kCountBad) bad += x[j] < infinity ? 0.0f : 1.0f;
    }
    part_maxima[part / kSelectBlock] = high;
  }
  if constexpr (kCountBad) {
    bads += __builtin_shufflevector(bads, bads, 4, 5, 6, 7, 0, 1, 2, 3);
    bads += __builtin_shufflevector(bads, bads, 2, 3, 0, 1, 6, 7, 4, 5);
    bads += __builtin_shufflevector(bads, bads, 1, 0, 3, 2, 5, 4, 7, 6);
    bad += bads[0];
  }
}

// Running logsumexp over blocks of a row: (max, sum of exp(x - max)).
template <typename A> struct RunningLogsumexp {
  A max = negative_infinity<A>(), sum = 0;

  // Adds a block whose max (NaN never wins) the caller has already.
  void add(const A* x, int64_t count, A local_max) {
    if (local_max > max) {
      sum = max == negative_infinity<A>() ? A(0) : sum * bounded_exp(max - local_max);
      max = local_max;
    }
    if (max == negative_infinity<A>()) return;
    A local_sum = 0;
    const A reference = max;
#pragma omp simd reduction(+ : local_sum)
    for (int64_t j = 0; j < count; ++j) local_sum += bounded_exp(x[j] - reference);
    sum += local_sum;
  }

  void add(const A* x, int64_t count) { add(x, count, block_max(x, count)); }

  // -inf for a row of -inf; NaN or +inf when the row holds them.
  double value() const {
    if (max == negative_infinity<A>() || !(max < -negative_infinity<A>())) return static_cast<double>(max);
    return static_cast<double>(max) + std::log(static_cast<double>(sum));
  }
};

// Up to this many objectives are added in the same pass as the logits (one store per entry instead of one pass
// over the block per objective); further ones take a pass each.
constexpr int kFusedObjectives = 4;

// out[j] (+)= sum_k c[k] * Q_k[j] over N objectives in one pass; with `logits`, out[j] = a * l[j] + that sum.
template <int N, typename T, typename TV, typename A>
void tilt_block(const typename Storage<T>::type* logits, A scale, const typename Storage<TV>::type* const* rows,
                const A* weights, int64_t begin, int64_t count, A* out) {
  A c[N > 0 ? N : 1];  // in registers: read through `weights`, each store to `out` (which may alias it) reloads them
  for (int k = 0; k < N; ++k) c[k] = weights[k];
  int64_t first = 0;  // entries done by the bfloat16 path
  if constexpr (std::is_same_v<T, bf16_t> && std::is_same_v<TV, bf16_t>) {
    // Sixteen entries of every input at a time, widened in register lanes (entries 0-3 and 8-11 in one register,
    // 4-7 and 12-15 in the other: one operation each), combined, and put back in order once for the store.
    for (; logits && first + 16 <= count; first += 16) {
      const U16x16 l = load16(logits + begin + first);
      Float8 low = scale * low_quads(l), high = scale * high_quads(l);
      for (int k = 0; k < N; ++k) {
        const U16x16 q = load16(rows[k] + begin + first);
        low += c[k] * low_quads(q);
        high += c[k] * high_quads(q);
      }
      store8(out + first, __builtin_shufflevector(low, high, 0, 1, 2, 3, 8, 9, 10, 11));
      store8(out + first + 8, __builtin_shufflevector(low, high, 4, 5, 6, 7, 12, 13, 14, 15));
    }
  }
  if (logits) {
#pragma omp simd
    for (int64_t j = first; j < count; ++j) {
      A value = scale * A(Storage<T>::load(logits[begin + j]));
      for (int k = 0; k < N; ++k) value += c[k] * A(Storage<TV>::load(rows[k][begin + j]));
      out[j] = value;
    }
  } else {
#pragma omp simd
    for (int64_t j = 0; j < count; ++j) {
      A value = out[j];
      for (int k = 0; k < N; ++k) value += c[k] * A(Storage<TV>::load(rows[k][begin + j]));
      out[j] = value;
    }
  }
}

template <typename T, typename TV, typename A>
void tilt_block(int n, const typename Storage<T>::type* logits, A scale, const typename Storage<TV>::type* const* rows,
                const A* c, int64_t begin, int64_t count, A* out) {
  switch (n) {
    case 0: return tilt_block<0, T, TV>(logits, scale, rows, c, begin, count, out);
    case 1: return tilt_block<1, T, TV>(logits, scale, rows, c, begin, count, out);
    case 2: return tilt_block<2, T, TV>(logits, scale, rows, c, begin, count, out);
    case 3: return tilt_block<3, T, TV>(logits, scale, rows, c, begin, count, out);
    default: return tilt_block<4, T, TV>(logits, scale, rows, c, begin, count, out);
  }
}

// t = a * l + sum_k c_k Q_k for one row; returns the row max and whether a NaN or +inf appeared. Objectives
// whose coefficient is 0 in this row are not read; the logits and the first kFusedObjectives of the others are
// added in one pass over each block. While each block is in L1 it also records the maxima of its
// kSelectBlock-entry parts (the filters and the draw skip parts by them) and, with `base` (dense rows), the
// running logsumexp of a * l, so that the base log-prob needs no second read of the logits.
template <typename T, typename TV, typename A>
A tilt_row(const TiltedSamplingArgs& args, int64_t b, A* t, bool& non_finite, std::vector<A>& maxima,
           RunningLogsumexp<A>* base, TiltTerms<A, typename Storage<TV>::type>& terms) {
  using S = typename Storage<T>::type;
  using SV = typename Storage<TV>::type;
  const S* logits = static_cast<const S*>(args.logits) + b * args.logits_row_stride;
  const int64_t* ids = args.candidates ? args.candidates + b * args.candidates_row_stride : nullptr;
  const double* coefficients = args.coefficients + b * args.objectives;
  const A scale = static_cast<A>(args.inverse_temperature);
  A max = negative_infinity<A>(), bad = 0;
  maxima.resize((args.width + kSelectBlock - 1) / kSelectBlock);
  std::vector<const SV*>& rows = terms.rows;  // added in passes of up to kFusedObjectives
  std::vector<A>& weights = terms.weights;
  rows.clear(), weights.clear();
  for (int64_t k = 0; k < args.objectives; ++k) {
    const A c = static_cast<A>(coefficients[k]);
    if (c == A(0)) continue;
    rows.push_back(static_cast<const SV*>(args.values) + k * args.values_objective_stride + b * args.values_row_stride);
    weights.push_back(c);
  }
  const int objectives = static_cast<int>(rows.size());
  // The logits go in the first pass unless they are gathered (candidates) or also feed the base logsumexp.
  const bool logits_in_pass = !ids && !base;
  for (int64_t begin = 0; begin < args.width; begin += kBlock) {
    const int64_t count = std::min(kBlock, args.width - begin);
    A* out = t + begin;
    if (ids) {
      for (int64_t j = 0; j < count; ++j) out[j] = scale * A(Storage<T>::load(logits[ids[begin + j]]));
    } else if (base) {
#pragma omp simd
      for (int64_t j = 0; j < count; ++j) out[j] = scale * A(Storage<T>::load(logits[begin + j]));
      base->add(out, count);
    }
    for (int first = 0; first < objectives || (first == 0 && logits_in_pass); first += kFusedObjectives) {
      const int n = std::min(kFusedObjectives, objectives - first);
      tilt_block<T, TV, A>(n, first == 0 && logits_in_pass ? logits : nullptr, scale, rows.data() + first,
                           weights.data() + first, begin, count, out);
    }
    A* block_maxima = maxima.data() + begin / kSelectBlock;
    part_maxima_counting_bad(out, count, block_maxima, bad);
    for (int64_t part = 0; part * kSelectBlock < count; ++part)
      max = block_maxima[part] > max ? block_maxima[part] : max;
  }
  non_finite = bad != A(0);
  return max;
}

// Appends the entries of x[0, count) at or above `low` to out[size...] (room for count more) and returns the
// new size. Sixteen entries at a time are tested on vector lanes; in a group that holds one, every entry is
// written and only those kept advance the size (no branch on each entry).
template <typename A> size_t append_at_or_above(const A* x, int64_t count, A low, A* out, size_t size) {
  constexpr int64_t kGroup = 16;
  for (int64_t j = 0; j < count; j += kGroup) {
    const int64_t end = std::min(j + kGroup, count);
    int hits = 0;
#pragma omp simd reduction(| : hits)
    for (int64_t i = j; i < end; ++i) hits |= x[i] >= low;
    if (!hits) continue;
    for (int64_t i = j; i < end; ++i) {
      out[size] = x[i];
      size += x[i] >= low;
    }
  }
  return size;
}

// The entries of t[0, width) at or above `low` into out[0, returned count), from the kSelectBlock-entry parts whose
// max reaches it (out grows as needed, a part at a time; its size is a capacity, not the count).
template <typename A>
size_t collect_at_or_above(const A* t, int64_t width, const std::vector<A>& maxima, A low, std::vector<A>& out) {
  size_t size = 0;
  for (int64_t begin = 0; begin < width; begin += kSelectBlock) {
    if (!(maxima[begin / kSelectBlock] >= low)) continue;
    if (out.size() < size + kSelectBlock) out.resize(2 * (size + kSelectBlock));
    size = append_at_or_above(t + begin, std::min(kSelectBlock, width - begin), low, out.data(), size);
  }
  return size;
}

// The number of part maxima at or above v, counted on vector lanes.
template <typename A> int64_t count_at_or_above(const std::vector<A>& maxima, A v) {
  int64_t count = 0;
#pragma omp simd reduction(+ : count)
  for (size_t i = 0; i < maxima.size(); ++i) count += maxima[i] >= v;
  return count;
}

// A value that at least k of the part maxima reach (k < their number), and not many more than k when bisection
// finds one soon: -inf when fewer than k are finite.
template <typename A> A bound_of_kth_maximum(const std::vector<A>& maxima, int64_t k, A max) {
  A low = max;
#pragma omp simd reduction(min : low)
  for (size_t i = 0; i < maxima.size(); ++i) low = std::min(low, maxima[i] > negative_infinity<A>() ? maxima[i] : max);
  if (count_at_or_above(maxima, low) < k) return negative_infinity<A>();  // the k-th is -inf
  A high = max;
  const int64_t enough = k + k / 4 + 8;  // each part past k costs a vector scan of its entries
  for (int step = 0; step < 24; ++step) {
    const A middle = low + (high - low) / A(2);
    if (!(middle > low && middle < high)) break;
    const int64_t count = count_at_or_above(maxima, middle);
    if (count < k) {
      high = middle;
      continue;
    }
    low = middle;
    if (count <= enough) break;
  }
  return low;
}

// The k-th largest of t[0, width), without sorting the row; `survivors` is left holding every entry at or above
// it (the k largest and their ties), which top-p then selects among. A value that k of the kSelectBlock-entry
// parts' maxima (from the tilt pass) reach is a lower bound (k distinct entries reach it), so only the parts
// whose max reaches the bound can hold the k largest, and their entries at or above it are selected exactly.
template <typename A>
A kth_largest(const A* t, int64_t width, int64_t k, const std::vector<A>& maxima, A max, std::vector<A>& survivors) {
  const int64_t parts = static_cast<int64_t>(maxima.size());
  const A bound = parts > k ? bound_of_kth_maximum(maxima, k, max) : negative_infinity<A>();
  const size_t size = collect_at_or_above(t, width, maxima, bound, survivors);
  std::nth_element(survivors.begin(), survivors.begin() + (k - 1), survivors.begin() + size, std::greater<A>());
  const A kth = survivors[k - 1];
  size_t kept = static_cast<size_t>(k);
  for (size_t i = kept; i < size; ++i) {  // the ties of the k-th, which nth_element may have left after it
    survivors[kept] = survivors[i];
    kept += survivors[i] == kth;
  }
  survivors.resize(kept);
  return kth;
}

// The largest value v of [first, last) (reordered in place) whose tie-inclusive upper mass, mass_before + the sum of
// exp(x - max) over the values x >= v, reaches target; the smallest value when rounding keeps every sum below
// it, max when there are none. A selection, not a sort: each step splits the values around a pivot (larger,
// equal, smaller), keeps the side that holds the answer and adds the mass of the larger ones it passes, so a
// flat row's crowded bin costs a few linear passes; the last few values are sorted and scanned.
template <typename A> A top_p_among(A* first, A* last, A max, double mass_before, double target) {
  constexpr std::ptrdiff_t kSortUpTo = 32;
  auto mass_of = [max](const A* begin, const A* end) {
    double mass = 0.0;
    for (const A* it = begin; it != end; ++it) mass += static_cast<double>(bounded_exp(*it - max));
    return mass;
  };
  if (first == last) return max;
  A *low = first, *high = last;  // the values that may hold the answer
  A passed = max;  // the last pivot passed: the smallest value above the range
  double before = mass_before;
  while (high - low > kSortUpTo) {
    const A a = *low, b = low[(high - low) / 2], c = *(high - 1);
    const A pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));  // the median of three
    const auto larger_end = std::partition(low, high, [pivot](A x) { return x > pivot; });
    const auto equal_end = std::partition(larger_end, high, [pivot](A x) { return x == pivot; });
    const double larger = mass_of(low, larger_end);
    if (larger_end != low && before + larger >= target) {
      high = larger_end;
      continue;
    }
    before += larger + mass_of(larger_end, equal_end);
    if (before >= target) return pivot;
    passed = pivot;
    low = equal_end;
  }
  if (low == high) return passed;
  std::sort(low, high, std::greater<A>());
  for (const A* it = low; it != high; ++it) {
    before += static_cast<double>(bounded_exp(*it - max));
    if (before >= target) return *it;
  }
  return *(high - 1);
}

template <typename A> int mass_bin(A value, A max) {
  const A distance = (max - value) * A(kBinsPerNat);
  return distance < A(kBins - 1) ? static_cast<int>(distance) : kBins - 1;
}

// Mass of the kept entries (t >= threshold) relative to exp(max), per block of kBlock entries and in total.
// A kSelectBlock-entry part whose max is below the threshold costs nothing.
template <typename A>
double kept_mass(const A* t, int64_t width, A threshold, A max, std::vector<double>& block_mass,
                 const std::vector<A>& maxima) {
  block_mass.resize((width + kBlock - 1) / kBlock);
  double total = 0.0;
  for (int64_t begin = 0, block = 0; begin < width; begin += kBlock, ++block) {
    const int64_t count = std::min(kBlock, width - begin);
    const A* x = t + begin;
    A sum = 0;
    if (threshold == negative_infinity<A>()) {  // nothing filtered: a -inf entry's exp is 0 anyway
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < count; ++j) sum += bounded_exp(x[j] - max);
    } else {
      for (int64_t part = 0; part < count; part += kSelectBlock) {
        if (!(maxima[(begin + part) / kSelectBlock] >= threshold)) continue;  // nothing kept: no exp
        const int64_t end = std::min(part + kSelectBlock, count);
        A part_sum = 0;
#pragma omp simd reduction(+ : part_sum)
        for (int64_t j = part; j < end; ++j) part_sum += x[j] >= threshold ? bounded_exp(x[j] - max) : A(0);
        sum += part_sum;
      }
    }
    block_mass[block] = static_cast<double>(sum);
    total += static_cast<double>(sum);
  }
  return total;
}

// The cut, in whole nats below the max (at most kMaxCutNats), down to which the part maxima alone reach the
// target mass; 0 when they never do. The maxima are entries, so the row's mass above that cut reaches the target
// too, and in a peaked row (most of the mass in a few entries, each likely its part's max) the cut is close.
constexpr int kMaxCutNats = 16;
template <typename A> int sufficient_cut_nats(const std::vector<A>& maxima, A floor, A max, double target) {
  double mass_by_nat[kMaxCutNats + 1] = {};  // the last one collects the maxima further down
  const int64_t parts = static_cast<int64_t>(maxima.size());
  A masses[kSelectBlock];
  int nats[kSelectBlock];
  for (int64_t begin = 0; begin < parts; begin += kSelectBlock) {
    const int64_t count = std::min(kSelectBlock, parts - begin);
    const A* part_max = maxima.data() + begin;
#pragma omp simd
    for (int64_t j = 0; j < count; ++j) {
      masses[j] = part_max[j] >= floor ? bounded_exp(part_max[j] - max) : A(0);
      const A distance = max - part_max[j];
      nats[j] = distance < A(kMaxCutNats) ? static_cast<int>(distance) : kMaxCutNats;
    }
    for (int64_t j = 0; j < count; ++j) mass_by_nat[nats[j]] += static_cast<double>(masses[j]);
  }
  double mass = 0.0;
  for (int nat = 0; nat < kMaxCutNats; ++nat) {
    mass += mass_by_nat[nat];
    if (mass >= target) return nat + 1;
  }
  return 0;
}

// Top-p over the survivors t >= floor: the largest tau whose tie-inclusive upper mass reaches p of theirs.
template <typename A>
A top_p_threshold(const A* t, int64_t width, A floor, A max, double p, Workspace<A>& ws) {
  std::vector<A>& survivors = ws.selection;  // after top-k (floor > -inf): kth_largest left them there
  if (floor > negative_infinity<A>() && static_cast<int64_t>(survivors.size()) <= kSortedTopPLimit) {
    double total = 0.0;
    for (const A value : survivors) total += static_cast<double>(bounded_exp(value - max));
    return top_p_among(survivors.data(), survivors.data() + survivors.size(), max, 0.0, p * total);
  }
  const double target = p * kept_mass(t, width, floor, max, ws.block_mass, ws.maxima);
  std::vector<double>& bins = ws.bin_mass;
  // The entries from the max down to a cut fill every bin before the cut's own exactly (an entry below the cut
  // lies in the cut's bin or later), so when the running mass of those bins reaches the target, its bin is
  // found among those entries alone. The cut comes from the part maxima (their mass above it reaches the
  // target); when they give none, or rounding leaves the bins before the cut short of it, every entry is binned.
  if (const int cut_nats = sufficient_cut_nats(ws.maxima, floor, max, target)) {
    const A cut = max - A(cut_nats), low = std::max(cut, floor);
    std::vector<A>& taken = ws.taken;
    const size_t size = collect_at_or_above(t, width, ws.maxima, low, taken);
    bins.assign(kBins, 0.0);
    for (size_t i = 0; i < size; ++i)
      bins[mass_bin(taken[i], max)] += static_cast<double>(bounded_exp(taken[i] - max));
    const int cut_bin = mass_bin(cut, max);
    double before = 0.0;
    int bin = 0;
    for (; bin < cut_bin && before + bins[bin] < target; ++bin) before += bins[bin];
    if (bin < cut_bin) {
      size_t in_bin = 0;
      for (size_t i = 0; i < size; ++i) {
        taken[in_bin] = taken[i];
        in_bin += mass_bin(taken[i], max) == bin;
      }
      return top_p_among(taken.data(), taken.data() + in_bin, max, before, target);
    }
  }
  bins.assign(kBins, 0.0);
  A masses[kSelectBlock];
  int indices[kSelectBlock];
  for (int64_t begin = 0; begin < width; begin += kSelectBlock) {
    const int64_t count = std::min(kSelectBlock, width - begin);
    const A* x = t + begin;
#pragma omp simd
    for (int64_t j = 0; j < count; ++j) {
      masses[j] = x[j] >= floor ? bounded_exp(x[j] - max) : A(0);
      indices[j] = mass_bin(x[j], max);
    }
    for (int64_t j = 0; j < count; ++j) bins[indices[j]] += static_cast<double>(masses[j]);
  }
  double total = 0.0;  // the bins' own total, so that their running sum surely reaches p of it
  for (const double mass : bins) total += mass;
  const double full_target = p * total;
  double before = 0.0;
  int bin = 0;
  for (; bin < kBins - 1 && before + bins[bin] < full_target; ++bin) before += bins[bin];
  // The entries in that bin, from the parts that can hold one (tested on vector lanes first); in a flat row
  // that is most of them, hence no branch on each entry.
  std::vector<A>& taken = ws.taken;
  size_t size = 0;
  for (int64_t begin = 0; begin < width; begin += kSelectBlock) {
    if (mass_bin(ws.maxima[begin / kSelectBlock], max) > bin) continue;  // its entries all sit in later bins
    const int64_t count = std::min(kSelectBlock, width - begin);
    const A* x = t + begin;
    int in_bin[kSelectBlock], hits = 0;
#pragma omp simd reduction(| : hits)
    for (int64_t j = 0; j < count; ++j) {
      in_bin[j] = (x[j] >= floor) & (mass_bin(x[j], max) == bin);
      hits |= in_bin[j];
    }
    if (!hits) continue;
    if (taken.size() < size + kSelectBlock) taken.resize(2 * (size + kSelectBlock));
    for (int64_t j = 0; j < count; ++j) {
      taken[size] = x[j];
      size += in_bin[j];
    }
  }
  return top_p_among(taken.data(), taken.data() + size, max, before, full_target);
}

// The last kept entry of t[begin, begin + count) (-1 when none is).
template <typename A> int64_t last_kept_in(const A* t, int64_t begin, int64_t count, A threshold) {
  for (int64_t j = begin + count - 1; j >= begin; --j)
    if (t[j] >= threshold && t[j] > negative_infinity<A>()) return j;
  return -1;
}

// Inverse CDF in index order: the first kept entry whose running mass passes u * total.
template <typename A>
int64_t draw(const A* t, int64_t width, A threshold, A max, const std::vector<double>& block_mass, double total,
             double u) {
  const double target = u * total;
  double before = 0.0;
  int64_t last_block = -1;  // the last block with mass before the one that passes the target
  for (int64_t begin = 0, block = 0; begin < width; begin += kBlock, ++block) {
    if (block_mass[block] == 0.0) continue;
    const int64_t count = std::min(kBlock, width - begin);
    if (before + block_mass[block] <= target) {
      before += block_mass[block];
      last_block = block;
      continue;
    }
    double mass = before;
    int64_t last_kept = -1;
    for (int64_t j = begin; j < begin + count; ++j) {
      if (!(t[j] >= threshold) || t[j] == negative_infinity<A>()) continue;
      last_kept = j;
      mass += static_cast<double>(bounded_exp(t[j] - max));
      if (mass > target) return j;
    }
    return last_kept;  // the block's own sum came out above its scan: rounding; its last kept entry
  }
  // The blocks' sums came out below u * total (rounding): the last kept entry.
  if (last_block < 0) return -1;
  return last_kept_in(t, last_block * kBlock, std::min(kBlock, width - last_block * kBlock), threshold);
}

// Loads a * l[begin, begin + count) into x.
template <typename T, typename A>
void load_scaled(const typename Storage<T>::type* logits, int64_t begin, int64_t count, A scale, A* x) {
#pragma omp simd
  for (int64_t j = 0; j < count; ++j) x[j] = scale * A(Storage<T>::load(logits[begin + j]));
}

// log_softmax(a * l)[token] over the whole row of logits: from the caller's logsumexp, the tilt pass's (dense
// rows), or else a second read of the row (candidate mode without base_lse).
template <typename T, typename A>
double base_logprob(const TiltedSamplingArgs& args, int64_t b, int64_t token, const RunningLogsumexp<A>* base) {
  using S = typename Storage<T>::type;
  const S* logits = static_cast<const S*>(args.logits) + b * args.logits_row_stride;
  const A scale = static_cast<A>(args.inverse_temperature);
  const double logit = static_cast<double>(scale * A(Storage<T>::load(logits[token])));
  if (args.base_lse) return logit - args.base_lse[b];
  if (base) return logit - base->value();
  A x[kBlock];
  RunningLogsumexp<A> lse;
  for (int64_t begin = 0; begin < args.vocab; begin += kBlock) {
    const int64_t count = std::min(kBlock, args.vocab - begin);
    load_scaled<T>(logits, begin, count, scale, x);
    lse.add(x, count);
  }
  return logit - lse.value();
}

template <typename T, typename TV>
TiltProblem one_row(const TiltedSamplingArgs& args, int64_t b, Workspace<typename Acc<T>::type>& ws,
                    TiltTerms<typename Acc<T>::type, typename Storage<TV>::type>& terms) {
  using A = typename Acc<T>::type;
  A* t = args.processed ? static_cast<A*>(args.processed) + b * args.width : nullptr;
  if (!t) {
    ws.tilted.resize(args.width);
    t = ws.tilted.data();
  }
  for (int64_t k = 0; k < args.objectives; ++k)
    if (!std::isfinite(args.coefficients[b * args.objectives + k])) return kTiltBadCoefficients;
  RunningLogsumexp<A> base_lse;
  RunningLogsumexp<A>* base = args.tokens && args.base_logprobs && !args.base_lse && !args.candidates ? &base_lse
                                                                                                      : nullptr;
  bool non_finite = false;
  const A max = tilt_row<T, TV, A>(args, b, t, non_finite, ws.maxima, base, terms);
  if (non_finite) return kTiltNonFinite;
  if (max == negative_infinity<A>()) return kTiltNoToken;
  A threshold = negative_infinity<A>();
  if (args.top_k > 0 && args.top_k < args.width)
    threshold = kth_largest(t, args.width, args.top_k, ws.maxima, max, ws.selection);
  if (args.top_p < 1.0) threshold = top_p_threshold(t, args.width, threshold, max, args.top_p, ws);
  if (args.min_p > 0.0) threshold = std::max(threshold, max + static_cast<A>(std::log(args.min_p)));
  if (args.tokens) {
    const double total = kept_mass(t, args.width, threshold, max, ws.block_mass, ws.maxima);
    const double u = philox::uniform(static_cast<uint64_t>(args.seeds[b]), static_cast<uint64_t>(args.offsets[b]),
                                     static_cast<uint64_t>(args.streams[b]));
    const int64_t index = draw(t, args.width, threshold, max, ws.block_mass, total, u);
    const int64_t token = args.candidates ? args.candidates[b * args.candidates_row_stride + index] : index;
    args.tokens[b] = token;
    if (args.tilted_logprobs) args.tilted_logprobs[b] = static_cast<double>(t[index] - max) - std::log(total);
    if (args.base_logprobs) args.base_logprobs[b] = base_logprob<T, A>(args, b, token, base);
  }
  if (args.processed) {
#pragma omp simd
    for (int64_t j = 0; j < args.width; ++j) t[j] = t[j] >= threshold ? t[j] : negative_infinity<A>();
  }
  return kTiltOk;
}

template <typename A> struct Ranked {
  A value;
  int64_t index;
  // "Ranks before": larger value, then lower index; NaN above every value, as in torch.sort.
  bool operator<(const Ranked& other) const {
    const bool nan = value != value, other_nan = other.value != other.value;
    if (nan || other_nan) return nan && (!other_nan || index < other.index);
    return value > other.value || (value == other.value && index < other.index);
  }
};

// One read of the row from memory: blocks of a * l land in L1 and feed the running logsumexp and the maxima of
// kSelectBlock-entry blocks; a value that k of those maxima reach bounds the k-th largest entry from below, so only
// the blocks that reach it are read again (from cache) to select the k best exactly.
template <typename T>
void topk_logsumexp_row(const TopkLogsumexpArgs& args, int64_t b, std::vector<typename Acc<T>::type>& maxima,
                        std::vector<Ranked<typename Acc<T>::type>>& buffer) {
  using A = typename Acc<T>::type;
  using S = typename Storage<T>::type;
  const S* logits = static_cast<const S*>(args.logits) + b * args.logits_row_stride;
  const A scale = static_cast<A>(args.inverse_temperature);
  const int64_t k = args.k, vocab = args.vocab, blocks = (vocab + kSelectBlock - 1) / kSelectBlock;
  A x[kBlock];
  RunningLogsumexp<A> lse;
  maxima.resize(blocks);
  for (int64_t begin = 0; begin < vocab; begin += kBlock) {
    const int64_t count = std::min(kBlock, vocab - begin);
    load_scaled<T>(logits, begin, count, scale, x);
    A* block_maxima = maxima.data() + begin / kSelectBlock;
    if constexpr (std::is_same_v<A, float>) {
      float unused = 0.0f;
      part_maxima_counting_bad<false>(x, count, block_maxima, unused);
    } else {
      for (int64_t part = 0; part < count; part += kSelectBlock)
        block_maxima[part / kSelectBlock] = block_max(x + part, std::min(kSelectBlock, count - part));
    }
    lse.add(x, count, block_max(block_maxima, (count + kSelectBlock - 1) / kSelectBlock));  // the parts' max
  }
  // NaN never wins a part's max, so a row that may hold NaN (its exp sum is NaN, or its max is -inf) has every
  // entry ranked.
  const bool every_entry = lse.sum != lse.sum || lse.max == negative_infinity<A>();
  A bound = negative_infinity<A>();
  if (blocks > k && !every_entry) bound = bound_of_kth_maximum(maxima, k, lse.max);
  buffer.clear();
  for (int64_t block = 0; block < blocks; ++block) {
    if (!(every_entry || maxima[block] >= bound)) continue;
    for (int64_t j = block * kSelectBlock; j < std::min(vocab, (block + 1) * kSelectBlock); ++j) {
      const A value = scale * A(Storage<T>::load(logits[j]));
      if (every_entry || value >= bound) buffer.push_back({value, j});
    }
  }
  std::partial_sort(buffer.begin(), buffer.begin() + k, buffer.end());
  const bool has_nan = every_entry && buffer.front().value != buffer.front().value;  // NaN ranks first
  A* values = static_cast<A*>(args.top_values) + b * k;
  int64_t* indices = args.top_indices + b * k;
  for (int64_t j = 0; j < k; ++j) {
    values[j] = buffer[j].value;
    indices[j] = buffer[j].index;
  }
  static_cast<A*>(args.lse)[b] = has_nan ? std::numeric_limits<A>::quiet_NaN() : static_cast<A>(lse.value());
}

template <typename T> void topk_all_rows(const TopkLogsumexpArgs& args) {
#pragma omp parallel num_threads(args.num_threads)
  {
    std::vector<typename Acc<T>::type> maxima;
    std::vector<Ranked<typename Acc<T>::type>> buffer;
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < args.batch; ++b) topk_logsumexp_row<T>(args, b, maxima, buffer);
  }
}

template <typename T, typename TV> int64_t all_rows(const TiltedSamplingArgs& args) {
  std::vector<int8_t> problems(args.batch, kTiltOk);
#pragma omp parallel num_threads(args.num_threads)
  {
    Workspace<typename Acc<T>::type> ws;
    TiltTerms<typename Acc<T>::type, typename Storage<TV>::type> terms;
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < args.batch; ++b) problems[b] = static_cast<int8_t>(one_row<T, TV>(args, b, ws, terms));
  }
  for (int64_t b = 0; b < args.batch; ++b)
    if (problems[b] != kTiltOk) return b * kTiltProblemCount + problems[b];
  return -1;
}

// Dense values share the logits' dtype; candidate values arrive in the accumulation type.
template <typename T> int64_t dispatch_values(const TiltedSamplingArgs& args) {
  if (args.values_dtype == args.logits_dtype) return all_rows<T, T>(args);
  return all_rows<T, typename Acc<T>::type>(args);
}

}  // namespace

void topk_logsumexp_rows(const TopkLogsumexpArgs& args) {
  switch (args.logits_dtype) {
    case DType::kFloat32: return topk_all_rows<float>(args);
    case DType::kFloat64: return topk_all_rows<double>(args);
    case DType::kBFloat16: return topk_all_rows<bf16_t>(args);
    case DType::kFloat16: return topk_all_rows<f16_t>(args);
  }
}

int64_t tilted_sampling_rows(const TiltedSamplingArgs& args) {
  switch (args.logits_dtype) {
    case DType::kFloat32: return dispatch_values<float>(args);
    case DType::kFloat64: return dispatch_values<double>(args);
    case DType::kBFloat16: return dispatch_values<bf16_t>(args);
    case DType::kFloat16: return dispatch_values<f16_t>(args);
  }
  return -1;
}

}  // namespace moafast::cpu::MOAFAST_CPU_ISA
