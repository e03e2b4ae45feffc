"""The inference speed paths: weights cast once to the compute dtype, and the cache of encoded styles.

Both must be invisible in the results: the bf16 copy gives what the float32 model under autocast
gives (bit for bit in our runs, checked within bf16 rounding), and a cached style gives bit for
bit what encoding it again gives. Tiny pictures and a seeded random decoder, as in test_api.py.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from stylekit import AdaINModel, ArgumentError, Decoder, StyleTransfer, VGGEncoder, api, transfer
from stylekit.model import compute_model
from stylekit.pipeline import Runner, StyleCache, check_options, plan

BF16 = torch.bfloat16


def _model() -> AdaINModel:
    """A model of its own, for the tests that change its weights."""
    torch.manual_seed(0)
    return api._prepare(AdaINModel(VGGEncoder.from_pretrained(), Decoder()), torch.device("cpu"))


def _noise(seed: int, h: int = 40, w: int = 48) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def content() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.rand(1, 3, 40, 56, generator=g)


@pytest.fixture
def encodes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Records the shape of every style batch the encoder sees through :meth:`Runner.encode`."""
    calls: list[tuple[int, ...]] = []
    orig = Runner.encode

    def counting(self, x, cov=False):
        calls.append(tuple(x.shape))
        return orig(self, x, cov)

    monkeypatch.setattr(Runner, "encode", counting)
    return calls


def _fingerprint(model: torch.nn.Module) -> list[tuple[str, torch.dtype, bytes]]:
    return [(k, v.dtype, v.detach().float().contiguous().numpy().tobytes()) for k, v in model.state_dict().items()]


def _old_path(st: StyleTransfer, content, style, **opts):
    """The pre-copy path: the float32 model itself under autocast (weights cast in every call)."""
    o = check_options(**{**dict(alpha=1.0, size=None, max_size=None, style_weights=None, masks=None,
                                preserve_color=None, method="adain", tile=None, steps=200, init="content",
                                progress=False, callback=None), **opts})  # fmt: skip
    items, entries, listed = api._read(content, style)
    job = plan(items, entries, o, listed=listed)
    return Runner(st.model, st.device, st.dtype).run(job, o, listed)[0]


# ----------------------------------------------------------------------------- weights cast once


def test_compute_copy_holds_cast_weights_and_leaves_the_model_alone(tiny_model: AdaINModel) -> None:
    st = StyleTransfer("cpu", "bf16", model=tiny_model)
    before = _fingerprint(tiny_model)
    c = compute_model(st.model, BF16)
    assert c.model is not tiny_model
    assert compute_model(st.model, BF16).model is c.model  # built once
    assert compute_model(st.model, BF16).generation == c.generation
    for (name, p), (name0, p0) in zip(c.model.named_parameters(), tiny_model.named_parameters()):
        assert name == name0 and p.dtype == BF16 and not p.requires_grad and not p.is_inference()
        assert torch.equal(p, p0.to(BF16))  # round to nearest, as autocast casts
        if p.dim() == 4:
            assert p.is_contiguous(memory_format=torch.channels_last)
    assert c.model.encoder.mean.dtype == torch.float32  # buffers stay float32 (mean subtracted in fp32)
    assert torch.equal(c.model.encoder.mean, tiny_model.encoder.mean)
    assert not c.model.training
    assert _fingerprint(tiny_model) == before  # the float32 master weights are untouched
    assert all(p.dtype == torch.float32 for p in tiny_model.parameters())
    assert compute_model(tiny_model, torch.float32).model is tiny_model  # no copy for fp32


def test_compute_copy_follows_changes_to_the_model() -> None:
    m = _model()
    first = compute_model(m, BF16)
    w = m.decoder.net[1].weight
    with torch.no_grad():
        w.mul_(1.5)  # e.g. trained further, or reloaded with load_state_dict
    second = compute_model(m, BF16)
    assert second.generation != first.generation and second.model is not first.model
    assert torch.equal(second.model.decoder.net[1].weight, w.to(BF16))
    m.decoder = Decoder()  # a whole new part
    third = compute_model(m, BF16)
    assert third.generation != second.generation
    assert torch.equal(third.model.decoder.net[1].weight, m.decoder.net[1].weight.to(BF16))
    fp32 = compute_model(m, torch.float32)
    with torch.no_grad():
        m.encoder.convs["conv1_1"].bias.add_(0.1)
    assert compute_model(m, torch.float32).generation != fp32.generation  # the style cache key follows it too


OPTIONS = {
    "adain": {},
    "alpha": {"alpha": 0.6},
    "wct": {"method": "wct"},
    "luminance": {"preserve_color": "luminance"},
    "histogram": {"preserve_color": "histogram"},
    "size": {"size": 48},
}


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_bf16_copy_gives_the_autocast_results(tiny_model: AdaINModel, content: torch.Tensor, name: str) -> None:
    st = StyleTransfer("cpu", "bf16", model=tiny_model, style_cache=0)
    style = _noise(5)
    new = st(content, style, **OPTIONS[name])
    old = _old_path(st, content, style, **OPTIONS[name])
    torch.testing.assert_close(new, old, atol=1e-2, rtol=0)  # bf16 rounding (bit-identical in our runs)
    assert float((new - old).abs().mean()) < 1e-3


