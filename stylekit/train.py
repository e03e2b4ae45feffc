"""Training the decoder: :func:`train` and its :class:`TrainConfig`.

One loop for CPU (bf16 autocast where the CPU has it), CUDA, and many GPUs or nodes under
``torchrun`` (DistributedDataParallel, detected from the ``RANK`` environment variable).
Checkpoints are safetensors (no pickle), written atomically, every ``checkpoint_every``
steps and when the run stops (end, Ctrl-C or SIGTERM); ``resume=True`` continues
bit-for-bit on CPU from the last one.

Example:
    >>> from stylekit.train import TrainConfig, train
    >>> cfg = TrainConfig(content_dir="photos", style_dir="paintings", out="runs/mine", steps=20000)
    >>> train(cfg)  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import signal
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from .data import PairBatches, list_images, split_files
from .decoder import Decoder
from .device import autocast, resolve_device, resolve_dtype
from .encoder import VGGEncoder
from .errors import ArgumentError, WeightsError
from .losses import TAP_SCALE, AdaINLoss
from .model import AdaINModel
from .weights import load_file, save_file

__all__ = ["TrainConfig", "train", "train_step", "TrainResult"]


LOG_COLUMNS = ["step", "loss", "content", "style", "lr", "crop", "sec_per_step", "time", "grid"]


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved in every checkpoint).

    Attributes:
        content_dir, style_dir: folders of images (searched recursively).
        out: run folder: ``checkpoint.safetensors``, ``decoder.safetensors``, ``log.csv``, ``samples/``.
        steps: total optimiser steps (a resumed run goes on to this number).
        batch_size: images per step per process.
        crop: training crop size, or a tuple of sizes taken in turn, one per step
            (``(256, 384)``: 256 px on even steps, 384 on odd ones). Each picture is scaled so its
            short side is 1 to 1.5 times the crop, so the crop also sets the scale the decoder
            learns at; several sizes train it for several scales. ``warmup_crop`` is used for
            the first ``warmup_steps`` steps (a curriculum: 128 px crops cost a quarter of 256 px ones).
        lr, lr_decay: Adam learning rate ``lr / (1 + lr_decay * step)`` (the reference's schedule).
        lr_warmup: ramp the learning rate up linearly over this many first steps. A fresh Adam
            moves every weight by about ``lr`` in its first steps, which knocks a trained
            ``init`` decoder back for a few dozen steps (measured: the loss jumped from about 9
            to 27 at lr 1.4e-4); 100 steps of warm-up avoid that. Default 0.
        style_weight: λ in ``content + λ·style`` (losses are in per-tap normalised units).
        grid_weight: weight of :func:`~stylekit.losses.grid_loss`, which penalises patterns
            repeating on the decoder's 8 px lattice (logged in every case). Default 0: the
            paper's objective.
        init: a decoder safetensors file to start from (e.g. the shipped weights); default random.
            ``steps`` counts this run's steps; the exported decoder's ``step`` metadata adds the
            steps recorded in ``init`` (its ``run_step`` is this run's alone).
        resume: continue from ``out/checkpoint.safetensors`` if it exists (with this config's
            ``lr``: the same as before continues bit for bit, another changes the rate from the
            resumed step on).
    """

    content_dir: str
    style_dir: str
    out: str = "runs/decoder"
    steps: int = 20000
    batch_size: int = 8
    crop: int | tuple[int, ...] = 256
    warmup_crop: int | None = None
    warmup_steps: int = 0
    lr: float = 1e-4
    lr_decay: float = 5e-5
    lr_warmup: int = 0
    style_weight: float = 10.0
    grid_weight: float = 0.0
    val_fraction: float = 0.02
    device: str = "auto"
    dtype: str = "auto"
    workers: int = 1
    seed: int = 0
    checkpoint_every: int = 250
    sample_every: int = 250
    log_every: int = 10
    init: str | None = None
    resume: bool = True
    compile: bool = False
    progress: bool = True

    def lr_factor(self, step: int) -> float:
        """The learning rate at ``step`` is ``lr * lr_factor(step)``."""
        warm = min(1.0, (step + 1) / self.lr_warmup) if self.lr_warmup > 0 else 1.0
        return warm / (1.0 + self.lr_decay * step)

    @property
    def crops(self) -> tuple[int, ...]:
        """The crop sizes taken in turn after the warm-up (``crop`` as a tuple)."""
        return tuple(self.crop) if isinstance(self.crop, (tuple, list)) else (self.crop,)

    def crop_at(self, step: int) -> int:
        if self.warmup_crop and step < self.warmup_steps:
            return self.warmup_crop
        return self.crops[step % len(self.crops)]

    def validate(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "sample_every", "log_every"):
            if getattr(self, name) < 1:
                raise ArgumentError(f"{name} must be at least 1, got {getattr(self, name)}")
        if isinstance(self.crop, str):  # say that the form is wrong, not that '256,384' is no multiple of 8
            raise ArgumentError(f"crop must be an int or a tuple of ints, e.g. 256 or (256, 384), got the str {self.crop!r}")
        if not self.crops:
            raise ArgumentError("crop must name at least one size")
        for name, v in [*(("crop", c) for c in self.crops), ("warmup_crop", self.warmup_crop)]:
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 32 or v % 8):
                raise ArgumentError(f"{name} must be a multiple of 8 and at least 32, got {v!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ArgumentError(f"lr must be a positive number, got {self.lr}")
        if not (self.style_weight >= 0 and math.isfinite(self.style_weight)):
            raise ArgumentError(f"style_weight must be a non-negative number, got {self.style_weight}")
        if not (self.grid_weight >= 0 and math.isfinite(self.grid_weight)):
            raise ArgumentError(f"grid_weight must be a non-negative number, got {self.grid_weight}")
        if self.lr_warmup < 0:
            raise ArgumentError(f"lr_warmup must be 0 or more steps, got {self.lr_warmup}")
        if not 0 <= self.val_fraction < 1:
            raise ArgumentError(f"val_fraction must be in [0, 1), got {self.val_fraction}")


@dataclass
class TrainResult:
    """What :func:`train` returns: the last step, its losses and where the weights went.

    ``loss == content_loss + style_weight * style_loss + grid_weight * grid_loss`` (the last step's
    terms; ``grid_loss`` is measured, and logged, even when ``grid_weight`` is 0).
    """

    step: int
    loss: float
    content_loss: float
    style_loss: float
    decoder_path: Path
    checkpoint_path: Path
    skipped_files: int
    grid_loss: float = 0.0


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop finishes the current step, checkpoints and returns."""

    def __init__(self) -> None:
        self.stop = False
        self._old: dict[int, Any] = {}  # the handlers to put back

    def __enter__(self) -> _StopFlag:
        if _is_main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.stop = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# ---------------------------------------------------------------- checkpoints (safetensors only)


def _save_checkpoint(path: Path, decoder: Decoder, opt: torch.optim.Optimizer, step: int, cfg: TrainConfig, stats: dict) -> None:
    tensors = {f"decoder.{k}": v.detach().cpu() for k, v in decoder.state_dict().items()}
    names = {id(p): n for n, p in decoder.named_parameters()}
    opt_state = opt.state_dict()
    param_ids = opt_state["param_groups"][0]["params"]
    for idx, p in zip(param_ids, opt.param_groups[0]["params"]):
        for k, v in opt_state["state"].get(idx, {}).items():
            tensors[f"adam.{names[id(p)]}.{k}"] = torch.as_tensor(v).detach().cpu()
    tensors["rng.torch"] = torch.get_rng_state()
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt_state["param_groups"]]
    meta = {"step": str(step), "config": json.dumps(asdict(cfg)), "param_groups": json.dumps(groups), "stats": json.dumps(stats)}
    save_file(path, tensors, meta)


def _load_checkpoint(path: Path, decoder: Decoder, opt: torch.optim.Optimizer) -> tuple[int, dict]:
    tensors, meta = load_file(path)
    if "step" not in meta or "param_groups" not in meta or "rng.torch" not in tensors:
        raise WeightsError(f"{path} is not a stylekit training checkpoint (move it away or pass resume=False)")
    try:
        decoder.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("decoder.")})
    except RuntimeError as e:
        raise WeightsError(f"{path} does not hold a stylekit decoder: {str(e).splitlines()[0]}") from None
    names = [n for n, _ in decoder.named_parameters()]
    state = {}
    for i, n in enumerate(names):
        keys = {k.rsplit(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"adam.{n}.") and k.count(".") == n.count(".") + 2}
        if keys:
            state[i] = keys
    groups = json.loads(meta["param_groups"])
    groups[0]["params"] = list(range(len(names)))
    opt.load_state_dict({"state": state, "param_groups": groups})
    torch.set_rng_state(tensors["rng.torch"])
    return int(meta["step"]), json.loads(meta.get("stats", "{}"))


# ---------------------------------------------------------------- the loop


def _setup_distributed(device_name: str) -> tuple[int, int, int, torch.device]:
    if "RANK" not in os.environ:
        return 0, 0, 1, resolve_device(device_name)
    rank, local, world = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"])
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return rank, local, world, device


def _to_input(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last)


def train_step(
    model: torch.nn.Module, loss_fn: AdaINLoss, opt: torch.optim.Optimizer,
    content: torch.Tensor, style: torch.Tensor, device: torch.device, dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimiser step of the AdaIN objective; returns the (total, content, style, grid) losses.

    ``model`` is an :class:`AdaINModel` (or its DDP wrapper); the forward and the losses run under
    ``autocast(device, dtype)``. The learning-rate schedule is the caller's.
    """
    with autocast(device, dtype):
        o = model(content, style, return_features=True)
        loss, lc, ls, lg = loss_fn(o.image, o.target, o.style_feats)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss, lc, ls, lg


def train(config: TrainConfig | None = None, **overrides) -> TrainResult:
    """Train (or go on training) a decoder; returns the final step and losses.

    Keyword arguments override fields of ``config`` (or build one): ``train(content_dir=...,
    style_dir=..., steps=1000)``. Writes into ``config.out`` (see :class:`TrainConfig`).
    """
    cfg = TrainConfig(**{**(asdict(config) if config else {}), **overrides})
    cfg.validate()
    rank, _, world, device = _setup_distributed(cfg.device)
    dtype = resolve_dtype(device, cfg.dtype)
    is_main = rank == 0
    out = Path(cfg.out)
    ckpt_path, dec_path = out / "checkpoint.safetensors", out / "decoder.safetensors"
    if is_main:
        (out / "samples").mkdir(parents=True, exist_ok=True)

    content_train, content_val = split_files(list_images(cfg.content_dir), cfg.val_fraction)
    style_train, style_val = split_files(list_images(cfg.style_dir), cfg.val_fraction)
    if not content_train or not style_train:
        raise ArgumentError("after holding out the validation split no training images are left")

    torch.manual_seed(cfg.seed)
    decoder = Decoder.from_file(cfg.init) if cfg.init else Decoder()
    model = AdaINModel(VGGEncoder.from_pretrained(), decoder).to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    loss_fn = AdaINLoss(model.encoder, cfg.style_weight, cfg.grid_weight)
    opt = torch.optim.Adam(decoder.parameters(), lr=cfg.lr)

    # Steps the init decoder had already been trained for: the exported decoder's "step" counts them too.
    start, stats = 0, {"skipped": 0, "init_step": _meta_step(decoder.meta) if cfg.init else 0}
    if cfg.resume and ckpt_path.exists():
        start, stats = _load_checkpoint(ckpt_path, decoder, opt)
        decoder.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack this form
        before = opt.param_groups[0].get("initial_lr", cfg.lr)
        for g in opt.param_groups:  # the lr asked for now, not the checkpoint's, rules from here on
            g["initial_lr"] = cfg.lr
        if is_main:
            changed = f" with lr {cfg.lr:g} (the checkpoint's run had {before:g})" if before != cfg.lr else ""
            print(f"resuming from {ckpt_path} at step {start}{changed}")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cfg.lr_factor, last_epoch=start - 1)

    if world > 1:
        model.decoder = torch.nn.parallel.DistributedDataParallel(decoder, device_ids=[device.index] if device.type == "cuda" else None)
    runner = cast(nn.Module, torch.compile(model)) if cfg.compile else model

    data = PairBatches(content_train, style_train, batch_size=cfg.batch_size, crop=cfg.crop_at, seed=cfg.seed, rank=rank)
    loader = DataLoader(
        data, batch_size=None, sampler=range(start, cfg.steps), num_workers=cfg.workers,
        pin_memory=device.type == "cuda", prefetch_factor=4 if cfg.workers else None,
        persistent_workers=False, generator=torch.Generator().manual_seed(cfg.seed),  # not the global RNG
        worker_init_fn=_leave_the_stop_to_the_trainer,  # (unused without workers)
    )  # fmt: skip
    val = _val_batch(content_val or content_train, style_val or style_train, min(*cfg.crops, 256)) if is_main else None

    log_f = None
    if is_main:
        new_log = not (out / "log.csv").exists() or start == 0
        if not new_log:
            _extend_log_header(out / "log.csv")
        log_f = open(out / "log.csv", "w" if new_log else "a", newline="")
        log = csv.writer(log_f)
        if new_log:
            log.writerow(LOG_COLUMNS)
    bar = _progress(start, cfg.steps, enabled=is_main and cfg.progress)
    step, last = start, {"loss": float("nan"), "content": float("nan"), "style": float("nan"), "grid": float("nan")}
    t0 = time.perf_counter()
    model.train()
    model.encoder.eval()
    flag = _StopFlag()
    try:
        with flag:
            for batch in loader:
                if batch["skipped"]:
                    stats["skipped"] += len(batch["skipped"])
                    if is_main:
                        warnings.warn(f"skipped unreadable images: {batch['skipped'][:3]} (total {stats['skipped']})", stacklevel=1)
                c, s = _to_input(batch["content"], device), _to_input(batch["style"], device)
                loss, lc, ls, lg = train_step(runner, loss_fn, opt, c, s, device, dtype)
                sched.step()
                step += 1
                if not math.isfinite(loss.item()):
                    raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower lr, style_weight or grid_weight")
                last = {"loss": loss.item(), "content": lc.item(), "style": ls.item(), "grid": lg.item()}
                bar.update(1)
                bar.set_postfix(loss=f"{last['loss']:.3f}", c=f"{last['content']:.3f}", s=f"{last['style']:.3f}",
                                g=f"{last['grid']:.2e}", crop=batch["content"].shape[-1])  # fmt: skip
                if log_f is not None and (step % cfg.log_every == 0 or step == cfg.steps):  # (the main process)
                    dt = (time.perf_counter() - t0) / cfg.log_every
                    t0 = time.perf_counter()
                    log.writerow([step, f"{last['loss']:.5f}", f"{last['content']:.5f}", f"{last['style']:.5f}",
                                  f"{sched.get_last_lr()[0]:.3g}", batch["content"].shape[-1], f"{dt:.3f}",
                                  datetime.datetime.now().isoformat(timespec="seconds"), f"{last['grid']:.4g}"])  # fmt: skip
                    log_f.flush()
                if is_main and val is not None and step % cfg.sample_every == 0:
                    _save_samples(model, val, out / "samples" / f"step{step:07d}.png", device, dtype)
                if step % cfg.checkpoint_every == 0 and step < cfg.steps:
                    _checkpoint(is_main, ckpt_path, dec_path, decoder, opt, step, cfg, stats, last)
                if _any_rank(flag.stop, device, world):
                    break
    except RuntimeError as e:
        # A stop sent to the whole process group reaches the DataLoader workers too. They
        # ignore it once started (_leave_the_stop_to_the_trainer); one that dies of it before
        # that is part of the same stop, not an error.
        if not _worker_killed_by_the_stop(e, flag):
            raise
    finally:
        if step > start:
            _despite_dying_workers(lambda: _checkpoint(is_main, ckpt_path, dec_path, decoder, opt, step, cfg, stats, last),
                                   flag, cfg.workers)  # fmt: skip
        bar.close()
        if log_f:
            log_f.close()
        if world > 1:
            model.decoder = decoder
    return TrainResult(step, last["loss"], last["content"], last["style"], dec_path, ckpt_path, stats["skipped"], last["grid"])


