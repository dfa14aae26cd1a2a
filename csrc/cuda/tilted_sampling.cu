// The tilted sampler on CUDA (float32, bfloat16 and float16 logits). Two kernels:
//  1. tilt: blocks tile (vocabulary chunk, row), so a small batch still fills the GPU; each writes
//     t = a * l + sum_k c_k Q_k to a float workspace row and its chunk's max and NaN/+inf flag;
//  2. row: one 1024-thread block per row over the workspace (L2-resident): thresholds by bisection over
//     order-preserving 32-bit keys (top-k: the largest key with at least k entries at or above it; top-p: the
//     largest key whose upper mass reaches p of the survivors'), min-p against the max, then the inverse-CDF
//     draw: per-thread contiguous chunks, a block scan of their kept mass, one thread scans the chunk that
//     holds u * total. u comes from the same Philox stream as the CPU (moafast/philox.h).
// Compiled-only so far: no GPU has run it; tests/test_tilted_sampling_cuda.py and bench/gpu_check.sh will.
#include <cuda_runtime.h>

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <stdexcept>

#include "cuda/device_guard.cuh"
#include "moafast/philox.h"
#include "moafast/tilted_sampling.h"

namespace moafast::cuda {
namespace {

constexpr int kTiltThreads = 256;
constexpr int kRowThreads = 1024;

struct Maximum {
  template <typename V> __device__ __forceinline__ V operator()(V a, V b) const { return a > b ? a : b; }
};

__device__ __forceinline__ uint32_t order_key(float x) {
  const uint32_t bits = __float_as_uint(x);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

__device__ __forceinline__ float key_value(uint32_t key) {
  return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}

template <typename T, typename TV>
__global__ void __launch_bounds__(kTiltThreads)
    tilt_kernel(TiltedSamplingArgs args, float* tilted, int64_t chunk, float* partial_max, int* partial_bad) {
  using S = typename Storage<T>::type;
  using SV = typename Storage<TV>::type;
  const int64_t b = blockIdx.y, split = blockIdx.x;
  const int64_t begin = split * chunk, end = min(args.width, begin + chunk);
  const S* logits = static_cast<const S*>(args.logits) + b * args.logits_row_stride;
  const int64_t* ids = args.candidates ? args.candidates + b * args.candidates_row_stride : nullptr;
  const double* coefficients = args.coefficients + b * args.objectives;
  const float scale = static_cast<float>(args.inverse_temperature);
  float max = -INFINITY;
  int bad = 0;
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) {
    float value = scale * Storage<T>::load(logits[ids ? ids[j] : j]);
    for (int64_t k = 0; k < args.objectives; ++k) {
      const float c = static_cast<float>(coefficients[k]);
      if (c == 0.0f) continue;
      const SV* q = static_cast<const SV*>(args.values) + k * args.values_objective_stride + b * args.values_row_stride;
      value += c * static_cast<float>(Storage<TV>::load(q[j]));
    }
    tilted[b * args.width + j] = value;
    max = fmaxf(max, value);  // NaN never wins
    bad |= !(value < INFINITY);
  }
  using ReduceFloat = cub::BlockReduce<float, kTiltThreads>;
  using ReduceInt = cub::BlockReduce<int, kTiltThreads>;
  __shared__ typename ReduceFloat::TempStorage float_storage;
  __shared__ typename ReduceInt::TempStorage int_storage;
  const float block_max = ReduceFloat(float_storage).Reduce(max, Maximum());
  const int block_bad = ReduceInt(int_storage).Sum(bad);
  if (threadIdx.x == 0) {
    partial_max[b * gridDim.x + split] = block_max;
    partial_bad[b * gridDim.x + split] = block_bad;
  }
}

struct RowShared {
  union {
    cub::BlockReduce<double, kRowThreads>::TempStorage reduce_double;
    cub::BlockReduce<int, kRowThreads>::TempStorage reduce_int;
    cub::BlockReduce<int64_t, kRowThreads>::TempStorage reduce_index;
    cub::BlockReduce<float, kRowThreads>::TempStorage reduce_float;
    cub::BlockScan<double, kRowThreads>::TempStorage scan;
  } storage;
  float max, broadcast_float;
  double broadcast_double;
  int problem, broadcast_int;
  int64_t index;
};

struct Sum {
  template <typename V> __device__ __forceinline__ V operator()(V a, V b) const { return a + b; }
};

// The block-wide reduction of `value`, returned to every thread through `slot`.
template <typename V, typename Op>
__device__ V all_reduce(typename cub::BlockReduce<V, kRowThreads>::TempStorage& storage, V& slot, V value, Op op) {
  const V reduced = cub::BlockReduce<V, kRowThreads>(storage).Reduce(value, op);
  if (threadIdx.x == 0) slot = reduced;
  __syncthreads();
  const V out = slot;
  __syncthreads();
  return out;
}

__device__ double block_sum(RowShared& shared, double value) {
  return all_reduce(shared.storage.reduce_double, shared.broadcast_double, value, Sum());
}

__device__ int block_count(RowShared& shared, int value) {
  return all_reduce(shared.storage.reduce_int, shared.broadcast_int, value, Sum());
}

__device__ float block_max(RowShared& shared, float value) {
  return all_reduce(shared.storage.reduce_float, shared.broadcast_float, value, Maximum());
}

// The k-th largest entry: the largest key with at least k entries at or above it, one bit at a time.
__device__ float kth_largest(RowShared& shared, const float* t, int64_t width, int64_t k) {
  uint32_t result = 0;
  for (int bit = 31; bit >= 0; --bit) {
    const uint32_t candidate = result | (1u << bit);
    int count = 0;
    for (int64_t j = threadIdx.x; j < width; j += blockDim.x) count += order_key(t[j]) >= candidate;
    if (block_count(shared, count) >= k) result = candidate;
  }
  return key_value(result);
}

// Top-p over the survivors t >= floor: the largest key whose upper mass reaches p of the survivors' mass.
__device__ float top_p_threshold(RowShared& shared, const float* t, int64_t width, float floor, float max, double p) {
  double mass = 0.0;
  for (int64_t j = threadIdx.x; j < width; j += blockDim.x)
    if (t[j] >= floor) mass += exp(static_cast<double>(t[j] - max));
  const double target = p * block_sum(shared, mass);
  uint32_t result = 0;
  for (int bit = 31; bit >= 0; --bit) {
    const uint32_t candidate = result | (1u << bit);
    double upper = 0.0;
    for (int64_t j = threadIdx.x; j < width; j += blockDim.x)
      if (t[j] >= floor && order_key(t[j]) >= candidate) upper += exp(static_cast<double>(t[j] - max));
    if (block_sum(shared, upper) >= target) result = candidate;
  }
  return key_value(result);
}

template <typename T>
__device__ double row_logsumexp(RowShared& shared, const TiltedSamplingArgs& args, int64_t b) {
  using S = typename Storage<T>::type;
  const S* logits = static_cast<const S*>(args.logits) + b * args.logits_row_stride;
  const float scale = static_cast<float>(args.inverse_temperature);
  float max = -INFINITY;
  for (int64_t v = threadIdx.x; v < args.vocab; v += blockDim.x) max = fmaxf(max, scale * Storage<T>::load(logits[v]));
  max = block_max(shared, max);
  double sum = 0.0;
  for (int64_t v = threadIdx.x; v < args.vocab; v += blockDim.x)
    sum += exp(static_cast<double>(scale * Storage<T>::load(logits[v]) - max));
  return static_cast<double>(max) + log(block_sum(shared, sum));
}

template <typename T>
__global__ void __launch_bounds__(kRowThreads) row_kernel(TiltedSamplingArgs args, float* tilted, int splits,
                                                          const float* partial_max, const int* partial_bad,
                                                          int* problems) {
  __shared__ RowShared shared;
  const int64_t b = blockIdx.x, width = args.width;
  const float* t = tilted + b * width;
  if (threadIdx.x == 0) {
    float max = -INFINITY;
    int bad = 0;
    for (int s = 0; s < splits; ++s) max = fmaxf(max, partial_max[b * splits + s]), bad += partial_bad[b * splits + s];
    int problem = bad ? kTiltNonFinite : (max == -INFINITY ? kTiltNoToken : kTiltOk);
    for (int64_t k = 0; k < args.objectives; ++k)
      if (!isfinite(args.coefficients[b * args.objectives + k])) problem = kTiltBadCoefficients;
    shared.max = max;
    shared.problem = problem;
    problems[b] = problem;
  }
  __syncthreads();
  if (shared.problem != kTiltOk) return;
  const float max = shared.max;
  float threshold = -INFINITY;
  if (args.top_k > 0 && args.top_k < width) threshold = kth_largest(shared, t, width, args.top_k);
  if (args.top_p < 1.0) threshold = top_p_threshold(shared, t, width, threshold, max, args.top_p);
  if (args.min_p > 0.0) threshold = fmaxf(threshold, max + logf(static_cast<float>(args.min_p)));
  if (args.tokens) {
    const int64_t chunk = (width + blockDim.x - 1) / blockDim.x;
    const int64_t begin = threadIdx.x * chunk, end = min(width, begin + chunk);
    double own = 0.0;
    int64_t last = -1;
    for (int64_t j = begin; j < end; ++j)
      if (t[j] >= threshold && t[j] > -INFINITY) own += exp(static_cast<double>(t[j] - max)), last = j;
    double before, total;
    cub::BlockScan<double, kRowThreads>(shared.storage.scan).ExclusiveSum(own, before, total);
    if (threadIdx.x == 0) shared.index = -1;
    __syncthreads();
    const int64_t last_kept =
        cub::BlockReduce<int64_t, kRowThreads>(shared.storage.reduce_index).Reduce(last, Maximum());
    const double target = philox::uniform(static_cast<uint64_t>(args.seeds[b]), static_cast<uint64_t>(args.offsets[b]),
                                          static_cast<uint64_t>(args.streams[b])) * total;
    if (own > 0.0 && before <= target && target < before + own) {
      double mass = before;
      int64_t found = last;
      for (int64_t j = begin; j < end; ++j) {
        if (!(t[j] >= threshold) || t[j] == -INFINITY) continue;
        mass += exp(static_cast<double>(t[j] - max));
        if (mass > target) {
          found = j;
          break;
        }
      }
      shared.index = found;
    }
    __syncthreads();
    const int64_t index = shared.index >= 0 ? shared.index : last_kept;  // last_kept is valid in thread 0
    double base_lse = 0.0;
    if (args.base_logprobs) base_lse = args.base_lse ? args.base_lse[b] : row_logsumexp<T>(shared, args, b);
    if (threadIdx.x == 0) {
      const int64_t token = args.candidates ? args.candidates[b * args.candidates_row_stride + index] : index;
      args.tokens[b] = token;
      if (args.tilted_logprobs) args.tilted_logprobs[b] = static_cast<double>(t[index] - max) - log(total);
      if (args.base_logprobs) {
        const auto* logits = static_cast<const typename Storage<T>::type*>(args.logits) + b * args.logits_row_stride;
        args.base_logprobs[b] =
            static_cast<double>(static_cast<float>(args.inverse_temperature) * Storage<T>::load(logits[token])) -
            base_lse;
      }
    }
  }
  if (args.processed) {
    float* out = static_cast<float*>(args.processed) + b * width;
    __syncthreads();
    for (int64_t j = threadIdx.x; j < width; j += blockDim.x) out[j] = t[j] >= threshold ? t[j] : -INFINITY;
  }
}

template <typename T, typename TV>
void launch(const TiltedSamplingArgs& args, const TiltedSamplingWorkspace& workspace, cudaStream_t stream) {
  const int64_t chunk = (args.width + workspace.splits - 1) / workspace.splits;
  const dim3 tilt_grid(static_cast<unsigned>(workspace.splits), static_cast<unsigned>(args.batch));
  tilt_kernel<T, TV><<<tilt_grid, kTiltThreads, 0, stream>>>(args, workspace.tilted, chunk, workspace.partial_max,
                                                               workspace.partial_bad);
  check(cudaGetLastError(), "tilted sampling: tilt kernel launch");
  row_kernel<T><<<static_cast<unsigned>(args.batch), kRowThreads, 0, stream>>>(
      args, workspace.tilted, static_cast<int>(workspace.splits), workspace.partial_max, workspace.partial_bad,
      workspace.problems);
  check(cudaGetLastError(), "tilted sampling: row kernel launch");
}

template <typename T> void dispatch_values(const TiltedSamplingArgs& args, const TiltedSamplingWorkspace& workspace,
                                           cudaStream_t stream) {
  if (args.values_dtype == args.logits_dtype)
    launch<T, T>(args, workspace, stream);
  else
    launch<T, float>(args, workspace, stream);
}

}  // namespace

void tilted_sampling(const TiltedSamplingArgs& args, const TiltedSamplingWorkspace& workspace, int device,
                     void* stream) {
  if (args.batch == 0) return;
  DeviceGuard guard(device);
  const auto cuda_stream = static_cast<cudaStream_t>(stream);
  switch (args.logits_dtype) {
    case DType::kFloat32: return dispatch_values<float>(args, workspace, cuda_stream);
    case DType::kBFloat16: return dispatch_values<bf16_t>(args, workspace, cuda_stream);
    case DType::kFloat16: return dispatch_values<f16_t>(args, workspace, cuda_stream);
    case DType::kFloat64: throw std::invalid_argument("tilted sampling on CUDA takes float32, bfloat16, float16");
  }
}

}  // namespace moafast::cuda
