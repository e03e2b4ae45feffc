"""stylekit.train end to end on a tiny image folder: outputs, bad files, bit-for-bit resume,
SIGKILL and SIGTERM, a two-process DDP run, and config validation.

All runs are fp32 on CPU with 32 px crops; the ones in subprocesses are marked ``slow``.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylekit
from stylekit import ArgumentError, Decoder
from stylekit.data import PairBatches, list_images
from stylekit.train import LOG_COLUMNS, TrainConfig, train
from stylekit.weights import load_file

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "stylekit" / "examples").glob("*.jpg"))
REF_STEPS = 8  # the uninterrupted reference run every resumed run must reproduce exactly
COMMON = dict(batch_size=2, crop=32, workers=0, device="cpu", dtype="fp32", progress=False,
              val_fraction=0.0, seed=0, log_every=1, checkpoint_every=1000, sample_every=1000)  # fmt: skip


# ------------------------------------------------------------------ a tiny dataset of real pictures


def _picture(i: int, size: tuple[int, int]) -> Image.Image:
    with Image.open(EXAMPLES[i % len(EXAMPLES)]) as im:
        im = im.convert("RGB")
        w, h = im.size
        x, y = (i * 53) % (w // 3), (i * 31) % (h // 3)
        return im.crop((x, y, x + w // 2, y + h // 2)).resize(size, Image.BILINEAR)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    content, style = root / "content", root / "style"
    (content / "sub" / "deeper").mkdir(parents=True)
    (style / "sub").mkdir(parents=True)
    names = ["c0.jpg", "c1.png", "c2.jpg", "c3.png", "sub/c4.jpg", "sub/deeper/c5.png"]
    for i, name in enumerate(names):
        _picture(i, (48 + 3 * i, 64 - 2 * i)).save(content / name)
    for i, name in enumerate(["s0.jpg", "sub/s1.png", "s2.jpg", "s3.png"]):
        _picture(i + 1, (64 - 4 * i, 48 + 2 * i)).save(style / name)
    # unreadable files: text with an image suffix, a zero-byte file, and a file that is ignored
    (content / "bad.jpg").write_text("I am not a JPEG\n")
    (content / "notes.txt").write_text("not an image suffix: never listed\n")
    (style / "bad.jpg").write_text("I am not a JPEG either\n")
    (style / "empty.png").write_bytes(b"")
    (style / "sub" / "broken.webp").write_text("nor a webp\n")
    return {"content": content, "style": style}


def _kw(data: dict[str, Path], out: Path, **over) -> dict:
    return {**COMMON, "content_dir": str(data["content"]), "style_dir": str(data["style"]), "out": str(out), **over}


def _ckpt(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    return load_file(path)


def _assert_same_state(a: Path, b: Path) -> None:
    ta, ma = _ckpt(a)
    tb, mb = _ckpt(b)
    assert ma["step"] == mb["step"]
    assert set(ta) == set(tb)
    assert any(k.startswith("adam.") for k in ta)
    differ = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not differ, f"{len(differ)} tensors differ, e.g. {differ[:3]}"


def _log_rows(out: Path) -> list[list[str]]:
    with open(out / "log.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:4] == ["step", "loss", "content", "style"]
    return rows[1:]


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> Path:
    """One uninterrupted REF_STEPS-step run."""
    out = tmp_path_factory.mktemp("ref")
    with pytest.warns(UserWarning, match="skipped unreadable"):
        result = train(**_kw(data, out, steps=REF_STEPS))
    assert result.step == REF_STEPS
    return out


@pytest.fixture(scope="module")
def four_steps(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("four")
    with pytest.warns(UserWarning, match="skipped unreadable"):
        assert train(**_kw(data, out, steps=4)).step == 4
    return out


# ------------------------------------------------------------------ data


def test_list_images_is_recursive_and_filtered(data) -> None:
    files = list_images(data["content"])
    assert [f.relative_to(data["content"]).as_posix() for f in files] == [
        "bad.jpg", "c0.jpg", "c1.png", "c2.jpg", "c3.png", "sub/c4.jpg", "sub/deeper/c5.png",
    ]  # fmt: skip


def test_batches_depend_only_on_seed_rank_and_step(data) -> None:
    content, style = list_images(data["content"]), list_images(data["style"])
    make = lambda rank=0, seed=0: PairBatches(content, style, batch_size=2, crop=32, seed=seed, rank=rank)  # noqa: E731
    a, b = make()[5], make()[5]
    assert a["content"].shape == a["style"].shape == (2, 3, 32, 32) and a["content"].dtype == torch.uint8
    assert torch.equal(a["content"], b["content"]) and torch.equal(a["style"], b["style"])
    assert a["skipped"] == b["skipped"] and a["step"] == 5
    assert not torch.equal(make()[6]["content"], a["content"])
    assert not torch.equal(make(rank=1)[5]["content"], a["content"])
    assert not torch.equal(make(seed=1)[5]["content"], a["content"])


def test_unreadable_files_are_skipped_and_reported(data) -> None:
    content, style = list_images(data["content"]), list_images(data["style"])
    pb = PairBatches(content, style, batch_size=2, crop=32)
    skipped = [s for step in range(12) for s in pb[step]["skipped"]]
    assert skipped, "with 3 of 7 style files unreadable, 12 steps must draw one"
    assert {Path(s).name for s in skipped} <= {"bad.jpg", "empty.png", "broken.webp"}


def test_decompression_bombs_are_skipped_without_a_warnings_filter(tmp_path: Path, monkeypatch) -> None:
    """A picture over Pillow's MAX_IMAGE_PIXELS (where Pillow itself only warns) is skipped and
    reported, like an unreadable file, without decoding it and without a warnings filter
    (warnings.catch_warnings is not thread-safe: DataLoader threads, other libraries)."""
    import warnings
    from unittest import mock

    small, big = tmp_path / "small.png", tmp_path / "big.png"
    _picture(0, (40, 40)).save(small)  # 1600 px
    _picture(1, (64, 64)).save(big)  # 4096 px: over the limit, under twice it (Pillow warns only)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)
    filters = list(warnings.filters)
    pb = PairBatches([small, big], [small], batch_size=4, crop=32)
    with mock.patch("warnings.catch_warnings", side_effect=AssertionError("catch_warnings is not thread-safe")):
        with pytest.warns(Image.DecompressionBombWarning):  # Pillow's own warning on open: left as it is
            items = [pb[step] for step in range(4)]
    skipped = [s for it in items for s in it["skipped"]]
    assert skipped and set(skipped) == {str(big)}
    assert all(it["content"].shape == (4, 3, 32, 32) for it in items)
    assert warnings.filters == filters


def test_sample_grid_skips_what_training_skips(tmp_path: Path, data, monkeypatch) -> None:
    """The sample grids' pairs skip the files training skips: unreadable ones, and a bomb whose
    warning is an exception (warnings as errors), which used to stop the run at its start."""
    import warnings

    from stylekit.train import _val_batch

    big = tmp_path / "big.png"
    _picture(1, (64, 64)).save(big)  # over the limit below, under twice it: Pillow only warns
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3500)
    content = list_images(data["content"])  # up to 3,402 px: under the limit
    style = [big, *sorted(list_images(data["style"]))]  # the bomb, then bad.jpg, empty.png, ...
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = _val_batch(content, style, size=32, n=2)
    assert got is not None
    cs, ss = got
    assert cs.shape == ss.shape == (2, 3, 32, 32)


def test_no_readable_file_is_an_error_naming_the_folder_kind(tmp_path: Path, data) -> None:
    bad = [tmp_path / f"b{i}.jpg" for i in range(3)]
    for p in bad:
        p.write_text("text")
    pb = PairBatches(list_images(data["content"]), bad, batch_size=2, crop=32)
    with pytest.raises(RuntimeError, match="no readable images among the style files"):
        pb[0]


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("over", "match"),
    [({"steps": 0}, "steps"), ({"crop": 30}, "crop"), ({"crop": 36}, "crop"), ({"crop": (32, 36)}, "crop"), ({"crop": ()}, "crop"),
     ({"crop": 32.0}, "crop"), ({"crop": "32,48"}, "crop must be an int or a tuple of ints.*the str '32,48'"),
     ({"warmup_crop": 16}, "warmup_crop"),
     ({"batch_size": 0}, "batch_size"), ({"lr": 0.0}, "lr"), ({"lr": float("nan")}, "lr"),
     ({"style_weight": -1.0}, "style_weight"), ({"grid_weight": float("inf")}, "grid_weight"), ({"val_fraction": 1.0}, "val_fraction"),
     ({"checkpoint_every": 0}, "checkpoint_every")],
)  # fmt: skip
def test_invalid_config_raises(data, tmp_path: Path, over, match) -> None:
    with pytest.raises(ArgumentError, match=match):
        train(**_kw(data, tmp_path / "run", **{"steps": 1, **over}))
    with pytest.raises(ArgumentError, match=match):
        TrainConfig(**_kw(data, tmp_path / "run", **{"steps": 1, **over})).validate()


def test_several_crops_are_taken_in_turn(data, tmp_path: Path) -> None:
    cfg = TrainConfig(**_kw(data, tmp_path / "run", crop=(32, 48), warmup_crop=40, warmup_steps=2))
    assert [cfg.crop_at(s) for s in range(6)] == [40, 40, 32, 48, 32, 48]
    out = tmp_path / "run"
    train(**_kw(data, out, steps=4, crop=(32, 48)))
    rows = _log_rows(out)
    assert [int(r[LOG_COLUMNS.index("crop")]) for r in rows] == [32, 48, 32, 48]  # the batches' real size
    assert Decoder.from_file(out / "decoder.safetensors").meta["crop"] == "32,48"


@pytest.mark.parametrize("which", ["content_dir", "style_dir"])
def test_missing_folder_is_named(data, tmp_path: Path, which: str) -> None:
    missing = tmp_path / "no_such_folder"
    with pytest.raises(ArgumentError, match="no_such_folder.*does not exist"):
        train(**_kw(data, tmp_path / "run", steps=1, **{which: str(missing)}))


def test_folder_without_images_is_named(data, tmp_path: Path) -> None:
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    (empty / "readme.txt").write_text("no pictures here")
    with pytest.raises(ArgumentError, match="empty_folder.*holds no"):
        train(**_kw(data, tmp_path / "run", steps=1, style_dir=str(empty)))


# ------------------------------------------------------------------ (a) a short run


def test_short_run_writes_everything(data, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="skipped unreadable images") as record:
        result = train(**_kw(data, out, steps=3, checkpoint_every=2, sample_every=3, lr=3e-4, seed=5))
    assert result.step == 3
    assert result.skipped_files >= 1
    assert any("bad.jpg" in str(w.message) or "empty.png" in str(w.message) or "broken.webp" in str(w.message) for w in record)
    assert all(np.isfinite([result.loss, result.content_loss, result.style_loss]))
    assert result.loss == pytest.approx(result.content_loss + 10.0 * result.style_loss, rel=1e-5)  # grid_weight 0

    assert result.checkpoint_path == out / "checkpoint.safetensors"
    tensors, meta = _ckpt(result.checkpoint_path)
    assert meta["step"] == "3" and json.loads(meta["config"])["steps"] == 3
    assert json.loads(meta["stats"])["skipped"] == result.skipped_files
    assert "rng.torch" in tensors and any(k.startswith("adam.") for k in tensors)

    dec = Decoder.from_file(result.decoder_path)
    assert dec.meta["step"] == "3" and dec.meta["crop"] == "32" and dec.meta["encoder_padding"] == "reflect"
    assert float(dec.meta["lr"]) == 3e-4 and dec.meta["seed"] == "5"
    for k, v in dec.state_dict().items():  # the export is the checkpoint's weights in fp16
        assert torch.equal(v, tensors[f"decoder.{k}"].half().float()), k

    rows = _log_rows(out)
    assert [r[0] for r in rows] == ["1", "2", "3"]
    assert all(np.isfinite(float(r[1])) for r in rows)

    samples = sorted((out / "samples").glob("*.png"))
    assert [p.name for p in samples] == ["step0000003.png"]
    with Image.open(samples[0]) as im:
        im.load()
        # content | style | output, one row per readable validation pair (4), 32 px crops, 2 px padding
        assert im.mode == "RGB" and im.size == (3 * 34 + 2, 4 * 34 + 2)
    assert not list(out.glob("*.tmp"))


@pytest.mark.filterwarnings("ignore:skipped unreadable images")
@pytest.mark.parametrize("grid_weight", [0.0, 300.0])
def test_grid_term_is_logged_and_trained_on_when_weighted(data, tmp_path: Path, grid_weight: float) -> None:
    out = tmp_path / "run"
    result = train(**_kw(data, out, steps=2, grid_weight=grid_weight, style_weight=2.0))
    assert result.grid_loss > 0
    assert result.loss == pytest.approx(result.content_loss + 2.0 * result.style_loss + grid_weight * result.grid_loss, rel=1e-5)
    with open(out / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["1", "2"]
    for r in rows:
        loss, lc, ls, lg = (float(r[k]) for k in ("loss", "content", "style", "grid"))
        assert lg > 0
        assert loss == pytest.approx(lc + 2.0 * ls + grid_weight * lg, rel=1e-3, abs=1e-4)
    assert Decoder.from_file(out / "decoder.safetensors").meta["grid_weight"] == str(grid_weight)


@pytest.mark.parametrize("workers", [1, 2])
def test_the_last_checkpoint_is_written_again_when_dying_workers_interrupt_it(workers: int) -> None:
    """After a stop signal to the process group, torch reports each killed DataLoader worker from
    its SIGCHLD handler, wherever the main process is: possibly in the last checkpoint (seen in CI)."""
    from stylekit.train import _despite_dying_workers, _StopFlag

    died = RuntimeError("DataLoader worker (pid 7609) is killed by signal: Terminated. ")
    flag = _StopFlag()
    calls = []

    def save(failures: int, error: Exception = died):
        def run() -> None:
            calls.append(1)
            if len(calls) <= failures:
                raise error
        return run

    flag.stop = True
    _despite_dying_workers(save(workers), flag, workers)  # one interruption per worker: written at last
    assert len(calls) == workers + 1
    calls.clear()
    with pytest.raises(RuntimeError, match="DataLoader worker"):
        _despite_dying_workers(save(workers + 1), flag, workers)  # more than the workers can explain
    calls.clear()
    with pytest.raises(RuntimeError, match="out of memory"):
        _despite_dying_workers(save(1, RuntimeError("out of memory")), flag, workers)  # any other error
    calls.clear()
    flag.stop = False
    with pytest.raises(RuntimeError, match="DataLoader worker"):
        _despite_dying_workers(save(1), flag, workers)  # a worker dying without a stop is an error
    assert len(calls) == 1


class _WorkerPid(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 1000

    def __getitem__(self, i: int) -> int:
        return os.getpid()


def test_dataloader_workers_outlive_a_stop_sent_to_the_process_group() -> None:
    """A worker killed by the group's SIGTERM while it handed over a batch made the training
    process fail in torch's unpickling (EOFError, seen in CI) instead of finishing its step."""
    from stylekit.train import _leave_the_stop_to_the_trainer

    loader = torch.utils.data.DataLoader(_WorkerPid(), batch_size=None, num_workers=1,
                                         worker_init_fn=_leave_the_stop_to_the_trainer)  # fmt: skip
    it = iter(loader)
    pid = next(it)
    assert pid != os.getpid()
    for sig in (signal.SIGTERM, signal.SIGINT):
        os.kill(pid, sig)
    time.sleep(0.3)
    assert [next(it) for _ in range(20)] == [pid] * 20  # the same worker, still serving
    del it