def _leave_the_stop_to_the_trainer(worker_id: int) -> None:
    """DataLoader worker start-up: ignore SIGINT and SIGTERM. A stop sent to the whole process
    group (Ctrl-C in a terminal, kill -- -PGID, a batch scheduler) would otherwise kill a worker
    while it hands over a batch, and the training process would fail in torch's unpickling
    instead of finishing its step; the trainer stops the workers itself when it returns."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def _worker_killed_by_the_stop(e: RuntimeError, flag: _StopFlag) -> bool:
    """torch's report of a DataLoader worker killed by the same stop signal: part of the stop."""
    return flag.stop and "DataLoader worker" in str(e)


def _despite_dying_workers(save: Callable[[], None], flag: _StopFlag, workers: int) -> None:
    """Run ``save`` (the last checkpoint). A stop signal sent to the whole process group kills the
    DataLoader workers too, and torch reports each death from its SIGCHLD handler at whatever
    line runs then, possibly in the middle of this checkpoint: after a stop, write it again
    (files are written atomically, so an interrupted attempt leaves nothing half-written)."""
    for attempt in range(workers + 1):
        try:
            save()
            return
        except RuntimeError as e:
            if not _worker_killed_by_the_stop(e, flag) or attempt == workers:
                raise


def _extend_log_header(path: Path) -> None:
    """A log.csv begun by an older stylekit, whose header lacks the later columns, gets today's
    header before rows with those columns are appended (its old rows just have fewer fields)."""
    lines = path.read_text().splitlines(keepends=True)
    old = lines[0].strip().split(",") if lines else []
    if old != LOG_COLUMNS and old == LOG_COLUMNS[: len(old)]:
        path.write_text(",".join(LOG_COLUMNS) + "\n" + "".join(lines[1:]))


