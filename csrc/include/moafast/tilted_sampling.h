// Argument block and shared formulas of the tilted sampler: per row b (a request),
//   t[v] = a * l[v] + sum_k c[b, k] * Q[k, b, v]           (a = 1 / T; the caller folds beta, w and T into c)
// over the vocabulary (dense mode) or over the row's candidate tokens (candidate mode), then
//   top-k (keep t >= the k-th largest t), top-p over the top-k survivors (keep t >= tau, tau the largest
//   value whose tie-inclusive upper mass reaches p), min-p (keep t >= max t + log(min_p)),
// and one inverse-CDF draw over the kept tokens in index order with u = philox::uniform(seed, offset, stream).
#pragma once

#include <cstdint>

#include "moafast/common.h"

namespace moafast {

// Row problems the launchers report (as row * kTiltProblemCount + code).
enum TiltProblem : int64_t { kTiltOk = 0, kTiltNonFinite = 1, kTiltNoToken = 2, kTiltBadCoefficients = 3 };
constexpr int64_t kTiltProblemCount = 4;

struct TiltedSamplingArgs {
  const void* logits = nullptr;      // [batch, vocab], element stride 1
  int64_t batch = 0, vocab = 0, logits_row_stride = 0;
  DType logits_dtype = DType::kFloat32;
  const void* values = nullptr;      // [objectives, batch, width], element stride 1; null when objectives = 0
  int64_t objectives = 0, values_objective_stride = 0, values_row_stride = 0;
  DType values_dtype = DType::kFloat32;
  const int64_t* candidates = nullptr;  // [batch, width] token ids (candidate mode) or null (dense: width = vocab)
  int64_t width = 0, candidates_row_stride = 0;
  const double* coefficients = nullptr;  // [batch, objectives] contiguous: c[b, k]
  double inverse_temperature = 1.0;
  int64_t top_k = 0;                 // 0: off
  double top_p = 1.0;                // 1: off
  double min_p = 0.0;                // 0: off
  const int64_t* seeds = nullptr;    // [batch] Philox keys
  const int64_t* offsets = nullptr;  // [batch] steps
  const int64_t* streams = nullptr;  // [batch]
  int64_t* tokens = nullptr;         // [batch] out, or null (no sampling)
  double* tilted_logprobs = nullptr;  // [batch] out, or null: log of the sampled token's kept probability
  double* base_logprobs = nullptr;    // [batch] out, or null: log_softmax(a * l) over the whole vocabulary
  const double* base_lse = nullptr;   // [batch] logsumexp(a * l) when the caller has it (no second read), or null
  void* processed = nullptr;         // [batch, width] contiguous out (accumulation type), or null: t with the
                                     // filtered entries at -inf
  int num_threads = 1;
};

// The first stage of candidate mode: per row, the k largest of a * l (descending; ties: lower index first),
// their token ids, and logsumexp(a * l) over the whole row, in one read of the row.
struct TopkLogsumexpArgs {
  const void* logits = nullptr;  // [batch, vocab], element stride 1
  int64_t batch = 0, vocab = 0, logits_row_stride = 0;
  DType logits_dtype = DType::kFloat32;
  int64_t k = 0;
  double inverse_temperature = 1.0;
  void* top_values = nullptr;    // [batch, k] contiguous out, accumulation type
  int64_t* top_indices = nullptr;  // [batch, k] contiguous out
  void* lse = nullptr;           // [batch] out, accumulation type
  int num_threads = 1;
};

// Device buffers of the CUDA launcher: the tilted rows (the `processed` output when there is one), each
// (row, vocabulary split)'s max and NaN/+inf count, and each row's TiltProblem (written, never thrown: the
// caller reads them back).
struct TiltedSamplingWorkspace {
  float* tilted = nullptr;       // [batch, width]
  float* partial_max = nullptr;  // [batch, splits]
  int* partial_bad = nullptr;    // [batch, splits]
  int* problems = nullptr;       // [batch]
  int64_t splits = 1;
};

namespace cuda {
// float32, bfloat16 and float16 logits; candidate values in float32.
void tilted_sampling(const TiltedSamplingArgs& args, const TiltedSamplingWorkspace& workspace, int device,
                     void* stream);
}  // namespace cuda

namespace cpu {
void topk_logsumexp(const TopkLogsumexpArgs& args);
// -1 when every row is fine, else row * kTiltProblemCount + TiltProblem of the first bad row.
int64_t tilted_sampling(const TiltedSamplingArgs& args);
}  // namespace cpu

}  // namespace moafast
