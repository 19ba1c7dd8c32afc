"""Callbacks: NaN/Inf detection and per-epoch seeding (added by default), and an average of the weights (EMA).

``NonFiniteGuard`` is configured from YAML or the command line (``nonfinite.action: error|skip|warn|off``);
``EpochSeed`` is on in deterministic mode (``trainer.deterministic: true``), where it makes a run resumed from
an epoch boundary (``--ckpt_path last`` after a kill) replay exactly what the uninterrupted run did.
``EMAWeights`` is named in a config's ``trainer.callbacks`` (``docs/cli.md``).
"""

from __future__ import annotations

import itertools
import random
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EMAWeightAveraging
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader

Action = Literal["error", "skip", "warn", "off"]


class NonFiniteError(FloatingPointError):
    """A loss or a gradient was NaN or Inf (raised by ``NonFiniteGuard`` with ``action: error``)."""


class NonFiniteGuard(Callback):
    """Check the loss and the gradients of every optimizer step for NaN/Inf, before clipping and the step.

    ``action``: "error" stops training with the step, the loss and the first parameters whose gradients are not
    finite; "skip" drops that step's gradients (the optimizer leaves every weight as it is) and warns; "warn"
    only warns; "off" checks nothing. The decision is taken after the gradients were reduced, so every DDP
    process takes the same one. Cost: one norm per parameter and one host sync per step.
    """

    def __init__(self, action: Action = "error", check_grads: bool = True) -> None:
        if action not in ("error", "skip", "warn", "off"):
            raise ValueError(f"nonfinite.action must be error, skip, warn or off, got {action!r}")
        self.action, self.check_grads = action, check_grads
        self._loss: float | None = None
        self.skipped = 0

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor) -> None:
        if self.action != "off" and not bool(torch.isfinite(loss.detach()).all()):
            self._loss = float(loss.detach().float().mean())

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        if self.action == "off":
            return
        bad_loss, self._loss = self._loss, None
        named = [(n, p.grad) for n, p in pl_module.named_parameters() if p.grad is not None]
        bad: list[str] = []
        if self.check_grads and named:
            norms = torch.stack([g.detach().float().norm() for _, g in named])
            finite = torch.isfinite(norms)
            if not bool(finite.all()):
                bad = [n for (n, _), ok in zip(named, finite.tolist(), strict=True) if not ok]
        if bad_loss is None and not bad:
            return
        what = []
        if bad_loss is not None:
            what.append(f"the loss is {bad_loss}")
        if bad:
            what.append(f"the gradients of {len(bad)} parameter tensors are not finite: {bad[:6]}")
        where = f"step {trainer.global_step} (epoch {trainer.current_epoch})"
        if self.action == "error":
            raise NonFiniteError(
                f"{where}: {'; '.join(what)}. Lower model.optim.lr, set trainer.gradient_clip_val, use "
                "precision 32-true, or set nonfinite.action: skip (drop such steps) or warn")
        if self.action == "skip":
            for _, p in pl_module.named_parameters():
                p.grad = None
            self.skipped += 1
            rank_zero_warn(f"{where}: {'; '.join(what)}; step skipped ({self.skipped} so far)")
        else:
            rank_zero_warn(f"{where}: {'; '.join(what)}")


class EMAWeights(EMAWeightAveraging):
    """Lightning's exponential moving average of the weights (``decay``: weight of the old average per step),
    validated, checkpointed and tested in place of the last weights, for an app whose layers are built in
    ``setup``.

    Why not ``EMAWeightAveraging`` itself: it copies the module in ``Callback.setup``, which Lightning calls
    *before* ``LightningModule.setup``, where attnlab's apps build their data-sized layers (the tagger's
    vocabulary embeddings and heads); its copy would hold the encoder only, average only that, and checkpoint a
    ``state_dict`` without the rest. Here the copy is made once the module is complete: at ``on_fit_start``, or
    when a resumed fit loads its checkpoint (which comes first), and kept in float32 (see ``_make_average``).
    Everything else (swap for validation, averaged weights as the checkpoint's ``state_dict``, the last weights
    kept for resuming) is Lightning's.
    """

    def __init__(self, decay: float = 0.999, update_every_n_steps: int = 1, update_starting_at_step: int | None = None,
                 device: torch.device | str | int | None = None, use_buffers: bool = True) -> None:
        super().__init__(device=device, use_buffers=use_buffers, decay=decay,
                         update_every_n_steps=update_every_n_steps, update_starting_at_step=update_starting_at_step)
        ema = self._kwargs["avg_fn"]
        # Integer and boolean buffers (id maps, masks) are copied, not averaged: the float average truncated back
        # to integers would shift ids by one.
        self._kwargs["avg_fn"] = lambda average, current, n: (ema(average, current, n)
                                                               if average.is_floating_point() else current)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Nothing yet: the module's layers may not exist before its own ``setup`` (see the class doc)."""

    def _make_average(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._average_model is None:
            device = self._device if self._device is not None else trainer.strategy.root_device
            self._average_model = AveragedModel(model=pl_module, device=device, use_buffers=self._use_buffers,
                                                **self._kwargs)
            # The average is kept in float32 whatever the training precision: in bf16 (``bf16-true``) a step of
            # (1 - decay) = 0.1 % is below half a unit in the last place (0.2 %), so the average would never move
            # from its first copy. The swaps for validation and the checkpoint cast back to the module's dtype.
            for tensor in itertools.chain(self._average_model.module.parameters(),
                                          self._average_model.module.buffers()):
                if tensor.dtype in (torch.float16, torch.bfloat16):
                    tensor.data = tensor.data.float()

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
                           ) -> None:
        if trainer.state.fn != "fit":  # test / predict: the checkpoint's state_dict already is the average
            return
        self._make_average(trainer, pl_module)
        super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._make_average(trainer, pl_module)


class EpochSeed(Callback):
    """Reseed Python, NumPy and torch (every device) at the start of each training epoch from (seed, epoch).

    Lightning restores weights, optimizer, schedule and loop counters on resume, but not the random number
    generators, so a resumed run would shuffle and drop out differently from the uninterrupted one. Seeding
    every epoch from its number makes epoch e the same whether or not the run was interrupted before it.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._first_epoch = 0

    def epoch_seed(self, epoch: int) -> int:
        return (self.seed * 1_000_003 + epoch) % 2**32

    def reseed(self, epoch: int) -> None:
        seed = self.epoch_seed(epoch)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)  # all devices

    def _align(self, trainer: L.Trainer) -> None:
        """Reseed for the current epoch. Making a DataLoader iterator draws one number from torch's generator (its
        base seed). Lightning makes the iterators of the first epoch of a fit, resumed or not, before
        ``on_train_epoch_start`` and those of later epochs after it; draw one number per loader here for the
        first epoch, so the shuffle and dropout of epoch e see the same numbers in both cases."""
        epoch = trainer.current_epoch
        self.reseed(epoch)
        if epoch == self._first_epoch:
            for _ in range(_count_loaders(trainer.train_dataloader)):
                torch.empty((), dtype=torch.int64).random_()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after a restore Lightning may go on with the next epoch without on_train_epoch_start: align here too
        self._first_epoch = trainer.current_epoch
        self._align(trainer)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._align(trainer)


def _count_loaders(loaders: Any) -> int:
    """How many DataLoaders the (possibly nested) train loader collection holds."""
    if isinstance(loaders, DataLoader):
        return 1
    if isinstance(loaders, dict):
        return sum(_count_loaders(v) for v in loaders.values())
    if isinstance(loaders, list | tuple):
        return sum(_count_loaders(v) for v in loaders)
    return 0
