"""The VGG4 feature networks of the entropy supplement, Table 1."""

import pytest
import torch
from torch import nn

from skentropy.nets import VGG4

# Table 1 of the entropy supplement (E.1), one column per variant: the input
# shape, the stride of the 5×5 convolutions, their widths, and the shape of
# the last feature map (the input of the table's final Linear layer).
TABLE_1 = {
    "28x28x1": ((1, 28, 28), 1, (64, 128, 256, 512), (512, 3, 3)),
    "32x32x3": ((3, 32, 32), 1, (32, 64, 128, 256), (256, 4, 4)),
    "96x96x3": ((3, 96, 96), 2, (128, 256, 512, 1024), (1024, 1, 1)),
}


def _images(shape, n=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=generator)


def _seeded_net(*args, **kwargs):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return VGG4(*args, **kwargs)


@pytest.mark.parametrize("variant", TABLE_1)
def test_output_shape_and_out_features(variant):
    input_shape, _, _, (channels, height, width) = TABLE_1[variant]
    net = _seeded_net(input_shape).eval()
    assert net.variant == variant
    assert net.out_features == channels * height * width
    with torch.no_grad():
        features = net(_images(input_shape))
    assert features.shape == (2, net.out_features)
    assert features.dtype == torch.float32


@pytest.mark.parametrize("variant", TABLE_1)
def test_parameter_count_matches_table_1(variant):
    """Conv 5×5 weights (no bias: batch norm follows) and batch-norm γ, β."""
    (in_channels, _, _), _, widths, _ = TABLE_1[variant]
    expected = 0
    for width in widths:
        expected += 5 * 5 * in_channels * width + 2 * width
        in_channels = width
    net = VGG4(TABLE_1[variant][0])
    assert sum(p.numel() for p in net.parameters()) == expected


@pytest.mark.parametrize("variant", TABLE_1)
def test_layers_follow_table_1(variant):
    """Conv → BatchNorm2d → ReLU, a 2×2 max-pool between the blocks."""
    input_shape, stride, widths, _ = TABLE_1[variant]
    layers = list(VGG4(input_shape).features)
    convs = [layer for layer in layers if isinstance(layer, nn.Conv2d)]
    assert [conv.out_channels for conv in convs] == list(widths)
    for conv in convs:
        assert conv.kernel_size == (5, 5)
        assert conv.stride == (stride, stride)
        assert conv.padding == (2, 2)
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d):
            assert isinstance(layers[i + 1], nn.BatchNorm2d)
            assert layers[i + 1].num_features == layer.out_channels
            assert isinstance(layers[i + 2], nn.ReLU)
    pools = [layer for layer in layers if isinstance(layer, nn.MaxPool2d)]
    assert len(pools) == len(widths) - 1
    assert all(pool.kernel_size == 2 and pool.stride == 2 for pool in pools)


@pytest.mark.parametrize(
    "input_shape, variant",
    [
        ((16, 16), "28x28x1"),
        ((1, 64, 64), "28x28x1"),
        ((3, 24, 32), "32x32x3"),
        ((3, 33, 33), "96x96x3"),
        ((3, 128, 128), "96x96x3"),
    ],
)
def test_variant_follows_input_shape(input_shape, variant):
    net = VGG4(input_shape).eval()
    assert net.variant == variant
    assert net.input_shape == (
        (1, *input_shape) if len(input_shape) == 2 else input_shape
    )
    with torch.no_grad():
        assert net(_images(input_shape, n=1)).shape == (1, net.out_features)


@pytest.mark.parametrize("resize", ["interpolate", "pad"])
def test_usps_sized_grey_images(resize):
    """16×16 images (USPS) reach the 28×28 variant either way, as (n, H, W)."""
    net = _seeded_net((16, 16), resize=resize).eval()
    images = _images((16, 16))
    with torch.no_grad():
        features = net(images)
        assert torch.equal(features, net(images[:, None]))
    assert features.shape == (2, 4608)


def _input_of_the_convolutions(net, images):
    """What ``net`` feeds its first convolution for ``images``."""
    seen = []
    hook = net.features.register_forward_pre_hook(lambda _, args: seen.append(args))
    with torch.no_grad():
        net(images)
    hook.remove()
    return seen[0][0]


def test_pad_puts_the_image_in_the_centre():
    net = VGG4((1, 16, 16), resize="pad").eval()
    images = _images((1, 16, 16))
    padded = _input_of_the_convolutions(net, images)
    assert padded.shape == (2, 1, 28, 28)
    assert torch.equal(padded[..., 6:22, 6:22], images)
    border = torch.ones(28, 28, dtype=torch.bool)
    border[6:22, 6:22] = False
    assert not padded[..., border].any()


def test_pad_odd_difference_and_non_square():
    net = VGG4((1, 15, 20), resize="pad").eval()
    images = _images((1, 15, 20))
    padded = _input_of_the_convolutions(net, images)
    # 13 rows: 6 above, 7 below; 8 columns: 4 on each side.
    assert torch.equal(padded[..., 6:21, 4:24], images)
    assert padded.abs().sum() == images.abs().sum()