def test_bf16_copy_mixed_styles_masks_and_encode_style(tiny_model: AdaINModel, content: torch.Tensor) -> None:
    st = StyleTransfer("cpu", "bf16", model=tiny_model, style_cache=0)
    s1, s2 = _noise(6), _noise(7, 48, 40)
    mask = torch.zeros(40, 56)
    mask[:, :28] = 1
    for opts in ({"style_weights": [0.3, 0.7]}, {"masks": [mask, 1 - mask]}):
        torch.testing.assert_close(st(content, [s1, s2], **opts), _old_path(st, content, [s1, s2], **opts), atol=1e-2, rtol=0)
    enc = st.encode_style(s1, method="wct")
    old = Runner(st.model, st.device, st.dtype).encode(api.read_image(s1).tensor, cov=True)
    for a, b in zip(enc.tensors(), old.tensors()):
        assert a.dtype == torch.float32  # AdaIN / WCT statistics stay float32
        torch.testing.assert_close(a, b, atol=1e-2, rtol=1e-2)


def test_bf16_copy_with_gatys(tiny_model: AdaINModel) -> None:
    """Gatys takes gradients through the encoder: the cast copy must allow that."""
    st = StyleTransfer("cpu", "bf16", model=tiny_model, style_cache=0)
    c, s = torch.rand(1, 3, 32, 32), _noise(8, 32, 32)
    opts = {"method": "gatys", "steps": 2}
    torch.testing.assert_close(st(c, s, progress=False, **opts), _old_path(st, c, s, **opts), atol=1e-2, rtol=0)


def test_no_weight_is_cast_during_a_bf16_call(tiny_model: AdaINModel, content: torch.Tensor) -> None:
    st = StyleTransfer("cpu", "bf16", model=tiny_model, style_cache=0)
    style = _noise(9)
    st(content, style)  # the copy is built on the first call
    weight_shapes = {tuple(p.shape) for p in tiny_model.parameters() if p.dim() == 4}
    from torch.profiler import profile

    def casts(fn) -> int:
        with profile(record_shapes=True) as prof:
            fn()
        return sum(
            1 for e in prof.events() if e.name == "aten::_to_copy" and e.input_shapes and tuple(e.input_shapes[0]) in weight_shapes
        )

    assert casts(lambda: st(content, style)) == 0
    assert casts(lambda: _old_path(st, content, style)) > 0  # the check does see autocast's casts


# ----------------------------------------------------------------------------- cache of encoded styles


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_same_style_twice_is_encoded_once(tiny_model, content, encodes, dtype: str) -> None:
    st = StyleTransfer("cpu", dtype, model=tiny_model)
    first = st(content, _noise(10))
    second = st(content, _noise(10))  # another PIL object with the same pixels
    assert len(encodes) == 1
    assert torch.equal(first, second)
    fresh = StyleTransfer("cpu", dtype, model=tiny_model, style_cache=0)(content, _noise(10))
    assert torch.equal(first, fresh)


def test_two_styles_in_a_row_differ(tiny_model, content, encodes) -> None:
    st = StyleTransfer("cpu", "fp32", model=tiny_model)
    a, b = st(content, _noise(11)), st(content, _noise(12))
    assert not torch.allclose(a, b, atol=1e-3)
    assert torch.equal(st(content, _noise(11)), a)
    assert len(encodes) == 2


def test_a_tensor_changed_in_place_is_a_new_style(tiny_model, content, encodes) -> None:
    st = StyleTransfer("cpu", "fp32", model=tiny_model)
    s = torch.rand(3, 40, 48, generator=torch.Generator().manual_seed(13))
    before = st(content, s)
    s[:, :20] = 1 - s[:, :20]  # same object, same shape, other pixels
    after = st(content, s)
    assert len(encodes) == 2
    assert not torch.allclose(before, after, atol=1e-3)
    assert torch.equal(after, StyleTransfer("cpu", "fp32", model=tiny_model, style_cache=0)(content, s))


def test_the_key_holds_size_method_and_pairing(tiny_model, content, encodes) -> None:
    st = StyleTransfer("cpu", "fp32", model=tiny_model)
    big = _noise(14, 96, 120)  # over the content's short side: resized to it
    st(content, big)
    st(content, big, size=48)  # another size
    st(content, big, method="wct")  # also needs the covariance
    assert len(encodes) == 3
    st(content, big, method="wct")
    st(content, big, size=48, alpha=0.5)  # alpha does not change the encoding
    assert len(encodes) == 3
    larger = torch.rand(1, 3, 72, 88)  # a larger content: the style is seen at its scale
    st(larger, big)
    assert len(encodes) == 4 and encodes[-1][-2] == 72
    st(content, big, preserve_color="histogram")  # recoloured to the content: never cached
    st(content, big, preserve_color="histogram")
    assert len(encodes) == 6
    c2 = torch.cat([content, content.flip(-1)])
    s1, s2 = _noise(15), _noise(16)
    pair = st(c2, [s1, s2])  # one style per row
    assert torch.equal(st(c2, [s1, s2]), pair) and len(encodes) == 8


