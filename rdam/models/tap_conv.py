"""Dilated convolutions on small feature maps, computed one kernel tap at a time.

At output stride 8 a 48-px face leaves 6x6 maps in the backbone's last stages, where the
dilated 3x3 convolutions put most of their kernel taps on zero padding (at dilation 4, 69 %
of them). oneDNN skips those taps in the forward pass, but its backward pass of such a
convolution ran at 0.20 of the machine's bf16 matmul rate, and that one layer of the default
face model (``layer4.0.conv2``, 512 -> 512 channels at dilation 4) took 43 % of the training
step's convolution time (``docs/benchmarks.md``, figure 9, ``conv_costs``).

:func:`conv2d_by_taps` computes the same convolution as one matrix product per tap, over only
the output positions where that tap lands inside the input: it does exactly the work that
counts, as large matrix products, and autograd's backward of them is matrix products too. The
products (each in the inputs' dtype: bf16 under autocast) are summed in float32 and the sum is
rounded once to that dtype; in bf16 that puts the error within about 2x of oneDNN's.

:class:`TapConv2d` is an ``nn.Conv2d`` (same parameters, same state dict) that takes this path
where it pays: on CPU, where the share of taps inside the input is below ``max_tap_share``
(measured: 2x faster forward + backward at a share of 0.31, slower at 0.6 and above). Elsewhere
it is the plain convolution. :func:`use_tap_convolutions` swaps it in for a model's eligible
convolutions (stride 1, no groups, zero "same" padding, dilation > 1).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: Below this share of kernel taps inside the input, :class:`TapConv2d` computes by taps.
DEFAULT_MAX_TAP_SHARE = 0.5


def axis_taps(size: int, kernel: int, dilation: int, padding: int) -> list[tuple[int, int, int]]:
    """Per kernel tap of one axis: ``(tap, first, end)``, the output positions ``first <= o <
    end`` where it reads inside the input (``o + tap * dilation - padding`` in ``[0, size)``,
    stride 1 and an output as long as the input); taps that never do are left out."""
    out = []
    for tap in range(kernel):
        offset = tap * dilation - padding
        first, end = max(0, -offset), min(size, size - offset)
        if first < end:
            out.append((tap, first, end))
    return out


def tap_share(height: int, width: int, kernel: tuple[int, int], dilation: tuple[int, int]) -> float:
    """The share of a "same"-padded, stride-1 convolution's kernel taps (over all output
    positions) that land inside a ``height x width`` input."""
    share = 1.0
    for size, k, d in ((height, kernel[0], dilation[0]), (width, kernel[1], dilation[1])):
        inside = sum(end - first for _, first, end in axis_taps(size, k, d, d * (k - 1) // 2))
        share *= inside / (size * k)
    return share


def _tap_plan(
    height: int, width: int, kernel: tuple[int, int], dilation: tuple[int, int]
) -> list[tuple[int, int, slice, slice, slice, slice]]:
    """Per tap that reads inside the input: ``(ty, tx, out_rows, out_cols, in_rows, in_cols)``,
    the output positions it contributes to and the input positions it reads there."""
    plan = []
    pad_y, pad_x = (dilation[0] * (kernel[0] - 1) // 2, dilation[1] * (kernel[1] - 1) // 2)
    for ty, y0, y1 in axis_taps(height, kernel[0], dilation[0], pad_y):
        sy = ty * dilation[0] - pad_y
        for tx, x0, x1 in axis_taps(width, kernel[1], dilation[1], pad_x):
            sx = tx * dilation[1] - pad_x
            plan.append(
                (
                    ty,
                    tx,
                    slice(y0, y1),
                    slice(x0, x1),
                    slice(y0 + sy, y1 + sy),
                    slice(x0 + sx, x1 + sx),
                )
            )
    return plan


class _ConvByTaps(torch.autograd.Function):
    """The convolution of :func:`conv2d_by_taps` with its own backward: per tap, the input's
    gradient ``grad_out @ W_tap^T`` added into the positions the tap read, and the weight's
    gradient ``x_tap^T @ grad_out`` (one matrix product over the batch and positions, so one
    rounding). Sums over taps are kept in float32 (at least) and rounded once at the end; each
    tap's product is in the inputs' dtype."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, dilation: tuple[int, int]
    ) -> torch.Tensor:
        plan = _tap_plan(x.shape[-2], x.shape[-1], tuple(weight.shape[-2:]), dilation)
        nhwc = x.permute(0, 2, 3, 1)  # (B, H, W, C_in): a plain view of a channels_last input
        taps = weight.permute(2, 3, 1, 0)  # (kh, kw, C_in, C_out)
        accumulate = torch.promote_types(x.dtype, torch.float32)
        cy, cx = (weight.shape[-2] - 1) // 2, (weight.shape[-1] - 1) // 2
        total = (nhwc @ taps[cy, cx]).to(accumulate)  # the centre tap reads every position
        for ty, tx, out_y, out_x, in_y, in_x in plan:
            if (ty, tx) != (cy, cx):
                total[:, out_y, out_x] += nhwc[:, in_y, in_x] @ taps[ty, tx]
        ctx.save_for_backward(x, weight)
        ctx.plan, ctx.centre = plan, (cy, cx)
        return total.to(x.dtype).permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        x, weight = ctx.saved_tensors
        nhwc = x.permute(0, 2, 3, 1)
        taps = weight.permute(2, 3, 1, 0)
        g = grad.permute(0, 2, 3, 1)  # (B, H, W, C_out)
        accumulate = torch.promote_types(x.dtype, torch.float32)
        cy, cx = ctx.centre
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = (g @ taps[cy, cx].transpose(0, 1)).to(accumulate)
            for ty, tx, out_y, out_x, in_y, in_x in ctx.plan:
                if (ty, tx) != (cy, cx):
                    grad_x[:, in_y, in_x] += g[:, out_y, out_x] @ taps[ty, tx].transpose(0, 1)
            grad_x = grad_x.to(x.dtype).permute(0, 3, 1, 2)
        if ctx.needs_input_grad[1]:
            w_taps = torch.zeros(taps.shape, dtype=weight.dtype, device=weight.device)
            for ty, tx, out_y, out_x, in_y, in_x in ctx.plan:
                read = nhwc[:, in_y, in_x].reshape(-1, nhwc.shape[-1])
                w_taps[ty, tx] = read.transpose(0, 1) @ g[:, out_y, out_x].reshape(-1, g.shape[-1])
            grad_w = w_taps.permute(3, 2, 0, 1)
        return grad_x, grad_w, None


