"""The one layer between tensors and kernel calls: argument checks, dtype codes, device and stream.

Every check raises TypeError (wrong dtype) or ValueError (wrong shape, device, value) naming the
argument and what was expected, so no bad input reaches a kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from moafast._ext import extension, require_cuda_kernels

FLOAT_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
INDEX_DTYPES = (torch.int64, torch.int32)
_DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.bfloat16: 2, torch.float16: 3}


def dtype_code(dtype: torch.dtype) -> int:
    return _DTYPE_CODES[dtype]


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 for float64 inputs, float32 for every other floating dtype."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _names(dtypes: Iterable[torch.dtype]) -> str:
    return ", ".join(str(d).removeprefix("torch.") for d in dtypes)


def check_dtype(name: str, tensor: torch.Tensor, allowed: Iterable[torch.dtype]) -> None:
    allowed = tuple(allowed)
    if tensor.dtype not in allowed:
        raise TypeError(f"{name}: expected dtype {_names(allowed)}, got {str(tensor.dtype).removeprefix('torch.')}")


def check_tensor(name: str, value: object) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    return value


def check_shape(name: str, tensor: torch.Tensor, expected: tuple[int, ...], described: str) -> None:
    """`described` spells the expected shape symbolically, e.g. '[N] with N = logits.shape[0]'."""
    if tuple(tensor.shape) != tuple(expected):
        raise ValueError(f"{name}: expected shape {described} = {list(expected)}, got {list(tensor.shape)}")


def check_ndim(name: str, tensor: torch.Tensor, ndim: int, described: str) -> None:
    if tensor.dim() != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D tensor {described}, got shape {list(tensor.shape)}")


def check_same_device(**tensors: torch.Tensor | None) -> torch.device:
    device = None
    for tensor in tensors.values():
        if tensor is None:
            continue
        if device is None:
            device = tensor.device
        elif tensor.device != device:
            listed = ", ".join(f"{name} on {t.device}" for name, t in tensors.items() if t is not None)
            raise ValueError(f"all tensors must be on one device, got {listed}")
    if device.type not in ("cpu", "cuda", "meta"):
        raise ValueError(f"moafast kernels run on cpu and cuda tensors, got {device}")
    return device


def unit_stride_rows(tensor: torch.Tensor) -> torch.Tensor:
    """A 2-D view whose last dimension has stride 1 (copying only when it does not)."""
    return tensor if tensor.stride(-1) == 1 or tensor.shape[-1] <= 1 else tensor.contiguous()


def launch_target(device: torch.device) -> tuple[int, int]:
    """(device index, stream handle) for the launcher: (-1, 0) on the CPU."""
    if device.type == "cpu":
        return -1, 0
    require_cuda_kernels(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return index, torch.cuda.current_stream(index).cuda_stream


def num_threads() -> int:
    """The CPU kernels use as many OpenMP threads as torch does."""
    return torch.get_num_threads()


def kernel_may_run_directly(*tensors: torch.Tensor | None) -> bool:
    """Whether an eager call on ``tensors`` that autograd will not differentiate may run the op's CPU/CUDA
    implementation without the torch.library dispatcher (30-50 us of a small call) for the same result: eager
    mode, no torch function or dispatch mode, no torch.func transform and no torch.jit trace active, plain
    tensors on the CPU or a GPU. Everything else (torch.compile, fake and meta tensors, tracing, vmap) goes
    through the op."""
    if (torch.compiler.is_compiling() or torch._C._is_torch_function_mode_enabled()
            or torch._C._len_torch_dispatch_stack() or torch._C._functorch.peek_interpreter_stack() is not None
            or torch._C._get_tracing_state() is not None):
        return False
    return all(tensor is None or (type(tensor) is torch.Tensor and (tensor.is_cpu or tensor.is_cuda))
               for tensor in tensors)


def differentiated(*tensors: torch.Tensor | None) -> bool:
    """Whether autograd records a call on ``tensors``: grad mode on and one of them requires grad."""
    return torch.is_grad_enabled() and any(tensor is not None and tensor.requires_grad for tensor in tensors)


def functorch_transform_active() -> bool:
    """Whether a torch.func transform (grad, vjp, vmap, jacrev, ...) wraps this eager call. The autograd that
    torch.library generates for a custom op cannot take part in one (pytorch/pytorch#168393), so the
    differentiable ops route such calls through :func:`function_for_transforms`."""
    return not torch.compiler.is_compiling() and torch._C._functorch.peek_interpreter_stack() is not None


def function_for_transforms(name: str, forward: Callable, setup_context: Callable, backward: Callable,
                            vmap: Callable | None = None) -> type[torch.autograd.Function]:
    """A ``torch.autograd.Function`` that runs an op's ``forward`` with the op's own ``setup_context`` and
    ``backward``, which torch.func transforms accept. ``vmap``, the batching rule, when the op is batched
    already; without one, vmap runs the op through PyTorch's per-element loop."""
    body = {"forward": staticmethod(forward), "setup_context": staticmethod(setup_context),
            "backward": staticmethod(backward)}
    if vmap is None:
        body["generate_vmap_rule"] = True
    else:
        body["vmap"] = staticmethod(vmap)
    return type(name, (torch.autograd.Function,), body)


def batch_first(tensor: torch.Tensor | None, dim: int | None, size: int) -> torch.Tensor | None:
    """A vmapped argument with its vmapped dimension first (an argument vmap does not map, expanded to it)."""
    if tensor is None:
        return None
    return tensor.movedim(dim, 0) if dim is not None else tensor.expand(size, *tensor.shape)
