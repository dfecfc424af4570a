"""Trainer: the one training loop of every model, from one CPU process to torchrun on many GPUs."""

from __future__ import annotations

import math
import random
import signal
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from fastpretrain.train import checkpoint, distributed
from fastpretrain.train.config import TrainConfig
from fastpretrain.train.data import ShardedBatches
from fastpretrain.train.metrics import MetricsLog, info, mfu, peak_flops
from fastpretrain.train.schedule import lr_at


class Trainer:
    """``Trainer(model, dataset, TrainConfig(...)).fit()``.

    The dataset is map-style; the trainer shards it by rank and batches it (``collate_fn``, default
    torch's). The model is called as ``model(**batch)`` for dict batches, ``model(*batch)`` for
    tuples, ``model(batch)`` otherwise, and returns a scalar loss, or a dict with ``"loss"``,
    optionally ``"items"`` (e.g. tokens, for items/s; default the batch's leading size) and other
    scalars to log. ``flops_per_item`` (training FLOPs per item, forward + backward; default the
    model's ``flops_per_item()``) gives MFU. Build the model identically on every rank.

    With ``resume``, the constructor loads the latest readable checkpoint and refuses one whose
    model differs (``model_config``, a dict of the model's settings stored in every checkpoint,
    names the fields; else the weights' names and shapes), so a run's files can be written once
    the Trainer exists. Rank 0 alone reads and writes checkpoints (no shared filesystem needed to
    resume). Under torchrun a SIGTERM reaches every worker; the step and checkpoint must fit in
    the launcher's grace period, else the kill leaves the previous checkpoint intact.
    """

    def __init__(self, model: nn.Module, data, config: TrainConfig, *, collate_fn: Callable | None = None,
                 flops_per_item: float | None = None, model_config: dict | None = None) -> None:  # fmt: skip
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
        self.config = c = config
        self.rank, self.world_size, self.device = distributed.setup(c.device)
        pin = self.device.type == "cuda"
        self.data = ShardedBatches(data, c.batch_size, rank=self.rank, world_size=self.world_size, seed=c.seed,
                                   collate_fn=collate_fn, num_workers=c.num_workers, pin_memory=pin)  # fmt: skip
        precision = c.precision if c.precision != "auto" else "bf16" if self.device.type == "cuda" else "fp32"
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[precision]
        self.model = distributed.wrap(model.to(self.device), c.parallel, self.device)
        self.forward = torch.compile(self.model) if c.compile else self.model
        self.optimizer = adamw(self.model, c, fused=self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "fp16")
        if flops_per_item is None and hasattr(model, "flops_per_item"):
            flops_per_item = model.flops_per_item()
        self.flops_per_item, self.peak_flops = flops_per_item, peak_flops(self.device)
        self.model_config = model_config
        self.step, self.skips = 0, 0
        self.history: list[dict] = []  # the metric rows of this fit(), on every rank
        self._start_rngs = self._restore(model)  # called when fit() starts: nothing in between draws from them

    def fit(self) -> list[dict]:
        """Train to ``config.steps``, checkpointing every ``ckpt_every`` steps and at the end.
        Returns the metric rows logged. On SIGINT/SIGTERM, finishes the step, checkpoints and
        raises :class:`Interrupted` (uncaught, the process exits with 130 / 143)."""
        c = self.config
        if self._start_rngs is not None:
            self._start_rngs()
            self._start_rngs = None
        log = MetricsLog(
            c.out_dir, start=self.step, steps=c.steps, tensorboard=c.tensorboard, enabled=distributed.is_main()
        )
        batches, window = iter(self.data), _Window()
        try:
            with _StopSignals() as stop:
                while self.step < c.steps:
                    stopping = self._step(batches, window, stop)
                    log.step(self.step, window.last_loss)
                    if self.step % c.log_every == 0 or self.step == c.steps or stopping:
                        row = window.row(
                            self.step,
                            self._lr(self.step - 1),
                            self.skips,
                            self.flops_per_item,
                            self.peak_flops,
                            self.world_size,
                        )
                        window = _Window()
                        self.history.append(row)
                        log.log(row)
                    if self.step % c.ckpt_every == 0 or self.step == c.steps or stopping:
                        path = self.save()
                    if stopping:
                        self._interrupted(stopping, path)
        finally:
            log.close()
        return self.history

    def _interrupted(self, signum: int, path: Path | None) -> None:
        """Say the run stopped short, and where it can continue from; then raise Interrupted."""
        if distributed.is_main():
            info(f"interrupted by {signal.Signals(signum).name} at step {self.step} of {self.config.steps}, "
                 f"not complete: checkpoint {path}; continue with resume=True (--resume)")  # fmt: skip
        distributed.barrier()  # torchrun stops every worker once one exits: not before rank 0 has said so
        raise Interrupted(signum, self.step)

    def _step(self, batches, window: _Window, stop: _StopSignals) -> int:
        """One optimizer step over grad_accum micro-batches; returns the stop signal any rank got
        (SIGTERM over SIGINT), else 0."""
        c = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr(self.step)
        loss = items = torch.zeros((), dtype=torch.float64, device=self.device)
        extras: dict[str, torch.Tensor] = {}
        for micro in range(c.grad_accum):
            batch = _to_device(next(batches), self.device)
            with distributed.grad_sync(self.model, enabled=micro == c.grad_accum - 1):
                with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                    out = _call(self.forward, batch)
                micro_loss, micro_items, micro_extras = _unpack(out, batch)
                self.scaler.scale(micro_loss / c.grad_accum).backward()
            loss, items = loss + micro_loss.detach().double() / c.grad_accum, items + micro_items
            for k, v in micro_extras.items():
                extras[k] = extras.get(k, 0) + torch.as_tensor(v, device=self.device).detach().double() / c.grad_accum
        # One all-reduce a step, so every rank agrees on the loss, the item count and stopping.
        signals = [torch.tensor(float(stop.signum == s), dtype=loss.dtype, device=self.device) for s in stop.SIGNALS]
        agreed = torch.stack([loss, items, *signals, *extras.values()])
        if dist.is_initialized():
            dist.all_reduce(agreed)
        loss_sum, items, *rest = agreed.tolist()
        got, extra_sums = rest[: len(signals)], rest[len(signals) :]
        loss = loss_sum / self.world_size
        self.step += 1
        grad_norm = None
        if math.isfinite(loss):
            if c.clip_grad > 0:
                self.scaler.unscale_(self.optimizer)
                grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), c.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        elif c.nan_policy == "stop" or self.skips >= c.max_skips:
            skipped = (
                f" ({self.skips} batches skipped already, max_skips={c.max_skips})" if c.nan_policy == "skip" else ""
            )
            raise FloatingPointError(f"loss is {loss} at step {self.step}{skipped}")
        else:
            self.skips += 1
        self.optimizer.zero_grad(set_to_none=True)
        window.add(loss, items, grad_norm, {k: v / self.world_size for k, v in zip(extras, extra_sums)})
        return next((s for s, n in zip(stop.SIGNALS, got) if n > 0), 0)

    def _lr(self, step: int) -> float:
        c = self.config
        return lr_at(step, lr=c.lr, min_lr=c.min_lr, warmup_steps=c.warmup_steps, steps=c.steps, schedule=c.schedule)

    def save(self) -> Path | None:
        """Checkpoint the current step (a collective: every rank calls it, rank 0 writes); its path
        on rank 0. A failed write (a full disk) raises on every rank, so none waits at a barrier."""
        weights, optimizer = checkpoint.gather(self.model, self.optimizer)
        rng = _all_gather(_rng_state(self.device))
        path = None
        if distributed.is_main():
            state = {"step": self.step, "skips": self.skips, "optimizer": optimizer, "scaler": self.scaler.state_dict(),
                     "data": self.data.state_dict(), "rng": rng, "config": asdict(self.config),
                     "model_config": self.model_config}  # fmt: skip
            try:
                path = checkpoint.save(self.config.out_dir, self.step, weights, state, self.config.keep_checkpoints)
            except Exception as e:
                _broadcast(f"{type(e).__name__}: {e}")  # what the other ranks wait for below
                raise
        failed = _broadcast(None)
        if failed is not None:
            raise RuntimeError(f"checkpoint: rank 0 could not write step {self.step}: {failed}")
        return path

    def _restore(self, model: nn.Module) -> Callable[[], None]:
        """Continue from the latest readable checkpoint, or start afresh; returns what seeds the
        RNGs (or restores their states) when fit() starts. Rank 0 reads; every rank raises if the
        checkpoint is refused."""
        c = self.config
        found = _on_main(self._read_checkpoint, model)
        if _broadcast(found is None if distributed.is_main() else None):
            return lambda: _seed(c.seed + self.rank)
        path, weights, state = found if distributed.is_main() else (None, {}, None)
        optimizer = state.pop("optimizer") if distributed.is_main() else {}
        state = _broadcast(state)
        checkpoint.scatter(self.model, self.optimizer, weights, optimizer)
        self.step, self.skips = state["step"], state["skips"]
        self.scaler.load_state_dict(state["scaler"])
        self.data.load_state_dict(state["data"])
        if distributed.is_main():
            _warn_batch_changes(state["config"], len(state["rng"]), c, self.world_size)
            info(f"resumed from {path} (step {self.step})")
        if len(state["rng"]) == self.world_size:
            return lambda: _set_rng_state(state["rng"][self.rank], self.device)
        return lambda: _seed(c.seed + self.rank + self.step * self.world_size)  # the data order holds, dropout cannot

    def _read_checkpoint(self, model: nn.Module) -> tuple[Path, dict, dict] | None:
        """Rank 0: (path, weights, state) to resume from, None for a fresh start, or ValueError:
        checkpoints without resume, none readable, or one of another model."""
        c = self.config
        checkpoint.remove_stale(c.out_dir)
        found = checkpoint.latest(c.out_dir)
        if found is not None and not c.resume:
            raise ValueError(f"resume: {c.out_dir} already holds checkpoints (latest {found.name}); "
                             "pass resume=True (--resume) to continue, or choose another out_dir")  # fmt: skip
        loaded = checkpoint.load_latest(c.out_dir) if found is not None else None
        if loaded is None:
            if c.resume:
                info(f"resume: no checkpoint in {checkpoint.checkpoints_dir(c.out_dir)}, starting from step 0")
            return None
        path, weights, state = loaded
        _check_same_model(path, state.get("model_config"), self.model_config, weights, model)
        return loaded


