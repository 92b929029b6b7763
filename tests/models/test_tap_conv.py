"""Dilated convolutions computed tap by tap (rdam.models.tap_conv) against F.conv2d: values
and gradients in float64 to rounding, under bf16 autocast to bf16 rounding, and the swap into
a model (same parameters, same state dict, same outputs)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from rdam.models.tap_conv import (
    TapConv2d,
    axis_taps,
    conv2d_by_taps,
    tap_share,
    use_tap_convolutions,
)


def test_axis_taps_and_tap_share_by_hand():
    # 6 positions, 3 taps at dilation 4, padding 4: tap 0 reads o - 4 (o = 4, 5), tap 1 reads o
    # (all), tap 2 reads o + 4 (o = 0, 1)
    assert axis_taps(6, 3, 4, 4) == [(0, 4, 6), (1, 0, 6), (2, 0, 2)]
    assert tap_share(6, 6, (3, 3), (4, 4)) == pytest.approx((10 / 18) ** 2)  # 0.309
    assert tap_share(6, 6, (3, 3), (2, 2)) == pytest.approx((14 / 18) ** 2)  # 0.605
    # a 1x1 map at dilation 2: only the centre tap reads it
    assert axis_taps(1, 3, 2, 2) == [(1, 0, 1)]
    assert tap_share(1, 1, (3, 3), (2, 2)) == pytest.approx(1 / 9)


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    k=st.sampled_from([3, 5]),
    dy=st.integers(1, 5),
    dx=st.integers(1, 5),
    bias=st.booleans(),
    channels_last=st.booleans(),
)
def test_values_and_gradients_equal_conv2d_in_float64(h, w, k, dy, dx, bias, channels_last):
    g = torch.Generator().manual_seed(h * 100 + w * 10 + k)
    x = torch.randn(2, 3, h, w, dtype=torch.float64, generator=g)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x.requires_grad_()
    weight = torch.randn(4, 3, k, k, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, generator=g, requires_grad=True) if bias else None
    padding = (dy * (k - 1) // 2, dx * (k - 1) // 2)
    expected = F.conv2d(x, weight, b, padding=padding, dilation=(dy, dx))
    got = conv2d_by_taps(x, weight, b, (dy, dx))
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    up = torch.randn(expected.shape, dtype=torch.float64, generator=g)
    wanted = [x, weight] + ([b] if bias else [])
    for a, e in zip(
        torch.autograd.grad(got, wanted, up), torch.autograd.grad(expected, wanted, up), strict=True
    ):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)


def test_under_bf16_autocast_it_matches_conv2d_to_bf16_rounding():
    torch.manual_seed(0)
    x = torch.randn(8, 64, 6, 6).to(memory_format=torch.channels_last).requires_grad_()
    weight = (0.05 * torch.randn(32, 64, 3, 3)).requires_grad_()
    exact = F.conv2d(x.double(), weight.double(), padding=4, dilation=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = conv2d_by_taps(x, weight, None, (4, 4))
        ref = F.conv2d(x, weight, padding=4, dilation=4)
    assert got.dtype == ref.dtype == torch.bfloat16  # as autocast gives a convolution
    assert got.is_contiguous(memory_format=torch.channels_last)
    err = (got.double() - exact).abs().mean()
    ref_err = (ref.double() - exact).abs().mean()
    # each tap's product is rounded to bf16 before the float32 sum: at most ~2x oneDNN's error
    assert err < 2.0 * ref_err, (err, ref_err)
    (grad_x,) = torch.autograd.grad(got.float().sum(), [x])
    (grad_ref,) = torch.autograd.grad(ref.float().sum(), [x])
    assert grad_x.dtype == torch.float32  # back through the cast, to the input's dtype
    torch.testing.assert_close(grad_x, grad_ref, rtol=0.02, atol=0.02)


def _net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # no dilation: stays nn.Conv2d
        nn.Conv2d(8, 8, 3, padding=4, dilation=4, bias=False),  # eligible
        nn.Conv2d(8, 8, 3, stride=2, padding=2, dilation=2),  # strided: not eligible
        nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2),  # grouped: not eligible
        nn.Conv2d(8, 8, 3, padding=1, dilation=2),  # not "same": not eligible
        nn.Conv2d(8, 4, 3, padding=2, dilation=2),  # eligible
    )


def test_use_tap_convolutions_swaps_only_eligible_layers_and_keeps_the_function():
    torch.manual_seed(0)
    net = _net().double()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    expected = net(x)
    params = [id(p) for p in net.parameters()]
    assert use_tap_convolutions(net) == ["1", "5"]
    assert [type(m) for m in net] == [
        nn.Conv2d,
        TapConv2d,
        nn.Conv2d,
        nn.Conv2d,
        nn.Conv2d,
        TapConv2d,
    ]
    assert [id(p) for p in net.parameters()] == params  # the same tensors: the optimiser's
    assert net.state_dict().keys() == before.keys()
    torch.testing.assert_close(net(x), expected, rtol=1e-12, atol=1e-12)
    # a swapped layer decides per input: dilation 4 on 6x6 (share 0.31) by taps
    assert net[1].by_taps(torch.zeros(1, 8, 6, 6, dtype=torch.float64))
    assert not net[1].by_taps(torch.zeros(1, 8, 24, 24, dtype=torch.float64))  # share 0.8
    assert not net[1].by_taps(torch.zeros(1, 8, 6, 6, dtype=torch.float64).to("meta"))


def test_a_layer_above_the_share_runs_the_plain_convolution(monkeypatch):
    conv = nn.Conv2d(4, 4, 3, padding=2, dilation=2)
    use_tap_convolutions(conv)
    assert isinstance(conv, TapConv2d)
    called = []
    monkeypatch.setattr("rdam.models.tap_conv.conv2d_by_taps", lambda *a: called.append(a) or a[0])
    x = torch.randn(1, 4, 12, 12)  # share 0.69: the plain path, bit for bit
    assert torch.equal(conv(x), F.conv2d(x, conv.weight, conv.bias, padding=2, dilation=2))
    assert not called
    conv(torch.randn(1, 4, 2, 2))  # share 0.25: by taps
    assert len(called) == 1


def test_dtypes_as_conv2d_outside_and_inside_autocast():
    x = torch.randn(1, 2, 3, 3, dtype=torch.bfloat16)
    weight = torch.randn(2, 2, 3, 3)
    with pytest.raises(RuntimeError, match="differ"):  # F.conv2d refuses mixed dtypes too
        conv2d_by_taps(x, weight, None, (2, 2))
    conv = nn.Conv2d(2, 2, 3, padding=2, dilation=2)
    use_tap_convolutions(conv)
    assert not conv.by_taps(x)  # so the layer leaves it to F.conv2d, which raises
    assert not conv.by_taps(torch.zeros(1, 2, 0, 3))  # and an empty map
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv.by_taps(x)
        assert conv(x).dtype == torch.bfloat16
        # float64 is left alone by autocast, as for a convolution
        x64 = torch.randn(1, 2, 3, 3, dtype=torch.float64)
        assert conv2d_by_taps(x64, weight.double(), None, (2, 2)).dtype == torch.float64
