// logprobs_from_logits on the CPU: rows in parallel (OpenMP), each row read once from memory.
// A row is swept in L1-sized blocks: the block max, then the block's exp-sum from cache,
// merged into the row's running statistics.
#include <algorithm>
#include <cstdint>

#include "cpu/kernels/kernels.h"
#include "moafast/softmax_math.h"

namespace moafast::cpu::MOAFAST_CPU_ISA {
namespace {

constexpr int64_t kBlock = 2048;

template <typename T, typename A = typename Acc<T>::type>
void row_softmax_stats(const typename Storage<T>::type* row, int64_t vocab, A& max, A& sum) {
  max = negative_infinity<A>();
  sum = 0;
  for (int64_t begin = 0; begin < vocab; begin += kBlock) {
    const int64_t end = std::min(vocab, begin + kBlock);
    A block_max = negative_infinity<A>();
#pragma omp simd reduction(max : block_max)
    for (int64_t j = begin; j < end; ++j) block_max = std::max(block_max, A(Storage<T>::load(row[j])));
    if (block_max == negative_infinity<A>()) continue;
    A block_sum = 0;
#pragma omp simd reduction(+ : block_sum)
    for (int64_t j = begin; j < end; ++j) block_sum += exp_nonpositive(A(Storage<T>::load(row[j])) - block_max);
    merge_softmax_stats(max, sum, block_max, block_sum);
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
#pragma omp simd
    for (int64_t j = 0; j < args.vocab; ++j)
      out[j] = Storage<T>::store(logprob_grad(A(Storage<T>::load(row[j])), row_lse, softmax_coef, A(0)));
    out[target] = Storage<T>::store(logprob_grad(A(Storage<T>::load(row[target])), row_lse, softmax_coef, g_logp));
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
