// pybind11 bindings: raw pointers, sizes, strides and dtype codes in; no torch types cross here.
// Argument checking happens in moafast/ops/_plumbing.py; these functions trust their inputs.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>

#include "cpu/isa.h"
#include "moafast/cuda_runtime_info.h"
#include "moafast/hypervolume.h"
#include "moafast/logprobs.h"
#include "moafast/tilted_sampling.h"

namespace py = pybind11;
using namespace moafast;

namespace {

template <typename T> T* as_ptr(uintptr_t address) { return reinterpret_cast<T*>(address); }

void raise_bad_target(int64_t row, int64_t target, int64_t vocab, int64_t ignore_index) {
  throw py::index_error("targets[" + std::to_string(row) + "] = " + std::to_string(target) +
                        " is outside [0, " + std::to_string(vocab) + ") and is not ignore_index (" +
                        std::to_string(ignore_index) + ")");
}

void raise_if_bad(int64_t bad_row, uintptr_t targets, int64_t targets_stride, int64_t vocab, int64_t ignore_index) {
  if (bad_row >= 0)
    raise_bad_target(bad_row, as_ptr<const int64_t>(targets)[bad_row * targets_stride], vocab, ignore_index);
}

void logprobs_forward(uintptr_t logits, int64_t rows, int64_t vocab, int64_t logits_row_stride, uintptr_t targets,
                      int64_t targets_stride, int64_t ignore_index, uintptr_t logp, uintptr_t lse, int dtype,
                      int device, uintptr_t stream, int num_threads) {
  const LogprobsForwardArgs args{as_ptr<const void>(logits), rows, vocab, logits_row_stride,
                                 as_ptr<const int64_t>(targets), targets_stride, ignore_index,
                                 as_ptr<void>(logp), as_ptr<void>(lse), static_cast<DType>(dtype)};
  int64_t bad_row = -1;
  {
    py::gil_scoped_release release;
    if (device >= 0)
      cuda::logprobs_forward(args, device, as_ptr<void>(stream));
    else
      bad_row = cpu::logprobs_forward(args, num_threads);
  }
  raise_if_bad(bad_row, targets, targets_stride, vocab, ignore_index);
}

void logprobs_backward(uintptr_t logits, int64_t rows, int64_t vocab, int64_t logits_row_stride, uintptr_t targets,
                       int64_t targets_stride, int64_t ignore_index, uintptr_t lse, uintptr_t grad_logp,
                       int64_t grad_logp_stride, uintptr_t grad_lse, int64_t grad_lse_stride, uintptr_t grad_logits,
                       int dtype, int device, uintptr_t stream, int num_threads) {
  const LogprobsBackwardArgs args{as_ptr<const void>(logits), rows, vocab, logits_row_stride,
                                  as_ptr<const int64_t>(targets), targets_stride, ignore_index,
                                  as_ptr<const void>(lse), as_ptr<const void>(grad_logp), grad_logp_stride,
                                  as_ptr<const void>(grad_lse), grad_lse_stride, as_ptr<void>(grad_logits),
                                  static_cast<DType>(dtype)};
  int64_t bad_row = -1;
  {
    py::gil_scoped_release release;
    if (device >= 0)
      cuda::logprobs_backward(args, device, as_ptr<void>(stream));
    else
      bad_row = cpu::logprobs_backward(args, num_threads);
  }
  raise_if_bad(bad_row, targets, targets_stride, vocab, ignore_index);
}

int64_t hypervolume(uintptr_t points, uintptr_t ref, int64_t ref_batch_stride, uintptr_t mask, int64_t batch, int64_t n,
                 int64_t d, bool maximize, uintptr_t hv, uintptr_t contributions, uintptr_t grad_points,
                 uintptr_t grad_ref, int device, uintptr_t stream, int num_threads) {
  HypervolumeArgs args;
  args.points = as_ptr<const double>(points);
  args.ref = as_ptr<const double>(ref);
  args.ref_batch_stride = ref_batch_stride;
  args.mask = as_ptr<const uint8_t>(mask);
  args.batch = batch;
  args.n = n;
  args.d = d;
  args.maximize = maximize;
  args.hv = as_ptr<double>(hv);
  args.contributions = as_ptr<double>(contributions);
  args.grad_points = as_ptr<double>(grad_points);
  args.grad_ref = as_ptr<double>(grad_ref);
  args.num_threads = num_threads;
  py::gil_scoped_release release;
  if (device >= 0) {
    cuda::hypervolume_small_sets(args, device, as_ptr<void>(stream));
    return -1;
  }
  const int64_t bad = cpu::first_non_finite(args);
  if (bad == -1) cpu::hypervolume(args);
  return bad;
}

int64_t tilted_sampling(uintptr_t logits, int64_t batch, int64_t vocab, int64_t logits_row_stride, int logits_dtype,
                        uintptr_t values, int64_t objectives, int64_t values_objective_stride,
                        int64_t values_row_stride, int values_dtype, uintptr_t candidates, int64_t width,
                        int64_t candidates_row_stride, uintptr_t coefficients, double inverse_temperature,
                        int64_t top_k, double top_p, double min_p, uintptr_t seeds, uintptr_t offsets,
                        uintptr_t streams, uintptr_t tokens, uintptr_t tilted_logprobs, uintptr_t base_logprobs,
                        uintptr_t base_lse, uintptr_t processed, int num_threads, uintptr_t workspace_tilted,
                        uintptr_t partial_max, uintptr_t partial_bad, uintptr_t problems, int64_t splits, int device,
                        uintptr_t stream) {
  TiltedSamplingArgs args;
  args.logits = as_ptr<const void>(logits);
  args.batch = batch;
  args.vocab = vocab;
  args.logits_row_stride = logits_row_stride;
  args.logits_dtype = static_cast<DType>(logits_dtype);
  args.values = as_ptr<const void>(values);
  args.objectives = objectives;
  args.values_objective_stride = values_objective_stride;
  args.values_row_stride = values_row_stride;
  args.values_dtype = static_cast<DType>(values_dtype);
  args.candidates = as_ptr<const int64_t>(candidates);
  args.width = width;
  args.candidates_row_stride = candidates_row_stride;
  args.coefficients = as_ptr<const double>(coefficients);
  args.inverse_temperature = inverse_temperature;
  args.top_k = top_k;
  args.top_p = top_p;
  args.min_p = min_p;
  args.seeds = as_ptr<const int64_t>(seeds);
  args.offsets = as_ptr<const int64_t>(offsets);
  args.streams = as_ptr<const int64_t>(streams);
  args.tokens = as_ptr<int64_t>(tokens);
  args.tilted_logprobs = as_ptr<double>(tilted_logprobs);
  args.base_logprobs = as_ptr<double>(base_logprobs);
  args.base_lse = as_ptr<const double>(base_lse);
  args.processed = as_ptr<void>(processed);
  args.num_threads = num_threads;
  py::gil_scoped_release release;
  if (device < 0) return cpu::tilted_sampling(args);
  TiltedSamplingWorkspace workspace;
  workspace.tilted = as_ptr<float>(workspace_tilted);
  workspace.partial_max = as_ptr<float>(partial_max);
  workspace.partial_bad = as_ptr<int>(partial_bad);
  workspace.problems = as_ptr<int>(problems);
  workspace.splits = splits;
  cuda::tilted_sampling(args, workspace, device, as_ptr<void>(stream));
  return -1;  // on CUDA the row problems land in `problems`
}

void topk_logsumexp(uintptr_t logits, int64_t batch, int64_t vocab, int64_t logits_row_stride, int logits_dtype,
                    int64_t k, double inverse_temperature, uintptr_t top_values, uintptr_t top_indices, uintptr_t lse,
                    int num_threads) {
  TopkLogsumexpArgs args;
  args.logits = as_ptr<const void>(logits);
  args.batch = batch;
  args.vocab = vocab;
  args.logits_row_stride = logits_row_stride;
  args.logits_dtype = static_cast<DType>(logits_dtype);
  args.k = k;
  args.inverse_temperature = inverse_temperature;
  args.top_values = as_ptr<void>(top_values);
  args.top_indices = as_ptr<int64_t>(top_indices);
  args.lse = as_ptr<void>(lse);
  args.num_threads = num_threads;
  py::gil_scoped_release release;
  cpu::topk_logsumexp(args);
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "moafast compiled kernels (no libtorch): pointers, sizes, strides and dtype codes in.";

  m.def("logprobs_forward", &logprobs_forward, "Fused log-softmax + gather; device < 0 runs on the CPU.");
  m.def("logprobs_backward", &logprobs_backward, "grad_logits = (g_lse - g_logp) * softmax + onehot * g_logp.");

  m.def("hypervolume", &hypervolume,
        "Exact hypervolume, contributions and one-sided gradients of [batch, n, d] float64 sets; device < 0 "
        "runs on the CPU, device >= 0 takes sets of at most 16 points in 2 or 3 objectives; a zero address "
        "skips that output. On the CPU, non-finite input computes nothing and returns -2 (ref) or the first "
        "set * n + point with a non-finite unmasked coordinate; otherwise -1.");
  m.def("tilted_sampling", &tilted_sampling,
        "Tilt, filter (top-k, top-p, min-p) and draw per row (device < 0: the CPU; else CUDA with the workspace "
        "buffers, row problems written to `problems`); a zero address skips that output. On the CPU "
        "it returns -1, or row * 4 + problem (1: NaN or +inf in the tilted row, 2: no finite entry, 3: a non-finite "
        "coefficient) of the first bad row.");
  m.def("topk_logsumexp", &topk_logsumexp,
        "Per row on the CPU: the k largest of logits / T (descending, ties by lower index), their indices and "
        "logsumexp(logits / T), in one read of the row.");
  m.def("cpu_isa", [] { return cpu::isa_name(cpu::active_isa()); }, "The CPU instruction set the kernels run with.");
  m.def("set_cpu_isa", &cpu::set_isa, py::arg("name"),
        "Force the CPU kernels' ISA: 'auto', 'baseline', 'avx2' or 'avx512' (for tests and comparisons).");
  m.def("cpu_isas_usable", [] {
    py::list out;
    for (cpu::Isa isa : {cpu::Isa::kBaseline, cpu::Isa::kAvx2, cpu::Isa::kAvx512})
      if (cpu::isa_compiled(isa) && cpu::isa_supported_by_cpu(isa)) out.append(cpu::isa_name(isa));
    return out;
  });
  m.def("build_info", [] {
    const cuda::RuntimeInfo cuda_info = cuda::runtime_info();
    py::dict info;
    info["version"] = MOAFAST_VERSION;
    info["cuda_compiled"] = cuda_info.compiled;
    info["cuda_runtime_version"] = cuda_info.runtime_version;
    info["cuda_architectures"] = cuda_info.architectures;
#if defined(_OPENMP)
    info["openmp"] = _OPENMP;
#else
    info["openmp"] = 0;
#endif
    return info;
  });
  m.def("cuda_runtime_info", [] {
    const cuda::RuntimeInfo info = cuda::runtime_info();
    py::dict out;
    out["compiled"] = info.compiled;
    out["runtime_version"] = info.runtime_version;
    out["driver_version"] = info.driver_version;
    out["device_count"] = info.device_count;
    out["error"] = info.error;
    return out;
  }, "Queries the CUDA driver through the runtime linked into this module (no torch involved).");
}