def adamw(model: nn.Module, config: TrainConfig, fused: bool) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and embeddings (dim >= 2), none on biases and norms."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]  # fmt: skip
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr, betas=config.betas, fused=fused or None)


class _Window:
    """Sums over the steps since the last metric row."""

    def __init__(self) -> None:
        self.start, self.steps, self.loss, self.items, self.extras = time.perf_counter(), 0, 0.0, 0.0, {}
        self.grad_norm, self.last_loss = None, math.nan

    def add(self, loss: float, items: float, grad_norm, extras: dict) -> None:
        self.steps, self.loss, self.items, self.grad_norm, self.last_loss = (
            self.steps + 1,
            self.loss + loss,
            self.items + items,
            grad_norm,
            loss,
        )
        for k, v in extras.items():
            self.extras[k] = self.extras.get(k, 0.0) + v

    def row(self, step: int, lr: float, skips: int, flops_per_item, peak, world_size: int) -> dict:
        """The metric row: means over the window."""
        items_per_s = self.items / (time.perf_counter() - self.start)
        norm = self.grad_norm.full_tensor() if hasattr(self.grad_norm, "full_tensor") else self.grad_norm
        row = {"step": step, "loss": self.loss / self.steps, "lr": lr, "grad_norm": None if norm is None else float(norm),
               "items_per_s": items_per_s, "mfu": mfu(flops_per_item, items_per_s, peak, world_size), "skips": skips,
               **{k: v / self.steps for k, v in self.extras.items()}}  # fmt: skip
        return row


