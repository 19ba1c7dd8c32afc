"""Old checkpoints keep loading: hyperparameters saved before the encoder's options were grouped, upgraded.

Until the options became typed groups (``core.EncoderConfig``, see ``core.config``), every app saved them
flat beside its own: ``dim``, ``depth``, ``num_heads``, ``mlp_ratio``, ``dropout``, ``position``, ...,
``kernel: performer`` + ``num_features`` / ``max_length`` / ``redraw_interval`` (LRA), and the speech
frame classifier and the tagger named their backbone ``encoder: attention|context_mlp|bilstm``. Today they
take ``encoder: EncoderConfig`` (kernel options inside ``encoder.kernel``) and ``backbone``.

``upgrade_hparams(model_class, hparams)`` is the one translation, per app from its signature: flat keys the
app no longer takes but ``EncoderConfig`` has move into ``encoder`` (over the app's default encoder, so keys
an even older checkpoint lacks keep their defaults); a ``position`` the app still takes (absolute positions
added to the inputs) keeps "sinusoidal" / "learned" / "none" and hands "rotary" / "relative" to
``encoder.position``. Both loading paths use it: ``AttnLabModule.load_from_checkpoint`` (``upgraded_checkpoint``)
and ``attnlab test|validate|predict|explain --ckpt_path`` (``checkpoint_model_config``, which LightningCLI
merges into the config). Hyperparameters in today's form pass unchanged.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import io
import os
from collections.abc import Mapping
from typing import IO, Any

import torch

from core import EncoderConfig

KERNEL_KEYS = {"kernel": "kind", "num_features": "num_features", "max_length": "max_length",
               "redraw_interval": "redraw_interval"}  # flat key -> KernelConfig field
ENCODER_KEYS = tuple(f.name for f in dataclasses.fields(EncoderConfig) if f.name != "kernel")
ATTENTION_POSITIONS = ("rotary", "relative")


def init_parameters(model_class: type) -> dict[str, inspect.Parameter]:
    """The keyword arguments ``model_class`` takes, following ``**kwargs`` handed to a parent's ``__init__``
    (as jsonargparse does: the speech apps pass their shared options on to ``SpeechModule``)."""
    params: dict[str, inspect.Parameter] = {}
    for cls in model_class.__mro__:
        if "__init__" not in vars(cls):
            continue
        more = False
        for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
            if p.kind is p.VAR_KEYWORD:
                more = True
            elif p.kind is not p.VAR_POSITIONAL:
                params.setdefault(p.name, p)
        if not more:
            break
    return params


def _default_encoder(params: Mapping[str, inspect.Parameter]) -> EncoderConfig | None:
    p = params.get("encoder")
    return p.default if p is not None and isinstance(p.default, EncoderConfig) else None


def needs_upgrade(model_class: type, hparams: Mapping[str, Any]) -> bool:
    """True when ``hparams`` (a checkpoint's ``hyper_parameters``) hold ``model_class``'s options in the old
    flat form."""
    params = init_parameters(model_class)
    if _default_encoder(params) is None:
        return False  # an app whose options did not change (e.g. the graph app)
    flat = set(ENCODER_KEYS) | set(KERNEL_KEYS)
    return isinstance(hparams.get("encoder"), str) or any(k in hparams and k not in params for k in flat)


def upgrade_hparams(model_class: type, hparams: Mapping[str, Any]) -> dict[str, Any]:
    """``hparams`` of an old ``model_class`` checkpoint in today's form (a new dict; unchanged if current).

    ``encoder`` is a plain dict when the hyperparameters are a config (saved by ``attnlab``, with
    ``_class_path``), an ``EncoderConfig`` when they hold objects (a model built in Python)."""
    hp = dict(hparams)
    if not needs_upgrade(model_class, hp):
        return hp
    params = init_parameters(model_class)
    default = _default_encoder(params)
    if isinstance(hp.get("encoder"), str):  # the backbone's old name
        hp["backbone"] = hp.pop("encoder")
    encoder = {k: hp.pop(k) for k in ENCODER_KEYS if k in hp and k not in params}
    kernel = {field: hp.pop(k) for k, field in KERNEL_KEYS.items() if k in hp and k not in params}
    if "position" in params and "position" in hp:  # the app's own (absolute) positions stay; attention's move
        if hp["position"] in ATTENTION_POSITIONS:
            encoder["position"], hp["position"] = hp["position"], "none"
        else:
            encoder["position"] = "none"
    config = dataclasses.replace(default, **encoder, kernel=dataclasses.replace(default.kernel, **kernel))
    hp["encoder"] = dataclasses.asdict(config) if "_class_path" in hp or "_instantiator" in hp else config
    return hp


def _class_of(hparams: Mapping[str, Any], fallback: type | None) -> type | None:
    path = hparams.get("_class_path")
    if isinstance(path, str) and "." in path:
        module, _, name = path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            return fallback
        if fallback is None or (isinstance(cls, type) and issubclass(cls, fallback)):
            return cls
    return fallback


def upgraded_checkpoint(model_class: type, checkpoint_path: str | os.PathLike | IO) -> str | os.PathLike | IO:
    """``checkpoint_path`` itself, or (an old checkpoint) an in-memory copy with upgraded hyperparameters, for
    ``load_from_checkpoint``. Anything unreadable here (a URL, a stream, a broken file) is passed on untouched:
    Lightning reports it as before."""
    if not isinstance(checkpoint_path, (str, os.PathLike)) or not os.path.isfile(checkpoint_path):
        return checkpoint_path
    try:
        ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return checkpoint_path
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    cls = _class_of(hparams, model_class) if isinstance(hparams, Mapping) else None
    if cls is None or not needs_upgrade(cls, hparams):
        return checkpoint_path
    ckpt["hyper_parameters"] = upgrade_hparams(cls, hparams)
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    buffer.seek(0)
    return buffer


def checkpoint_model_config(hparams: Mapping[str, Any] | None, configured: str | None = None) -> dict | None:
    """What LightningCLI merges into ``model`` from a checkpoint's ``hyper_parameters`` (its own
    ``_parse_ckpt_path`` step), after ``upgrade_hparams``. ``configured``: the config's model class path, for
    hyperparameters that do not name their class."""
    if not isinstance(hparams, Mapping):
        return None
    hp = dict(hparams)
    hp.pop("_instantiator", None)
    if not hp:
        return None
    fallback = _class_of({"_class_path": configured}, None) if configured else None
    cls = _class_of(hp, fallback)
    if cls is not None:
        hp = upgrade_hparams(cls, hp)
    if "_class_path" in hp:
        return {"class_path": hp.pop("_class_path"), "dict_kwargs": hp}
    return hp


__all__ = ["checkpoint_model_config", "init_parameters", "needs_upgrade", "upgrade_hparams",
           "upgraded_checkpoint"]