def test_an_older_log_gets_the_new_header_before_rows_are_appended(tmp_path: Path) -> None:
    from stylekit.train import LOG_COLUMNS, _extend_log_header

    log = tmp_path / "log.csv"
    old_row = "10,2.5,1.3,0.4,3.48e-05,192,3.6,2026-12-06T07:20:06\n"
    log.write_text(",".join(LOG_COLUMNS[:8]) + "\n" + old_row)
    _extend_log_header(log)
    assert log.read_text() == ",".join(LOG_COLUMNS) + "\n" + old_row
    log.write_text("something,else\n" + old_row)  # not an older header of ours: left alone
    _extend_log_header(log)
    assert log.read_text() == "something,else\n" + old_row


# ------------------------------------------------------------------ (b) resume bit for bit


@pytest.mark.filterwarnings("ignore:skipped unreadable images")
def test_resume_is_bit_for_bit(data, tmp_path: Path, reference: Path, four_steps: Path) -> None:
    out = tmp_path / "resumed"
    shutil.copytree(four_steps, out)
    result = train(**_kw(data, out, steps=REF_STEPS))
    assert result.step == REF_STEPS
    _assert_same_state(out / "checkpoint.safetensors", reference / "checkpoint.safetensors")
    a, b = Decoder.from_file(out / "decoder.safetensors"), Decoder.from_file(reference / "decoder.safetensors")
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    # the log goes on where it stopped, with the very same losses
    got = [r[:6] for r in _log_rows(out)]
    want = [r[:6] for r in _log_rows(reference)]
    assert got == want
    # and the weights really moved between step 4 and step 8
    t4, _ = _ckpt(four_steps / "checkpoint.safetensors")
    t8, _ = _ckpt(out / "checkpoint.safetensors")
    assert not torch.equal(t4["decoder.net.1.weight"], t8["decoder.net.1.weight"])