def conv2d_by_taps(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    dilation: tuple[int, int],
) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride=1, padding=dilation * (k - 1) // 2,
    dilation=dilation)`` as one matrix product per kernel tap (differentiable).

    Under CPU autocast, ``x`` and ``weight`` are cast to its dtype first, as ``F.conv2d``'s are.

    Args:
        x: ``(B, C_in, H, W)``, any memory format (channels_last avoids copies).
        weight: ``(C_out, C_in, kh, kw)``, odd ``kh`` and ``kw``.
        bias: ``(C_out,)`` or None.

    Returns:
        ``(B, C_out, H, W)`` in channels_last memory format.
    """
    dtype = x.dtype
    autocast = x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
    if autocast and x.dtype != torch.float64:
        dtype = torch.get_autocast_dtype("cpu")  # as CPU autocast casts a convolution's inputs
    elif weight.dtype != x.dtype:
        raise RuntimeError(
            f"conv2d_by_taps: input type {x.dtype} and weight type {weight.dtype} differ "
            "(F.conv2d refuses them too outside autocast)"
        )
    with torch.autocast("cpu", enabled=False):
        out = _ConvByTaps.apply(x.to(dtype), weight.to(dtype), tuple(dilation))
        if bias is not None:
            out = out + bias.to(dtype).view(1, -1, 1, 1)
    return out


class TapConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (stride 1, no groups, zero "same" padding, dilation > 1) computed by
    :func:`conv2d_by_taps` on CPU where fewer than ``max_tap_share`` of its taps land inside the
    input; the plain convolution otherwise. Same parameters and state dict as ``nn.Conv2d``."""

    max_tap_share: float = DEFAULT_MAX_TAP_SHARE

    @classmethod
    def eligible(cls, conv: nn.Module) -> bool:
        if type(conv) is not nn.Conv2d:
            return False
        k, d, p = conv.kernel_size, conv.dilation, conv.padding
        return (
            conv.stride == (1, 1)
            and conv.groups == 1
            and conv.padding_mode == "zeros"
            and max(d) > 1
            and all(kk % 2 == 1 for kk in k)
            and isinstance(p, tuple)
            and p == (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2)
        )

    def by_taps(self, x: torch.Tensor) -> bool:
        """Whether this input takes the tap path."""
        if x.device.type != "cpu" or x.dim() != 4 or 0 in x.shape[-2:]:
            return False
        if x.dtype != self.weight.dtype and not torch.is_autocast_enabled("cpu"):
            return False  # F.conv2d raises on mixed dtypes; so should this layer
        share = tap_share(x.shape[-2], x.shape[-1], self.kernel_size, self.dilation)
        return share < self.max_tap_share

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.by_taps(x):
            return conv2d_by_taps(x, self.weight, self.bias, self.dilation)
        return super().forward(x)


def use_tap_convolutions(
    model: nn.Module, max_tap_share: float = DEFAULT_MAX_TAP_SHARE
) -> list[str]:
    """Swap :class:`TapConv2d` in for every eligible ``nn.Conv2d`` of ``model``, in place,
    keeping its parameters (the same tensors) and buffers. Returns the swapped modules' names."""
    swapped = []
    for name, module in list(model.named_modules()):
        if not TapConv2d.eligible(module):
            continue
        module.__class__ = TapConv2d  # same object: parameters, hooks and state dict unchanged
        module.max_tap_share = max_tap_share
        swapped.append(name)
    return swapped
