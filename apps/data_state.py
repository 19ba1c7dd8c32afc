"""The one protocol for state a model takes from its data (``AttnLabModule`` inherits it).

Some apps size layers from what the training data holds: a vocabulary (POS), a label inventory and feature
settings (speech), class names and normalisation statistics (vision). The state lives in
``model.<data_state_attr>``; at setup it is taken from the datamodule's attribute of the same name (or kept from
the checkpoint / ``init_from``), it is saved in every checkpoint under ``data_state_key``, and handed back to the
datamodule so that test, predict, explain and fine-tuning encode, normalise and name classes exactly as training.
An app declares the two names and builds its data-sized layers in ``build_from_data``; nothing else.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from .checkpoint_io import read_checkpoint


class DataStateMixin:
    """Mixed into ``AttnLabModule`` (a LightningModule); see the module docstring."""

    data_state_key: str | None = None  # checkpoint entry, e.g. "pos_vocab"; None: the app takes no data state
    data_state_attr: str | None = None  # attribute of the model and of the datamodule that holds it
    keep_init_data_state: bool = False  # fit with init_from: keep the source checkpoint's state (vocabularies)

    def datamodule(self) -> L.LightningDataModule | None:
        """The trainer's datamodule, or None outside a trainer."""
        return getattr(self._trainer, "datamodule", None) if self._trainer is not None else None

    @property
    def data_state(self) -> Any:
        """What the model took from the data (None before it saw any, or for apps that take nothing)."""
        return getattr(self, self.data_state_attr, None) if self.data_state_attr else None

    def build_from_data(self, state: Any) -> None:
        """Build the layers whose sizes depend on ``state`` (apps with a ``data_state_key`` override this)."""
        raise NotImplementedError(f"{type(self).__name__} declares data_state_key but not build_from_data")

    def pack_data_state(self, state: Any) -> dict[str, Any]:
        """``state`` as plain data for the checkpoint (``to_dict()`` when it has one)."""
        return state.to_dict() if hasattr(state, "to_dict") else dict(state)

    def unpack_data_state(self, raw: dict[str, Any]) -> Any:
        """The inverse of ``pack_data_state`` (apps whose state is a class override this)."""
        return dict(raw)

    def set_data_state(self, state: Any) -> None:
        """Adopt ``state`` and build the layers sized by it; a no-op when it equals the current one."""
        unchanged = self.data_state == state
        setattr(self, self.data_state_attr, state)
        if not unchanged:
            self.build_from_data(state)

    def share_data_state(self) -> None:
        """Hand the model's state to the datamodule (it then encodes and normalises like the training data)."""
        dm = self.datamodule()
        if self.data_state is not None and dm is not None and hasattr(dm, self.data_state_attr):
            accept = getattr(dm, "accept_data_state", None)
            if callable(accept):  # the datamodule checks its data against it (class names, sample rate, ...)
                accept(self.data_state)
            setattr(dm, self.data_state_attr, self.data_state)

    def setup_data_state(self, stage: str) -> None:
        """At setup: keep the state the model has (checkpoint), else take init_from's (when the app keeps it) or
        the datamodule's; then share it with the datamodule."""
        if self.data_state_key is None:
            return
        dm = self.datamodule()
        if stage == "fit" and self.init_from and self.keep_init_data_state:
            checkpoint = read_checkpoint(self.init_from, key="model.init_from")  # missing/truncated: one line
            if self.data_state_key in checkpoint:
                self.set_data_state(self.unpack_data_state(checkpoint[self.data_state_key]))
                rank_zero_info(f"init_from {self.init_from}: keeping its {self.data_state_attr}")
        if self.data_state is None and dm is not None and getattr(dm, self.data_state_attr, None) is not None:
            self.set_data_state(getattr(dm, self.data_state_attr))
        self.share_data_state()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.data_state_key is None:
            return
        if self.data_state is None:
            raise RuntimeError(f"{type(self).__name__} has no {self.data_state_attr} to save: it never saw data")
        checkpoint[self.data_state_key] = self.pack_data_state(self.data_state)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.data_state_key is None:
            return
        if self.data_state_key not in checkpoint:
            raise KeyError(f"this checkpoint has no {self.data_state_key!r}: it was not saved by "
                           f"{type(self).__module__}.{type(self).__name__}")
        self.set_data_state(self.unpack_data_state(checkpoint[self.data_state_key]))
        self.share_data_state()