def _meta_step(meta: dict[str, str]) -> int:
    try:
        return max(0, int(meta.get("step", 0)))
    except ValueError:
        return 0


def _any_rank(flag: bool, device: torch.device, world: int) -> bool:
    if world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item())


def _checkpoint(is_main, ckpt_path, dec_path, decoder, opt, step, cfg, stats, last) -> None:
    if not is_main:
        return
    _save_checkpoint(ckpt_path, decoder, opt, step, cfg, stats)
    meta = {
        "step": str(stats.get("init_step", 0) + step), "run_step": str(step), "batch_size": str(cfg.batch_size),
        "crop": ",".join(map(str, cfg.crops)), "style_weight": str(cfg.style_weight), "grid_weight": str(cfg.grid_weight),
        "tap_scale": json.dumps(TAP_SCALE),
        "lr": str(cfg.lr), "seed": str(cfg.seed),  # with init and step: which run an export came from
        "content_dir": str(cfg.content_dir), "style_dir": str(cfg.style_dir),
        "loss": f"{last['loss']:.5f}", "date": datetime.date.today().isoformat(),
        "encoder_padding": "reflect",  # VGGEncoder.from_pretrained()'s default, which train() uses
    }  # fmt: skip
    if cfg.init:
        meta["init"] = f"{Path(cfg.init).name} at step {stats.get('init_step', 0)}"
    decoder.save(dec_path, metadata=meta)


