"""Thread safety (issue #6): ``transfer`` and a shared :class:`StyleTransfer` called from several
threads at once give exactly the sequential results, the cached model is built once and is not
changed by use, and reading images changes no process-wide state.

tests/test_api.py::test_get_model_thread_safe calls ``get_model`` from 8 threads with an instant
builder; here the builder is slow, so the threads really do race for the first build, and the
calls go through ``transfer`` itself.
"""

from __future__ import annotations

import hashlib
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylekit import AdaINModel, Decoder, Style, StyleTransfer, VGGEncoder, api, load_image, transfer

THREADS, CALLS = 4, 3  # 4 threads x 3 calls, 12 different content/style pairs
SIDE = 48


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread per call: the concurrency under test is that of the Python threads
    (torch releases the GIL inside every op), and tiny pictures run faster so on shared cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _noise(seed: int, h: int, w: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> list[tuple[object, object, dict]]:
    """12 different (content, style, options) in every input kind: path, PIL, numpy, tensor, Style."""
    folder = tmp_path_factory.mktemp("pairs")
    shared_style = StyleTransfer("cpu", "fp32").encode_style(_noise(99, 40, 40))
    out = []
    for i in range(THREADS * CALLS):
        c = _noise(i, SIDE, SIDE - 8 + i % 3 * 4)
        s = _noise(100 + i, 32 + i % 4 * 8, 40)
        content: object = {0: c, 1: torch.from_numpy(c).permute(2, 0, 1).float() / 255, 2: Image.fromarray(c), 3: None}[i % 4]
        if content is None:
            content = folder / f"c{i}.png"
            Image.fromarray(c).save(content)
        style: object = {0: s, 1: torch.from_numpy(s).permute(2, 0, 1).float() / 255, 2: shared_style}[i % 3]
        opts = {"alpha": (0.5, 0.8, 1.0)[i % 3]}
        if i % 5 == 4:
            opts["preserve_color"] = "luminance"
        out.append((content, style, opts))
    return out


def _as_array(out) -> np.ndarray:
    if isinstance(out, torch.Tensor):
        return out.numpy()
    return np.asarray(out)


def _run_threads(fn: Callable[[int], object], n_threads: int, calls_each: int) -> dict[int, object]:
    """Run fn(k) for k in range(n_threads * calls_each): each thread takes every n_threads-th k,
    all threads released at once by a barrier. Re-raises the first error of any thread."""
    results: dict[int, object] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(n_threads)

    def work(t: int) -> None:
        try:
            barrier.wait(timeout=60)
            for k in range(t, n_threads * calls_each, n_threads):
                results[k] = fn(k)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,), name=f"stylekit-test-{t}") for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a thread is still running after 10 minutes: a deadlock?"
    if errors:
        raise errors[0]
    return results