class Interrupted(SystemExit):
    """Raised by :meth:`Trainer.fit` on SIGINT/SIGTERM, once the step is finished and checkpointed:
    the run is not complete. Uncaught, it exits with 128 + the signal (130, 143), as a shell
    reports a job killed by it; ``signal`` and ``step`` say which and where."""

    def __init__(self, signum: int, step: int) -> None:
        super().__init__(128 + signum)
        self.signal, self.step = signal.Signals(signum), step


class _StopSignals:
    """SIGINT/SIGTERM set ``signum`` instead of killing, so the loop can finish its step and
    checkpoint; a second signal gets the previous handler. Handlers are restored on exit."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)  # the first one any rank got wins, in this order

    def __enter__(self) -> _StopSignals:
        self.signum, self.previous = 0, {}
        if threading.current_thread() is threading.main_thread():  # signal.signal works only there
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.signum = self.signum or signum
        signal.signal(signum, self.previous[signum] or signal.SIG_DFL)

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler or signal.SIG_DFL)


def _call(model, batch):
    """``model(**batch)`` for a dict, ``model(*batch)`` for a tuple or list, else ``model(batch)``."""
    if isinstance(batch, dict):
        return model(**batch)
    return model(*batch) if isinstance(batch, (list, tuple)) else model(batch)


def _unpack(out, batch) -> tuple[torch.Tensor, torch.Tensor | int, dict]:
    """(loss, items, extra metrics) from what the model returned."""
    extras = dict(out) if isinstance(out, dict) else {"loss": out}
    loss, items = extras.pop("loss", None), extras.pop("items", None)
    if not (torch.is_tensor(loss) and loss.ndim == 0):
        got = f"a tensor of shape {tuple(loss.shape)}" if torch.is_tensor(loss) else type(loss).__name__
        raise TypeError(f"model: forward must return a scalar loss or a dict with a scalar 'loss', got {got}")
    if items is None:
        first = (
            next(iter(batch.values()))
            if isinstance(batch, dict)
            else batch[0]
            if isinstance(batch, (list, tuple))
            else batch
        )
        items = len(first)
    return loss, items, extras


def _to_device(batch, device: torch.device):
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _check_same_model(path, saved: dict | None, config: dict | None, weights: dict, model: nn.Module) -> None:
    """ValueError naming what differs between the checkpoint's model and this one: the fields of
    the model configs when both are known, else the weights' names and shapes."""
    if saved is not None and config is not None and saved != config:
        fields = [f"{k} {saved.get(k, '(absent)')!r} there, {config.get(k, '(absent)')!r} here"
                  for k in sorted(saved.keys() | config.keys()) if saved.get(k) != config.get(k)]  # fmt: skip
        raise ValueError(f"resume: the model config differs from the checkpoint {path}'s: {'; '.join(fields)}. "
                         "Resume with the run's model settings, or train into another out_dir")  # fmt: skip
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in weights.items()}
    diffs = [f"{k} missing here" for k in sorted(theirs.keys() - ours.keys())]
    diffs += [f"{k} missing there" for k in sorted(ours.keys() - theirs.keys())]
    diffs += [f"{k} {theirs[k]} there, {ours[k]} here" for k in sorted(ours.keys() & theirs.keys())
              if ours[k] != theirs[k]]  # fmt: skip
    if diffs:
        more = f" (and {len(diffs) - 5} more)" if len(diffs) > 5 else ""
        raise ValueError(f"resume: the model differs from the checkpoint {path}'s weights: "
                         f"{'; '.join(diffs[:5])}{more}. "
                         "Resume with the run's model settings, or train into another out_dir")  # fmt: skip


