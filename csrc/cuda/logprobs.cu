// logprobs_from_logits on CUDA. Forward: one block per row, each thread folds its strided
// elements into (max, sum), then warp and block merges. Backward: blocks tile (row, vocab chunk).
#include <cuda_runtime.h>

#include "cuda/device_guard.cuh"
#include "moafast/logprobs.h"
#include "moafast/softmax_math.h"

namespace moafast::cuda {
namespace {

constexpr int kForwardThreads = 256;
constexpr int kBackwardThreads = 256;
constexpr int kBackwardElementsPerThread = 8;

template <typename A> __device__ __forceinline__ void warp_merge(A& max, A& sum) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    const A other_max = __shfl_xor_sync(0xffffffffu, max, offset);
    const A other_sum = __shfl_xor_sync(0xffffffffu, sum, offset);
    merge_softmax_stats(max, sum, other_max, other_sum);
  }
}

template <typename T>
__global__ void __launch_bounds__(kForwardThreads) forward_kernel(LogprobsForwardArgs args) {
  using A = typename Acc<T>::type;
  using S = typename Storage<T>::type;
  const int64_t n = blockIdx.x;
  const int64_t target = args.targets[n * args.targets_stride];
  A* logp = static_cast<A*>(args.logp);
  A* lse = static_cast<A*>(args.lse);
  if (target == args.ignore_index) {
    if (threadIdx.x == 0) logp[n] = lse[n] = A(0);
    return;
  }
  const S* row = static_cast<const S*>(args.logits) + n * args.logits_row_stride;
  A max = negative_infinity<A>();
  A sum = 0;
  for (int64_t j = threadIdx.x; j < args.vocab; j += blockDim.x)
    merge_softmax_stats(max, sum, A(Storage<T>::load(row[j])), A(1));
  warp_merge(max, sum);

  __shared__ A shared_max[kForwardThreads / 32];
  __shared__ A shared_sum[kForwardThreads / 32];
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (lane == 0) {
    shared_max[warp] = max;
    shared_sum[warp] = sum;
  }
  __syncthreads();
  if (warp != 0) return;
  max = lane < kForwardThreads / 32 ? shared_max[lane] : negative_infinity<A>();
  sum = lane < kForwardThreads / 32 ? shared_sum[lane] : A(0);
  warp_merge(max, sum);
  if (lane != 0) return;
  const A row_lse = lse_from_stats(max, sum);
  lse[n] = row_lse;
  const bool in_range = target >= 0 && target < args.vocab;
  logp[n] = in_range ? logprob_from_lse(A(Storage<T>::load(row[target])), row_lse) : A(NAN);
}

template <typename T>
__global__ void __launch_bounds__(kBackwardThreads) backward_kernel(LogprobsBackwardArgs args) {
  using A = typename Acc<T>::type;
  using S = typename Storage<T>::type;
  const int64_t n = blockIdx.x;
  const int64_t target = args.targets[n * args.targets_stride];
  const A row_lse = static_cast<const A*>(args.lse)[n];
  const bool zero_row = target == args.ignore_index || row_lse == negative_infinity<A>();
  const A* grad_lse = static_cast<const A*>(args.grad_lse);
  const A g_logp = static_cast<const A*>(args.grad_logp)[n * args.grad_logp_stride];
  const A g_lse = grad_lse ? grad_lse[n * args.grad_lse_stride] : A(0);
  const A softmax_coef = g_lse - g_logp;
  const A poison = target >= 0 && target < args.vocab ? A(0) : A(NAN);
  const S* row = static_cast<const S*>(args.logits) + n * args.logits_row_stride;
  S* out = static_cast<S*>(args.grad_logits) + n * args.vocab;
  const int64_t chunk = static_cast<int64_t>(blockDim.x) * kBackwardElementsPerThread;
  const int64_t end = min(args.vocab, (blockIdx.y + 1) * chunk);
  for (int64_t j = blockIdx.y * chunk + threadIdx.x; j < end; j += blockDim.x) {
    A grad = A(0);
    if (!zero_row)
      grad = logprob_grad(A(Storage<T>::load(row[j])), row_lse, softmax_coef, j == target ? g_logp : A(0)) + poison;
    out[j] = Storage<T>::store(grad);
  }
}

template <template <typename> class Launch, typename... Args> void dispatch(DType dtype, Args&&... args) {
  switch (dtype) {
    case DType::kFloat32: return Launch<float>::run(args...);
    case DType::kFloat64: return Launch<double>::run(args...);
    case DType::kBFloat16: return Launch<bf16_t>::run(args...);
    case DType::kFloat16: return Launch<f16_t>::run(args...);
  }
}

template <typename T> struct LaunchForward {
  static void run(const LogprobsForwardArgs& args, cudaStream_t stream) {
    forward_kernel<T><<<static_cast<unsigned>(args.rows), kForwardThreads, 0, stream>>>(args);
  }
};

template <typename T> struct LaunchBackward {
  static void run(const LogprobsBackwardArgs& args, cudaStream_t stream) {
    const int64_t chunk = int64_t{kBackwardThreads} * kBackwardElementsPerThread;
    const dim3 grid(static_cast<unsigned>(args.rows), static_cast<unsigned>((args.vocab + chunk - 1) / chunk));
    backward_kernel<T><<<grid, kBackwardThreads, 0, stream>>>(args);
  }
};

}  // namespace

void logprobs_forward(const LogprobsForwardArgs& args, int device, void* stream) {
  if (args.rows == 0) return;
  DeviceGuard guard(device);
  dispatch<LaunchForward>(args.dtype, args, static_cast<cudaStream_t>(stream));
  check(cudaGetLastError(), "logprobs_forward launch");
}

void logprobs_backward(const LogprobsBackwardArgs& args, int device, void* stream) {
  if (args.rows == 0 || args.vocab == 0) return;
  DeviceGuard guard(device);
  dispatch<LaunchBackward>(args.dtype, args, static_cast<cudaStream_t>(stream));
  check(cudaGetLastError(), "logprobs_backward launch");
}

}  // namespace moafast::cuda