@pytest.mark.filterwarnings("ignore:skipped unreadable images")
def test_resume_past_the_end_changes_nothing(data, tmp_path: Path, four_steps: Path) -> None:
    out = tmp_path / "done"
    shutil.copytree(four_steps, out)
    before = (out / "checkpoint.safetensors").read_bytes()
    result = train(**_kw(data, out, steps=3))
    assert result.step == 4
    assert (out / "checkpoint.safetensors").read_bytes() == before


# ------------------------------------------------------------------ subprocess runs

RUNNER = """
import json, sys
from stylekit.train import train
r = train(**json.loads(sys.argv[1]))
print("RESULT", r.step, r.skipped_files, flush=True)
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # the subprocesses import the very stylekit this test imported
    env["PYTHONPATH"] = str(Path(stylekit.__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONWARNINGS"] = "ignore"
    return env


@pytest.fixture
def spawn():
    """Start a command in its own process group; whatever is still running at teardown is killed."""
    started: list[subprocess.Popen] = []

    def start(cmd: list[str], cwd: Path) -> subprocess.Popen:
        proc = subprocess.Popen(cmd, env=_env(), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)  # fmt: skip
        started.append(proc)
        return proc

    yield start
    for proc in started:
        try:  # the whole group: a torchrun launcher may be gone while its workers are not
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()


def _start(spawn, tmp_path: Path, kw: dict) -> subprocess.Popen:
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    return spawn([sys.executable, str(script), json.dumps(kw)], tmp_path)


def _logged_steps(out: Path) -> int:
    """Data rows in a run's log.csv so far (0 while it does not exist or has only the header)."""
    try:
        return max(0, len((out / "log.csv").read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def _header_step(path: Path) -> int | None:
    """The step in a checkpoint's safetensors header, reading only the header."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            return int(json.loads(f.read(n))["__metadata__"]["step"])
    except (FileNotFoundError, ValueError, KeyError):
        return None


def _wait_for(cond, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"training exited early with {proc.returncode}:\n{out}\n{err[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for the training subprocess")
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:skipped unreadable images")
def test_sigkill_leaves_a_loadable_checkpoint_and_resume_is_exact(data, tmp_path: Path, reference: Path, spawn) -> None:
    seed = int.from_bytes(os.urandom(4), "little")
    rnd = random.Random(seed)
    out = tmp_path / "killed"
    ckpt = out / "checkpoint.safetensors"
    proc = _start(spawn, tmp_path, _kw(data, out, steps=1000, checkpoint_every=1))
    _wait_for(lambda: (_header_step(ckpt) or 0) >= 1, proc)
    t1 = time.monotonic()
    _wait_for(lambda: (_header_step(ckpt) or 0) >= 2, proc)
    step_time = time.monotonic() - t1  # one step and its checkpoint write, on this machine
    time.sleep(rnd.uniform(0.0, 1.5 * step_time))  # anywhere in the next step or so, a write included
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    tensors, meta = _ckpt(ckpt)  # never half-written: the rename is atomic
    step = int(meta["step"])
    assert 2 <= step < REF_STEPS, f"seed {seed}: killed at step {step}, too late to compare"
    assert {k for k in tensors if k.startswith("decoder.")} == {f"decoder.{k}" for k in Decoder().state_dict()}
    # a half-written temp file (from this kill or simulated) must be ignored by the resume
    tmp = out / "checkpoint.safetensors.tmp"
    if not tmp.exists():
        tmp.write_bytes(ckpt.read_bytes()[:1000])

    result = train(**_kw(data, out, steps=REF_STEPS))
    assert result.step == REF_STEPS, f"seed {seed}"
    _assert_same_state(ckpt, reference / "checkpoint.safetensors")
    assert not tmp.exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "sig"),
    [("process", signal.SIGTERM), ("group", signal.SIGTERM), ("group", signal.SIGINT)],
    ids=["process", "group", "ctrl-c"],
)
def test_stop_signal_checkpoints_the_current_step_and_exits_cleanly(
    data, tmp_path: Path, spawn, target: str, sig: signal.Signals
) -> None:
    # "group": the signal goes to the whole process group (kill -- -PGID, a batch scheduler; Ctrl-C
    # in a terminal sends SIGINT to the foreground group), so the DataLoader worker under the
    # training loop gets it too
    out = tmp_path / "termed"
    proc = _start(spawn, tmp_path, _kw(data, out, steps=1000, workers=1 if target == "group" else COMMON["workers"]))
    _wait_for(lambda: _logged_steps(out) >= 2, proc)
    if target == "group":
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    line = next(ln for ln in stdout.splitlines() if ln.startswith("RESULT"))
    step = int(line.split()[1])
    assert 2 <= step < 1000
    assert _header_step(out / "checkpoint.safetensors") == step
    assert Decoder.from_file(out / "decoder.safetensors").meta["step"] == str(step)
    assert _log_rows(out)[-1][0] == str(step)


DDP_RUNNER = """
import json, os, sys
from pathlib import Path
import stylekit.train as T
from stylekit.weights import save_file

rank = int(os.environ["RANK"])
_checkpoint = T._checkpoint

def checkpoint_every_rank(is_main, ckpt_path, dec_path, decoder, *rest):
    _checkpoint(is_main, ckpt_path, dec_path, decoder, *rest)
    state = {k: v.detach().cpu().contiguous() for k, v in decoder.state_dict().items()}
    save_file(Path(ckpt_path).parent / f"rank{rank}.safetensors", state, {"world": os.environ["WORLD_SIZE"]})

T._checkpoint = checkpoint_every_rank
r = T.train(**json.loads(sys.argv[1]))
print("RESULT", rank, r.step, flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(data, tmp_path: Path, four_steps: Path, spawn) -> None:
    out = tmp_path / "ddp"
    script = tmp_path / "ddp_runner.py"
    script.write_text(DDP_RUNNER)
    kw = _kw(data, out, steps=4, sample_every=4)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(script), json.dumps(kw)]  # fmt: skip
    proc = spawn(cmd, tmp_path)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-4000:]
    assert sorted(ln for ln in stdout.splitlines() if ln.startswith("RESULT")) == ["RESULT 0 4", "RESULT 1 4"]

    # rank 0 alone wrote the run's files
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.safetensors", "decoder.safetensors", "log.csv", "rank0.safetensors", "rank1.safetensors", "samples",
    ]  # fmt: skip
    assert [p.name for p in (out / "samples").iterdir()] == ["step0000004.png"]
    assert [r[0] for r in _log_rows(out)] == ["1", "2", "3", "4"]
    ckpt, meta = _ckpt(out / "checkpoint.safetensors")
    assert meta["step"] == "4"
    assert Decoder.from_file(out / "decoder.safetensors").meta["step"] == "4"

    # both ranks hold the same weights, which are rank 0's checkpoint
    r0, _ = load_file(out / "rank0.safetensors")
    r1, _ = load_file(out / "rank1.safetensors")
    assert set(r0) == set(r1) == {k[8:] for k in ckpt if k.startswith("decoder.")}
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    assert all(torch.equal(r0[k], ckpt[f"decoder.{k}"]) for k in r0)
    # and the gradients of rank 1's (different) images were averaged in: not the 1-process run
    single, _ = _ckpt(four_steps / "checkpoint.safetensors")
    assert not torch.equal(r0["net.1.weight"], single["decoder.net.1.weight"])