def _fingerprint(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- results


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_threads_give_the_sequential_results(pairs, dtype: str) -> None:
    """4 threads x 3 calls of transfer() at once: bit-identical to one call after another, and
    the shared cached model is unchanged afterwards (weights, eval mode, frozen)."""

    def call(k: int) -> np.ndarray:
        content, style, opts = pairs[k]
        return _as_array(transfer(content, style, device="cpu", dtype=dtype, **opts))

    model = api.get_model("cpu", dtype)
    before = _fingerprint(model)
    sequential = [call(k) for k in range(len(pairs))]
    threaded = _run_threads(call, THREADS, CALLS)
    again = [call(k) for k in range(len(pairs))]
    for k, ref in enumerate(sequential):
        assert threaded[k].shape == ref.shape and threaded[k].dtype == ref.dtype
        np.testing.assert_array_equal(threaded[k], ref, err_msg=f"pair {k} differs when run in threads")
        np.testing.assert_array_equal(again[k], ref, err_msg=f"pair {k} differs after the threaded run")
    assert api.get_model("cpu", dtype) is model
    assert _fingerprint(model) == before
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_one_model_shared_by_fp32_and_bf16_threads(pairs) -> None:
    """Autocast and inference mode are per thread: bf16 calls running next to fp32 calls on the
    same model object do not make the fp32 results bf16-rounded (or the other way round)."""
    torch.manual_seed(0)
    model = AdaINModel(VGGEncoder.from_pretrained(), Decoder())
    runners = {d: StyleTransfer("cpu", d, model=model) for d in ("fp32", "bf16")}
    assert runners["fp32"].model is runners["bf16"].model

    def call(k: int) -> np.ndarray:
        content, style, opts = pairs[k]
        return _as_array(runners["bf16" if k % 2 else "fp32"](content, style, **opts))

    sequential = [call(k) for k in range(len(pairs))]
    threaded = _run_threads(call, THREADS, CALLS)
    for k, ref in enumerate(sequential):
        np.testing.assert_array_equal(threaded[k], ref, err_msg=f"pair {k} ({'bf16' if k % 2 else 'fp32'})")
    fp32_vs_bf16 = np.abs(call(0).astype(np.float32) - runners["bf16"](*pairs[0][:2], **pairs[0][2]).astype(np.float32))
    assert fp32_vs_bf16.max() > 0  # the two dtypes do differ, so a leak would have shown


def test_encode_style_in_threads(pairs) -> None:
    """Styles encoded concurrently are those encoded one by one, and usable from any thread."""
    st = StyleTransfer("cpu", "fp32")
    images = [_noise(200 + k, 40, 48) for k in range(THREADS * CALLS)]
    sequential = [st.encode_style(im) for im in images]
    threaded = _run_threads(lambda k: st.encode_style(images[k]), THREADS, CALLS)
    for k, ref in enumerate(sequential):
        assert isinstance(threaded[k], Style)
        assert torch.equal(threaded[k].mean, ref.mean) and torch.equal(threaded[k].std, ref.std)


# ----------------------------------------------------------------------------- the model cache


@pytest.fixture
def slow_builder(monkeypatch: pytest.MonkeyPatch) -> list[torch.device]:
    """An empty model cache whose builder takes 0.3 s (so concurrent first calls overlap) and
    returns a fresh random-decoder model each time; the list records every build."""
    builds: list[torch.device] = []
    encoder = VGGEncoder.from_pretrained()

    def build(device: torch.device) -> AdaINModel:
        builds.append(device)
        time.sleep(0.3)
        torch.manual_seed(len(builds))
        return api._prepare(AdaINModel(encoder, Decoder()), device)

    monkeypatch.setattr(api, "_MODELS", {})
    monkeypatch.setattr(api, "_build_model", build)
    return builds


def test_concurrent_first_calls_build_the_model_once(slow_builder: list[torch.device]) -> None:
    """8 threads make their first transfer() call at the same moment: one build, one model,
    and every thread's result is the one that model gives."""
    content, style = _noise(1, 32, 32), _noise(2, 32, 32)
    results = _run_threads(lambda k: transfer(content, style, device="cpu", dtype="fp32"), 8, 1)
    assert slow_builder == [torch.device("cpu")], f"{len(slow_builder)} builds for one (device, dtype)"
    model = api.get_model("cpu", "fp32")
    assert StyleTransfer("cpu", "fp32").model is model
    expected = StyleTransfer("cpu", "fp32", model=model)(content, style)
    for out in results.values():
        np.testing.assert_array_equal(out, expected)


def test_concurrent_first_calls_of_two_dtypes(slow_builder: list[torch.device]) -> None:
    """fp32 and bf16 are different cache keys: each is built exactly once."""
    dtypes = ["fp32", "bf16"] * 4
    models = _run_threads(lambda k: api.get_model("cpu", dtypes[k]), 8, 1)
    assert len(slow_builder) == 2
    for k, m in models.items():
        assert m is api.get_model("cpu", dtypes[k])
    assert api.get_model("cpu", "fp32") is not api.get_model("cpu", "bf16")


def test_clear_model_cache_while_threads_run(slow_builder: list[torch.device]) -> None:
    """Clearing the cache under running calls is safe: calls in flight keep their model, later
    calls build a new one (here each build has other random weights, so results tell them apart)."""
    content, style = _noise(3, 32, 32), _noise(4, 32, 32)
    stop = threading.Event()

    def clearer() -> None:
        while not stop.is_set():
            api.clear_model_cache()
            time.sleep(0.05)

    t = threading.Thread(target=clearer)
    t.start()
    try:
        results = _run_threads(lambda k: transfer(content, style, device="cpu", dtype="fp32"), 4, 2)
    finally:
        stop.set()
        t.join()
    assert len(results) == 8 and all(r.shape == (32, 32, 3) and r.dtype == np.uint8 for r in results.values())
    assert len(slow_builder) >= 2  # the cache was really cleared under the calls


# ----------------------------------------------------------------------------- process-wide state


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_reading_images_changes_no_global_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """load_image sets no warnings filter (warnings.catch_warnings is not thread-safe: one
    thread's exit can drop or leak another thread's filter) and changes no Pillow setting."""
    from PIL import ImageFile

    from stylekit import ImageError

    def forbidden(*args, **kwargs):
        raise AssertionError("load_image touched the process-wide warnings filters")

    small, big = tmp_path / "small.png", tmp_path / "big.png"
    Image.fromarray(_noise(5, 24, 24)).save(small)  # 576 px
    Image.fromarray(_noise(6, 40, 40)).save(big)  # 1600 px
    pillow = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    filters = list(warnings.filters)
    with monkeypatch.context() as mp:
        for name in ("simplefilter", "filterwarnings", "resetwarnings", "catch_warnings"):
            mp.setattr(warnings, name, forbidden)
        mp.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # big is between 1x and 2x: Pillow only warns
        assert load_image(small).shape == (1, 3, 24, 24)
        with pytest.raises(ImageError, match="too large to decode safely"):
            load_image(big)
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == pillow
    assert warnings.filters == filters