def _val_batch(content, style, size: int = 256, n: int = 4) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Up to ``n`` readable (content, style) pairs for the sample grids; unreadable files are
    skipped, as in training. None when either folder has no readable image."""
    import numpy as np

    from .data import UNREADABLE, read_crop

    rng = np.random.default_rng(1234)

    def first_readable(files: Sequence[Path]) -> list[np.ndarray]:
        arrs: list[np.ndarray] = []
        for f in files:
            if len(arrs) == n:
                break
            try:
                arrs.append(read_crop(f, size, rng))
            except UNREADABLE:
                continue
        return arrs

    cs, ss = first_readable(content), first_readable(style)
    k = min(len(cs), len(ss))  # the grid needs as many styles as contents
    if k == 0:
        return None
    c, s = np.stack(cs[:k]), np.stack(ss[:k])
    return torch.from_numpy(c).permute(0, 3, 1, 2), torch.from_numpy(s).permute(0, 3, 1, 2)


@torch.no_grad()
def _save_samples(model: AdaINModel, val, path: Path, device, dtype) -> None:
    """A grid with one row per validation pair: content | style | output."""
    from torchvision.utils import save_image

    c, s = _to_input(val[0], device), _to_input(val[1], device)
    was_training = model.decoder.training
    model.eval()
    with autocast(device, dtype):
        y = model(c, s).float().clamp(0, 1)
    model.decoder.train(was_training)
    rows = torch.stack([c.float(), s.float(), y], dim=1).flatten(0, 1)
    save_image(rows.cpu(), path, nrow=3, padding=2)


def _progress(start: int, total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, disable=not enabled, unit="step", dynamic_ncols=True, desc="train")