@pytest.mark.filterwarnings("ignore:skipped unreadable images")
def test_init_starts_from_the_given_decoder(data, tmp_path: Path, four_steps: Path) -> None:
    init = four_steps / "decoder.safetensors"
    start = Decoder.from_file(init).state_dict()
    result = train(**_kw(data, tmp_path / "run", steps=1, init=str(init), lr=1e-4))
    assert result.step == 1
    after, _ = _ckpt(result.checkpoint_path)
    moved = max(float((after[f"decoder.{k}"] - v).abs().max()) for k, v in start.items())
    assert 0 < moved <= 1e-4 * 1.01  # one Adam step moves each weight by at most lr


@pytest.mark.filterwarnings("ignore:skipped unreadable images")
def test_init_carries_its_step_count_into_the_exported_decoder(data, tmp_path: Path, four_steps: Path) -> None:
    init = four_steps / "decoder.safetensors"
    assert Decoder.from_file(init).meta["step"] == "4"
    result = train(**_kw(data, tmp_path / "run", steps=2, init=str(init)))
    meta = Decoder.from_file(result.decoder_path).meta
    assert (meta["step"], meta["run_step"]) == ("6", "2")  # 4 steps of the init decoder + 2 of this run
    assert meta["init"] == "decoder.safetensors at step 4"
    # resuming the run keeps counting from the init decoder's steps (kept in the checkpoint)
    result = train(**_kw(data, tmp_path / "run", steps=3, init=str(init)))
    meta = Decoder.from_file(result.decoder_path).meta
    assert (meta["step"], meta["run_step"]) == ("7", "3")