def _warn_batch_changes(saved: dict, saved_world: int, config: TrainConfig, world_size: int) -> None:
    """A warning when a resumed run's data no longer follows the checkpoint's: another batch size,
    accumulation or number of ranks (another global batch), or another seed (another order)."""
    old = {"batch_size": saved["batch_size"], "grad_accum": saved["grad_accum"], "ranks": saved_world,
           "seed": saved["seed"]}  # fmt: skip
    new = {"batch_size": config.batch_size, "grad_accum": config.grad_accum, "ranks": world_size, "seed": config.seed}
    changed = [f"{k} {old[k]} -> {new[k]}" for k in old if old[k] != new[k]]
    if changed:
        items = [d["batch_size"] * d["grad_accum"] * d["ranks"] for d in (new, old)]
        warnings.warn(f"resume: {', '.join(changed)} since the checkpoint: {items[0]} items a step (were {items[1]}), "
                      "so the run no longer continues as it would have uninterrupted", stacklevel=4)  # fmt: skip


def _on_main(fn: Callable, *args):
    """``fn(*args)`` on rank 0 (None elsewhere); a ValueError there is raised on every rank, so no
    rank waits forever for one that failed."""
    result, error = None, None
    if distributed.is_main():
        try:
            result = fn(*args)
        except ValueError as e:
            error = e
    message = _broadcast(None if error is None else str(error))
    if error is not None:
        raise error
    if message is not None:
        raise ValueError(message)
    return result


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state(device: torch.device) -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}  # fmt: skip


def _set_rng_state(state: dict, device: torch.device) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def _all_gather(obj) -> list:
    """``obj`` of every rank, in rank order."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def _broadcast(obj):
    """Rank 0's ``obj`` on every rank."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