@pytest.mark.parametrize("input_shape", [(1, 16, 16), (1, 56, 40), (3, 20, 20)])
def test_interpolate_keeps_a_constant_image(input_shape):
    """Bilinear up- and (antialiased) downsampling keep constant images."""
    net = VGG4(input_shape).eval()
    side = 28 if input_shape[0] == 1 else 32
    resized = _input_of_the_convolutions(net, torch.full((1, *input_shape), 0.5))
    assert resized.shape == (1, input_shape[0], side, side)
    torch.testing.assert_close(resized, torch.full_like(resized, 0.5))


def test_inputs_of_the_variant_size_are_not_resized():
    net = VGG4((1, 28, 28)).eval()
    images = _images((1, 28, 28))
    assert torch.equal(_input_of_the_convolutions(net, images), images)


def test_gradients_reach_the_first_convolution():
    net = _seeded_net((1, 16, 16))
    net(_images((1, 16, 16), n=4)).square().mean().backward()
    first_conv = net.features[0]
    assert isinstance(first_conv, nn.Conv2d)
    assert first_conv.weight.grad is not None
    assert first_conv.weight.grad.abs().sum() > 0


def test_eval_mode_is_deterministic():
    net = _seeded_net((3, 32, 32))
    images = _images((3, 32, 32), n=3)
    net.train()
    net(images)  # updates the batch-norm running statistics
    net.eval()
    with torch.no_grad():
        first = net(images)
        assert torch.equal(first, net(images))
        # In eval mode an image's features do not depend on the rest of the batch.
        torch.testing.assert_close(net(images[:1]), first[:1])


@pytest.mark.parametrize(
    "input_shape, match",
    [
        ((2, 28, 28), "1-channel"),
        ((4, 32, 32), "3-channel"),
        ((28,), "input_shape"),
        ((1, 1, 28, 28), "input_shape"),
        ((1, 0, 28), "positive"),
        (28, "input_shape"),
        ((1, 28.0, 28), "input_shape"),
        ((True, 28, 28), "input_shape"),
        ("28x28", "input_shape"),
    ],
)
def test_bad_input_shape_raises(input_shape, match):
    with pytest.raises(ValueError, match=match):
        VGG4(input_shape)


@pytest.mark.parametrize("variant", TABLE_1)
def test_width_scales_every_convolution(variant):
    input_shape, _, widths, _ = TABLE_1[variant]
    full = VGG4(input_shape)
    quarter = VGG4(input_shape, width=0.25)
    convs = [layer for layer in quarter.features if isinstance(layer, nn.Conv2d)]
    assert [conv.out_channels for conv in convs] == [w // 4 for w in widths]
    assert quarter.out_features == full.out_features // 4
    images = torch.rand((2, *input_shape))
    assert quarter.eval()(images).shape == (2, quarter.out_features)
    # the multiply-adds of the convolutions after the first shrink by 16
    ratio = sum(p.numel() for p in quarter.parameters()) / sum(
        p.numel() for p in full.parameters()
    )
    assert 1 / 17 < ratio < 1 / 15


@pytest.mark.parametrize("width", [0, -1, 17, True, "0.5", None])
def test_bad_width_raises(width):
    with pytest.raises(ValueError, match="width must be a number in"):
        VGG4((1, 28, 28), width=width)


def test_bad_resize_raises():
    with pytest.raises(ValueError, match="resize"):
        VGG4((1, 28, 28), resize="crop")
    with pytest.raises(ValueError, match="pad"):
        VGG4((1, 29, 28), resize="pad")
    with pytest.raises(ValueError, match="pad"):
        VGG4((3, 97, 64), resize="pad")
    assert VGG4((3, 40, 40), resize="pad").variant == "96x96x3"


@pytest.mark.parametrize(
    "shape",
    [(2, 3, 28, 28), (2, 1, 16, 16), (2, 28, 28, 1), (28, 28), (2, 1, 1, 28, 28)],
)
def test_images_of_the_wrong_shape_raise(shape):
    net = VGG4((1, 28, 28))
    with pytest.raises(ValueError, match="expects images of shape"):
        net(torch.zeros(shape))


def test_rgb_network_rejects_three_dimensional_input():
    net = VGG4((3, 32, 32))
    with pytest.raises(ValueError, match=r"\(n_samples, 3, 32, 32\)"):
        net(torch.zeros(2, 32, 32))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("resize", ["interpolate", "pad"])
def test_cuda_matches_cpu(resize):
    net = _seeded_net((1, 16, 16), resize=resize).eval()
    images = _images((1, 16, 16))
    with torch.no_grad():
        on_cpu = net(images)
        on_gpu = net.cuda()(images.cuda())
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-4, rtol=1e-3)
