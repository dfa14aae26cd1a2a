// Argument blocks for the logprobs_from_logits kernels (CPU and CUDA launchers take the same ones).
#pragma once

#include <cstdint>

#include "moafast/common.h"

namespace moafast {

// Forward: for each row n with t = targets[n] != ignore_index,
//   lse[n] = log sum_j exp(logits[n, j]),  logp[n] = logits[n, t] - lse[n];
// ignored rows give logp = lse = 0 and are not read.
struct LogprobsForwardArgs {
  const void* logits;          // [rows, vocab], element stride 1, row stride `logits_row_stride`
  int64_t rows;
  int64_t vocab;
  int64_t logits_row_stride;
  const int64_t* targets;      // [rows], stride `targets_stride`
  int64_t targets_stride;
  int64_t ignore_index;
  void* logp;                  // [rows] contiguous, accumulation type (float64 for float64, else float32)
  void* lse;                   // [rows] contiguous, accumulation type
  DType dtype;                 // dtype of logits
};

// Backward: grad_logits[n, j] = (g_lse[n] - g_logp[n]) * exp(logits[n, j] - lse[n]) + [j == t] * g_logp[n];
// ignored rows and rows with lse = -inf get zeros.
struct LogprobsBackwardArgs {
  const void* logits;
  int64_t rows;
  int64_t vocab;
  int64_t logits_row_stride;
  const int64_t* targets;
  int64_t targets_stride;
  int64_t ignore_index;
  const void* lse;             // [rows] contiguous, accumulation type
  const void* grad_logp;       // [rows], accumulation type, stride `grad_logp_stride`
  int64_t grad_logp_stride;
  const void* grad_lse;        // [rows] or nullptr (no gradient flows into lse)
  int64_t grad_lse_stride;
  void* grad_logits;           // [rows, vocab] contiguous, dtype of logits; may be `logits` itself (in place)
  DType dtype;
};

namespace cpu {
// Both return -1 on success, otherwise the first row whose target lies outside [0, vocab)
// and is not ignore_index (nothing is written then).
int64_t logprobs_forward(const LogprobsForwardArgs& args, int num_threads);
int64_t logprobs_backward(const LogprobsBackwardArgs& args, int num_threads);
}  // namespace cpu

namespace cuda {
// Rows whose target lies outside [0, vocab) give NaN (checking would need a host sync).
void logprobs_forward(const LogprobsForwardArgs& args, int device, void* stream);
void logprobs_backward(const LogprobsBackwardArgs& args, int device, void* stream);
}  // namespace cuda

}  // namespace moafast
