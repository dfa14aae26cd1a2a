// logprobs_from_logits on the CPU: rows in parallel (OpenMP), each row read once from memory.
// A row is swept in L1-sized blocks. Each block's max and its exp-sum relative to the row's running
// max come from one loop; a block whose max jumps far above the running max (or is NaN/+inf) is summed
// again from L1 against its own max. Partial results live in kLanes independent accumulators.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cpu/kernels/kernels.h"
#include "moafast/softmax_math.h"

namespace moafast::cpu::MOAFAST_CPU_ISA {
namespace {

constexpr int64_t kBlock = 8192;
constexpr int kLanes = 16;
// exp(x - running_max) stays finite and summable for x up to this far above the running max.
constexpr float kMaxJump = 64.0f;

template <typename A> A max_keeping_nan(A a, A b) { return a > b ? a : b; }

// Pairwise folds of the lane accumulators (short dependency chains, vectorisable).
template <typename A> A fold_sum(A* lanes) {
  for (int width = kLanes / 2; width > 0; width /= 2)
    for (int k = 0; k < width; ++k) lanes[k] += lanes[k + width];
  return lanes[0];
}

template <typename A> A fold_max(A* lanes) {
  for (int width = kLanes / 2; width > 0; width /= 2)
    for (int k = 0; k < width; ++k) lanes[k] = max_keeping_nan(lanes[k], lanes[k + width]);
  return lanes[0];
}

template <typename T, typename A = typename Acc<T>::type>
A block_max(const typename Storage<T>::type* x, int64_t count) {
  A partial[kLanes];
  for (int k = 0; k < kLanes; ++k) partial[k] = negative_infinity<A>();
  int64_t j = 0;
  for (; j + kLanes <= count; j += kLanes) {
#pragma omp simd
    for (int k = 0; k < kLanes; ++k) partial[k] = max_keeping_nan(partial[k], A(Storage<T>::load(x[j + k])));
  }
  for (; j < count; ++j) partial[0] = max_keeping_nan(partial[0], A(Storage<T>::load(x[j])));
  return fold_max(partial);
}

// sum_j exp(x_j - reference), and (when wanted) max_j x_j, in one sweep.
template <bool kWithMax, typename T, typename A = typename Acc<T>::type>
A block_exp_sum(const typename Storage<T>::type* x, int64_t count, A reference, typename Acc<T>::type* max_out) {
  A sums[kLanes] = {};
  A maxes[kLanes];
  for (int k = 0; k < kLanes; ++k) maxes[k] = negative_infinity<A>();
  int64_t j = 0;
  if constexpr (std::is_same_v<T, bf16_t>) {
    // Two bfloat16 entries per 32-bit word: the high half is the odd entry's float bits as they stand, the low
    // half shifted up the even entry's (one operation each; a sum and a max do not care about the order).
    constexpr int kWords = kLanes / 2;
    for (; j + kLanes <= count; j += kLanes) {
#pragma omp simd
      for (int k = 0; k < kWords; ++k) {
        uint32_t word;
        std::memcpy(&word, x + j + 2 * k, sizeof(word));
        const A even = bits_to_float(word << 16), odd = bits_to_float(word & 0xffff0000u);
        if constexpr (kWithMax) {
          maxes[k] = max_keeping_nan(maxes[k], even);
          maxes[k + kWords] = max_keeping_nan(maxes[k + kWords], odd);
        }
        sums[k] += bounded_exp(even - reference);
        sums[k + kWords] += bounded_exp(odd - reference);
      }
    }
  }
  for (; j + kLanes <= count; j += kLanes) {
#pragma omp simd
    for (int k = 0; k < kLanes; ++k) {
      const A value = Storage<T>::load(x[j + k]);
      if constexpr (kWithMax) maxes[k] = max_keeping_nan(maxes[k], value);
      sums[k] += bounded_exp(value - reference);
    }
  }
  for (; j < count; ++j) {
    const A value = Storage<T>::load(x[j]);
    if constexpr (kWithMax) maxes[0] = max_keeping_nan(maxes[0], value);
    sums[0] += bounded_exp(value - reference);
  }
  if constexpr (kWithMax) *max_out = fold_max(maxes);
  return fold_sum(sums);
}

template <typename T, typename A = typename Acc<T>::type>
void row_softmax_stats(const typename Storage<T>::type* row, int64_t vocab, A& max, A& sum) {
  max = negative_infinity<A>();
  sum = 0;
  for (int64_t begin = 0; begin < vocab; begin += kBlock) {
    const typename Storage<T>::type* block = row + begin;
    const int64_t count = std::min(vocab - begin, kBlock);
    if (max == negative_infinity<A>()) {  // no reference yet
      const A first = Storage<T>::load(block[0]);
      if (first > negative_infinity<A>() && first < -negative_infinity<A>()) {
        // Any finite logit serves as the reference: one sweep, as for the later blocks.
        A local_max;
        const A local_sum = block_exp_sum<true, T>(block, count, first, &local_max);
        if (local_max - first <= A(kMaxJump)) {
          max = local_max;
          sum = local_sum * bounded_exp(first - local_max);
          continue;
        }
      }
      const A local_max = block_max<T>(block, count);
      if (local_max != negative_infinity<A>())
        merge_softmax_stats(max, sum, local_max, block_exp_sum<false, T>(block, count, local_max, nullptr));
      continue;
    }
    A local_max;
    const A local_sum = block_exp_sum<true, T>(block, count, max, &local_max);
    if (local_max - max <= A(kMaxJump)) {  // also false for NaN and +inf, which take the slow path
      sum += local_sum;
      if (local_max > max) {
        sum *= bounded_exp(max - local_max);
        max = local_max;
      }
    } else {
      merge_softmax_stats(max, sum, local_max, block_exp_sum<false, T>(block, count, local_max, nullptr));
    }
  }
}

template <typename T>
void forward_rows(const LogprobsForwardArgs& args, int num_threads) {
  using A = typename Acc<T>::type;
  using S = typename Storage<T>::type;
  const S* logits = static_cast<const S*>(args.logits);
  A* logp = static_cast<A*>(args.logp);
  A* lse = static_cast<A*>(args.lse);
#pragma omp parallel for num_threads(num_threads) schedule(static)
  for (int64_t n = 0; n < args.rows; ++n) {
    const int64_t target = args.targets[n * args.targets_stride];
    if (target == args.ignore_index) {
      logp[n] = 0;
      lse[n] = 0;
      continue;
    }
    const S* row = logits + n * args.logits_row_stride;
    A max, sum;
    row_softmax_stats<T>(row, args.vocab, max, sum);
    lse[n] = lse_from_stats(max, sum);
    logp[n] = logprob_from_lse(A(Storage<T>::load(row[target])), lse[n]);
  }
}

template <typename T>
void backward_rows(const LogprobsBackwardArgs& args, int num_threads) {
  using A = typename Acc<T>::type;
  using S = typename Storage<T>::type;
  const S* logits = static_cast<const S*>(args.logits);
  const A* lse = static_cast<const A*>(args.lse);
  const A* grad_logp = static_cast<const A*>(args.grad_logp);
  const A* grad_lse = static_cast<const A*>(args.grad_lse);
  S* grad_logits = static_cast<S*>(args.grad_logits);
  const S zero = Storage<T>::store(A(0));
#pragma omp parallel for num_threads(num_threads) schedule(static)
  for (int64_t n = 0; n < args.rows; ++n) {
    S* out = grad_logits + n * args.vocab;
    const int64_t target = args.targets[n * args.targets_stride];
    const A row_lse = lse[n];
    if (target == args.ignore_index || row_lse == negative_infinity<A>()) {
      std::fill(out, out + args.vocab, zero);
      continue;
    }
    const S* row = logits + n * args.logits_row_stride;
    const A g_logp = grad_logp[n * args.grad_logp_stride];
    const A g_lse = grad_lse ? grad_lse[n * args.grad_lse_stride] : A(0);
    const A softmax_coef = g_lse - g_logp;
    const A target_logit = Storage<T>::load(row[target]);  // read first: out may alias row (in-place)
#pragma omp simd
    for (int64_t j = 0; j < args.vocab; ++j)
      out[j] = Storage<T>::store(logprob_grad(A(Storage<T>::load(row[j])), row_lse, softmax_coef, A(0)));
    out[target] = Storage<T>::store(logprob_grad(target_logit, row_lse, softmax_coef, g_logp));
  }
}

}  // namespace

void logprobs_forward_rows(const LogprobsForwardArgs& args, int num_threads) {
  switch (args.dtype) {
    case DType::kFloat32: return forward_rows<float>(args, num_threads);
    case DType::kFloat64: return forward_rows<double>(args, num_threads);
    case DType::kBFloat16: return forward_rows<bf16_t>(args, num_threads);
    case DType::kFloat16: return forward_rows<f16_t>(args, num_threads);
  }
}

void logprobs_backward_rows(const LogprobsBackwardArgs& args, int num_threads) {
  switch (args.dtype) {
    case DType::kFloat32: return backward_rows<float>(args, num_threads);
    case DType::kFloat64: return backward_rows<double>(args, num_threads);
    case DType::kBFloat16: return backward_rows<bf16_t>(args, num_threads);
    case DType::kFloat16: return backward_rows<f16_t>(args, num_threads);
  }
}

}  // namespace moafast::cpu::MOAFAST_CPU_ISA