@pytest.mark.filterwarnings("ignore:skipped unreadable images")
def test_lr_warmup_ramps_then_follows_the_decay(data, tmp_path: Path) -> None:
    cfg = TrainConfig(content_dir="c", style_dir="s", lr_warmup=4, lr_decay=0.1)
    assert [cfg.lr_factor(s) for s in range(6)] == pytest.approx([min(1, (s + 1) / 4) / (1 + 0.1 * s) for s in range(6)])
    assert cfg.lr_factor(0) == 0.25 and TrainConfig(content_dir="c", style_dir="s").lr_factor(0) == 1.0
    result = train(**_kw(data, tmp_path / "run", steps=3, lr=1e-3, lr_warmup=4))
    logged = [float(r[4]) for r in _log_rows(result.checkpoint_path.parent)]  # the lr after each step
    ramp = TrainConfig(content_dir="c", style_dir="s", lr_warmup=4)
    assert logged == pytest.approx([1e-3 * ramp.lr_factor(s) for s in range(1, 4)], rel=1e-2)
    with pytest.raises(ArgumentError, match="lr_warmup"):
        train(**_kw(data, tmp_path / "bad", steps=1, lr_warmup=-1))


@pytest.mark.filterwarnings("ignore:skipped unreadable images")
def test_resume_with_another_lr_uses_it(data, tmp_path: Path, four_steps: Path, capsys) -> None:
    """--lr on a resumed run is not silently ignored: the new rate rules from the resumed step on."""
    out = tmp_path / "resumed"
    shutil.copytree(four_steps, out)
    lr4 = float(_log_rows(out)[-1][4])  # the rate after step 4 with COMMON's default lr
    train(**_kw(data, out, steps=6, lr=TrainConfig(content_dir="c", style_dir="s").lr * 10))
    assert "(the checkpoint's run had" in capsys.readouterr().out
    rows = _log_rows(out)
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert float(rows[4][4]) == pytest.approx(10 * lr4 * (1 + 5e-5 * 4) / (1 + 5e-5 * 5), rel=1e-2)