def test_cache_is_bounded_and_least_recently_used_goes(tiny_model, content, encodes) -> None:
    st = StyleTransfer("cpu", "fp32", model=tiny_model, style_cache=2)
    s1, s2, s3 = _noise(17), _noise(18), _noise(19)
    st(content, s1), st(content, s2), st(content, s1), st(content, s3)  # s2 is the oldest now
    assert len(encodes) == 3 and len(st._styles) == 2
    st(content, s1)
    assert len(encodes) == 3
    st(content, s2)
    assert len(encodes) == 4


def test_cache_can_be_turned_off(tiny_model, content, encodes) -> None:
    st = StyleTransfer("cpu", "fp32", model=tiny_model, style_cache=0)
    st(content, _noise(20)), st(content, _noise(20))
    assert len(encodes) == 2
    for bad in (-1, 1.5, True, "8", None):
        with pytest.raises(ArgumentError, match="style_cache"):
            StyleTransfer("cpu", "fp32", model=tiny_model, style_cache=bad)  # type: ignore[arg-type]


def test_changed_weights_are_not_served_old_styles(content, encodes) -> None:
    m = _model()
    st = StyleTransfer("cpu", "fp32", model=m)
    style = _noise(21)
    st(content, style)
    with torch.no_grad():
        m.encoder.convs["conv1_1"].weight.mul_(0.5)
    changed = st(content, style)
    assert len(encodes) == 2
    assert torch.equal(changed, StyleTransfer("cpu", "fp32", model=m, style_cache=0)(content, style))


def test_transfer_shares_one_cache(tiny_model, content, encodes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "_MODELS", {})
    monkeypatch.setattr(api, "_build_model", lambda device: api._prepare(tiny_model, device))
    monkeypatch.setattr(api, "_SHARED_STYLES", StyleCache(api.STYLE_CACHE_SIZE))
    style = _noise(22)
    a = transfer(content, style, device="cpu", dtype="fp32")
    b = transfer(content, style, device="cpu", dtype="fp32")
    assert torch.equal(a, b) and len(encodes) == 1
    transfer(content, style, device="cpu", dtype="bf16")  # another dtype: another key
    assert len(encodes) == 2
    api.set_style_cache_size(0)
    transfer(content, style, device="cpu", dtype="fp32")
    assert len(encodes) == 3 and len(api._SHARED_STYLES) == 0
    api.set_style_cache_size(4)
    transfer(content, style, device="cpu", dtype="fp32")
    transfer(content, style, device="cpu", dtype="fp32")
    assert len(encodes) == 4
    api.clear_style_cache()
    transfer(content, style, device="cpu", dtype="fp32")
    assert len(encodes) == 5
    api.clear_model_cache()
    assert len(api._SHARED_STYLES) == 0
    with pytest.raises(ArgumentError, match="style_cache"):
        api.set_style_cache_size(-1)


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_cache_in_threads_gives_the_sequential_results(tiny_model, content, dtype: str) -> None:
    """4 threads x 4 calls with 3 styles through a cache of 2 (hits, misses and evictions racing)."""
    styles = [_noise(30 + k) for k in range(3)]
    plain = StyleTransfer("cpu", dtype, model=tiny_model, style_cache=0)
    expected = [plain(content, s) for s in styles]
    st = StyleTransfer("cpu", dtype, model=tiny_model, style_cache=2)
    results: dict[int, torch.Tensor] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(t: int) -> None:
        try:
            barrier.wait(timeout=60)
            for k in range(t, 16, 4):
                results[k] = st(content, styles[k % 3])
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    assert len(results) == 16
    for k, y in results.items():
        assert torch.equal(y, expected[k % 3]), f"call {k} differs"


def test_style_key_skips_accelerator_tensors(tiny_model) -> None:
    r = Runner(tiny_model, torch.device("cpu"), torch.float32, styles=StyleCache(2), scope=1)
    assert r.style_key(torch.empty(1, 3, 8, 8, device="meta"), None, False) is None
    x = torch.rand(1, 3, 8, 8)
    assert r.style_key(x, None, False) == r.style_key(x.clone(), None, False)
    assert r.style_key(x, None, False) != r.style_key(x, 8, False) != r.style_key(x, None, True)
    assert Runner(tiny_model, torch.device("cpu"), torch.float32, styles=StyleCache(0)).style_key(x, None, False) is None
