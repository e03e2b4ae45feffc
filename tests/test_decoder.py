"""The decoder: shapes, gradients, and its safetensors export / strict import."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file as st_load_file

from stylekit import Decoder, ShapeError, WeightsError
from stylekit.weights import DECODER, WeightsFile, save_file, sha256_of


@pytest.fixture(scope="module")
def decoder() -> Decoder:
    torch.manual_seed(0)
    return Decoder()


@pytest.mark.parametrize(("h", "w"), [(5, 7), (3, 3), (2, 9), (4, 2)])
def test_output_is_eight_times_the_input(decoder: Decoder, h: int, w: int) -> None:
    with torch.no_grad():
        y = decoder(torch.randn(2, 512, h, w))
    assert y.shape == (2, 3, 8 * h, 8 * w)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()


@pytest.mark.parametrize("channels_last", [False, True])
def test_forward_matches_its_layers_run_in_order(channels_last: bool) -> None:
    """The forward writes each ReLU into the padding after it: the same output and gradients as
    ``decoder.net`` (the plain sequence of layers) run module by module."""
    dec = Decoder.from_pretrained()
    t = torch.randn(2, 512, 5, 4)
    if channels_last:
        dec, t = dec.to(memory_format=torch.channels_last), t.contiguous(memory_format=torch.channels_last)
    ta, tb = t.clone().requires_grad_(), t.clone().requires_grad_()
    ya, yb = dec(ta), dec.net(tb)
    assert torch.equal(ya, yb)
    ya.square().sum().backward()
    ga = [p.grad.clone() for p in dec.parameters()]
    dec.zero_grad(set_to_none=True)
    yb.square().sum().backward()
    torch.testing.assert_close(ta.grad, tb.grad)
    for a, p in zip(ga, dec.parameters()):
        torch.testing.assert_close(a, p.grad)


def test_every_trainable_parameter_gets_a_gradient(decoder: Decoder) -> None:
    decoder.zero_grad(set_to_none=True)
    t = torch.relu(torch.randn(2, 512, 3, 4, generator=torch.Generator().manual_seed(1)))
    decoder(t).square().mean().backward()
    params = dict(decoder.named_parameters())
    assert len(params) == 2 * 9  # nine convs: weight and bias
    for name, p in params.items():
        assert p.requires_grad, name
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    decoder.zero_grad(set_to_none=True)


@pytest.mark.parametrize(
    ("shape", "match"),
    [((1, 256, 4, 4), "512"), ((512, 4, 4), "512"), ((1, 512, 1, 4), "2x2"), ((1, 512, 4, 1), "2x2")],
)
def test_wrong_input_shape_raises(decoder: Decoder, shape, match) -> None:
    with pytest.raises(ShapeError, match=match):
        decoder(torch.randn(*shape))


# ------------------------------------------------------------------ save / from_file


def test_save_from_file_round_trip(decoder: Decoder, tmp_path: Path) -> None:
    path = tmp_path / "dec.safetensors"
    digest = decoder.save(path, metadata={"step": "123", "note": "hi"})
    assert digest == sha256_of(path.read_bytes())
    assert not list(tmp_path.glob("*.tmp"))  # atomic write left nothing behind

    stored = st_load_file(str(path))
    assert set(stored) == set(decoder.state_dict())
    assert all(v.dtype == torch.float16 for v in stored.values())

    loaded = Decoder.from_file(path, sha256=digest)
    assert loaded.meta["step"] == "123" and loaded.meta["note"] == "hi" and loaded.meta["format"] == "pt"
    for k, v in decoder.state_dict().items():
        got = loaded.state_dict()[k]
        assert got.dtype == torch.float32
        assert torch.equal(got, v.half().float()), k
    # and it computes what the fp16-rounded original computes
    t = torch.randn(1, 512, 3, 3)
    with torch.no_grad():
        assert torch.allclose(loaded(t), decoder(t), atol=5e-3, rtol=1e-2)


def test_save_fp32_is_exact(decoder: Decoder, tmp_path: Path) -> None:
    path = tmp_path / "dec32.safetensors"
    decoder.save(path, dtype=torch.float32)
    loaded = Decoder.from_file(path)
    for k, v in decoder.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_from_file_checks_the_hash(decoder: Decoder, tmp_path: Path) -> None:
    path = tmp_path / "dec.safetensors"
    decoder.save(path)
    with pytest.raises(WeightsError, match="sha256"):
        Decoder.from_file(path, sha256="0" * 64)


def _write(tmp_path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    path = tmp_path / "bad.safetensors"
    save_file(path, tensors, {})
    return path


def _state(decoder: Decoder) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in decoder.state_dict().items()}


def test_from_file_wrong_key(decoder: Decoder, tmp_path: Path) -> None:
    sd = _state(decoder)
    sd["net.99.weight"] = sd.pop("net.1.weight")
    with pytest.raises(WeightsError, match=r"not a stylekit decoder.*missing \['net.1.weight'\].*unexpected \['net.99.weight'\]"):
        Decoder.from_file(_write(tmp_path, sd))


def test_from_file_extra_key(decoder: Decoder, tmp_path: Path) -> None:
    sd = {**_state(decoder), "extra": torch.zeros(1)}
    with pytest.raises(WeightsError, match=r"unexpected \['extra'\]"):
        Decoder.from_file(_write(tmp_path, sd))


def test_from_file_wrong_shape(decoder: Decoder, tmp_path: Path) -> None:
    sd = _state(decoder)
    sd["net.1.bias"] = torch.zeros(255)
    with pytest.raises(WeightsError, match=r"net.1.bias has shape \(255,\), expected \(256,\)"):
        Decoder.from_file(_write(tmp_path, sd))


def test_from_file_int_dtype(decoder: Decoder, tmp_path: Path) -> None:
    sd = _state(decoder)
    sd["net.1.bias"] = torch.ones(256, dtype=torch.int32)
    with pytest.raises(WeightsError, match="net.1.bias has dtype torch.int32"):
        Decoder.from_file(_write(tmp_path, sd))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_from_file_non_finite(decoder: Decoder, tmp_path: Path, bad: float) -> None:
    sd = {k: v.half() for k, v in _state(decoder).items()}
    key = next(k for k in sd if k.endswith("weight"))
    sd[key].view(-1)[17] = bad
    with pytest.raises(WeightsError, match=f"{key} holds NaN or Inf"):
        Decoder.from_file(_write(tmp_path, sd))


def test_from_file_missing(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found.*nope.safetensors"):
        Decoder.from_file(tmp_path / "nope.safetensors")


def test_missing_shipped_file_is_a_clear_error() -> None:
    absent = WeightsFile(name="nope.safetensors", what="AdaIN decoder", origin="nowhere")
    assert not absent.exists()
    with pytest.raises(WeightsError, match=r"AdaIN decoder weights 'nope.safetensors' are not in this installation"):
        absent.load()


def test_from_pretrained() -> None:
    """Loads the shipped decoder when it is there; otherwise a WeightsError that names the file."""
    if DECODER.exists():
        dec = Decoder.from_pretrained()
        assert int(dec.meta["step"]) > 0
        assert all(torch.isfinite(v).all() for v in dec.state_dict().values())
    else:
        with pytest.raises(WeightsError, match=DECODER.name):
            Decoder.from_pretrained()
