"""Image classification: a Vision Transformer on image patches (core ``Full`` attention), or a ResNet-18.

An image is a set of vectors: cut it into ``patch_size`` x ``patch_size`` patches, embed each with one
convolution, add positions, let every patch attend to every other (``core.Encoder``), classify from the
class token or the mean of the patches. ``backbone: resnet`` swaps the ViT for torchvision's ResNet-18
adapted to small images, in the same loop, for the lecture's self-attention-vs-CNN comparison.

Fine-tuning: ``init_from`` is one of our checkpoints (other class count and image size allowed: position
embeddings are interpolated, the head re-initialised) or ``torchvision:vit_b_16`` (real ImageNet weights,
downloaded by torchvision on a connected machine; ``torchvision:vit_b_16=/path/weights.pth`` reads a saved
state dict). ``ViT.from_torchvision(model)`` converts a torchvision VisionTransformer directly.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.export import Dim
from torchmetrics.classification import MulticlassAccuracy
from torchvision.transforms import v2

from core import Encoder, EncoderConfig, Full, Pattern, sinusoidal_2d

from .base import AttnLabModule, OptimConfig
from .export import ExportSpec
from .vision_figures import draw_vision, one_image_per_class
from .vision_inputs import prepare_images

Backbone = Literal["vit", "resnet"]
# ``ViT``'s encoder when none is given: ViT-Ti-like, LayerNorm epsilon 1e-6 as torchvision/timm
VIT_ENCODER = EncoderConfig(dim=192, depth=6, num_heads=3, norm_eps=1e-6)
# ``ViTClassifier``'s default: narrower MLPs and stochastic depth, for training from scratch on small data
VIT_CLASSIFIER_ENCODER = VIT_ENCODER.replace(mlp_ratio=2.0, drop_path=0.1)


class ViT(nn.Module):
    """Patch embedding -> [class token] + positions -> pre-norm encoder -> pool -> head (torchvision layout).

    ``pool``: "cls" (a learned class token, as ViT) or "mean" (average of the patch outputs).
    ``position``: "learned" (a trained table, torchvision's ``pos_embedding``) or "sinusoidal" (fixed 2-D
    table: half the dimensions encode the row, half the column; the class token gets none).
    ``encoder``: the ``core.EncoderConfig`` of the blocks (its ``dropout`` also drops the embedded tokens);
    None = ``VIT_ENCODER`` (ViT-Ti-like: 192 wide, 6 blocks, 3 heads, LayerNorm epsilon 1e-6 as in
    torchvision/timm ViTs; give ``norm_eps=1e-6`` in your own config to keep that).
    ``stem``: "patch" (one convolution with kernel = stride = patch size: the ViT patch embedding) or "conv"
    (CCT's convolutional tokenizer: a 3x3 convolution, ReLU, then max-pooling over each patch; every token then
    also sees its neighbourhood, which small data sets such as 8x8 digits need).
    """

    def __init__(self, image_size: int, patch_size: int, in_channels: int, num_classes: int,
                 encoder: EncoderConfig | None = None, pool: Literal["cls", "mean"] = "cls",
                 position: Literal["learned", "sinusoidal"] = "learned", pattern: Pattern | None = None,
                 stem: Literal["patch", "conv"] = "patch") -> None:
        super().__init__()
        encoder = VIT_ENCODER if encoder is None else encoder
        dim = encoder.dim
        if image_size % patch_size:
            raise ValueError(f"image_size ({image_size}) must be a multiple of patch_size ({patch_size})")
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
        if position not in ("learned", "sinusoidal"):
            raise ValueError(f"position must be 'learned' or 'sinusoidal', got {position!r}")
        if stem not in ("patch", "conv"):
            raise ValueError(f"stem must be 'patch' or 'conv', got {stem!r}")
        self.image_size, self.patch_size, self.pool, self.position = image_size, patch_size, pool, position
        self.grid = image_size // patch_size
        self.num_prefix = 1 if pool == "cls" else 0
        self.pattern = (pattern or Full()).for_grid(self.grid, self.grid, self.num_prefix)  # 2-D patterns: the grid
        if stem == "patch":
            self.patch_embed = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        else:
            self.patch_embed = nn.Sequential(OrderedDict(
                conv=nn.Conv2d(in_channels, dim, kernel_size=3, padding=1), act=nn.ReLU(),
                pool=nn.MaxPool2d(patch_size, patch_size) if patch_size > 1 else nn.Identity()))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        tokens = self.grid**2 + self.num_prefix
        if position == "learned":
            self.pos_embed = nn.Parameter(torch.empty(1, tokens, dim).normal_(std=0.02))
        else:
            table = torch.cat([torch.zeros(self.num_prefix, dim), sinusoidal_2d(self.grid, self.grid, dim)])
            self.register_buffer("pos_embed", table.unsqueeze(0), persistent=False)
        self.drop = nn.Dropout(encoder.dropout)
        self.encoder = Encoder(encoder)
        self.head = nn.Linear(dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """timm's scheme for training from scratch: truncated-normal Linear weights, zero biases and head."""
        conv = self.patch_embed if isinstance(self.patch_embed, nn.Conv2d) else self.patch_embed.conv
        fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        nn.init.trunc_normal_(conv.weight, std=math.sqrt(1.0 / fan_in))
        nn.init.zeros_(conv.bias)
        for module in self.encoder.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def tokens(self, images: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, prefix + patches, dim): the encoder's input."""
        if images.dim() != 4 or images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"ViT expects images (B, C, {self.image_size}, {self.image_size}), "
                             f"got {tuple(images.shape)}")
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # (B, grid², dim), row-major patches
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], dim=1)
        return self.drop(x + self.pos_embed.to(x.dtype))

    def forward(self, images: Tensor, return_weights: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        x = self.tokens(images)
        if return_weights:
            x, weights = self.encoder(x, pattern=self.pattern, return_weights=True)
        else:
            x, weights = self.encoder(x, pattern=self.pattern), None
        pooled = x[:, 0] if self.pool == "cls" else x.mean(1)
        logits = self.head(pooled)
        return (logits, weights) if return_weights else logits

    # ------------------------------------------------------------------------------------ torchvision
    @classmethod
    def from_torchvision(cls, model: nn.Module, **overrides: Any) -> ViT:
        """A ViT with the configuration and weights of a torchvision ``VisionTransformer`` (same outputs)."""
        from torchvision.models import VisionTransformer

        if not isinstance(model, VisionTransformer):
            raise ValueError(f"from_torchvision expects a torchvision.models.VisionTransformer, got "
                             f"{type(model).__name__}")
        if not isinstance(model.conv_proj, nn.Conv2d):
            raise ValueError("from_torchvision: ViTs with a convolutional stem (conv_stem_configs) are not supported")
        if hasattr(model.heads, "pre_logits"):
            raise ValueError("from_torchvision: ViTs with a representation layer (representation_size) are not "
                             "supported")
        first = model.encoder.layers[0]
        config = dict(image_size=model.image_size, patch_size=model.patch_size,
                      in_channels=model.conv_proj.in_channels, num_classes=model.num_classes,
                      encoder=EncoderConfig(dim=model.hidden_dim, depth=len(model.encoder.layers),
                                            num_heads=first.num_heads, mlp_ratio=model.mlp_dim / model.hidden_dim,
                                            dropout=model.dropout, attn_dropout=model.attention_dropout,
                                            norm_eps=first.ln_1.eps),
                      pool="cls", position="learned")
        vit = cls(**{**config, **overrides})
        vit.load_state_dict(torchvision_state_dict(model.state_dict()), strict=True)
        return vit


def torchvision_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a torchvision VisionTransformer state dict to this ViT's names (values unchanged)."""
    rename = {"conv_proj.": "patch_embed.", "class_token": "cls_token", "encoder.pos_embedding": "pos_embed",
              "encoder.ln.": "encoder.norm.", "heads.head.": "head."}
    block = {"ln_1.": "norm1.", "ln_2.": "norm2.", "self_attention.in_proj_weight": "attn.qkv.weight",
             "self_attention.in_proj_bias": "attn.qkv.bias", "self_attention.out_proj.": "attn.proj.",
             "mlp.0.": "mlp.fc1.", "mlp.3.": "mlp.fc2.", "mlp.linear_1.": "mlp.fc1.", "mlp.linear_2.": "mlp.fc2."}
    out: dict[str, Tensor] = OrderedDict()
    for key, value in state.items():
        new = key
        if key.startswith("encoder.layers."):
            _, _, layer, rest = key.split(".", 3)
            index = layer.rsplit("_", 1)[-1]
            for old, repl in block.items():
                if rest.startswith(old):
                    rest = repl + rest[len(old):]
                    break
            new = f"encoder.blocks.{index}.{rest}"
        else:
            for old, repl in rename.items():
                if key.startswith(old):
                    new = repl + key[len(old):]
                    break
        out[new] = value
    return out


def interpolate_positions(table: Tensor, num_prefix: int, grid: int) -> Tensor:
    """(1, prefix + g², D) position table -> (1, prefix + grid², D): the patch part resized bicubically as an
    image (the class-token row kept), so a model trained at one image size fine-tunes at another."""
    prefix, patches = table[:, :num_prefix], table[:, num_prefix:]
    old = int(round(math.sqrt(patches.size(1))))
    if old * old != patches.size(1):
        raise ValueError(f"position table with {patches.size(1)} patch rows is not a square grid")
    if old == grid:
        return table
    image = patches.reshape(1, old, old, -1).permute(0, 3, 1, 2).float()
    resized = F.interpolate(image, size=(grid, grid), mode="bicubic", align_corners=False, antialias=grid < old)
    return torch.cat([prefix, resized.permute(0, 2, 3, 1).reshape(1, grid * grid, -1).to(table.dtype)], dim=1)


def adapt_state(model: ViT, state: Mapping[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
    """Reshape what can be reshaped meaningfully before loading: positions to this grid (dropping or adding
    the class-token row), patch embedding between grey and RGB inputs (summed / spread over channels)."""
    state = dict(state)
    key = prefix + "pos_embed"
    if key in state and isinstance(model.pos_embed, nn.Parameter):
        table = state[key]
        source_prefix = table.size(1) - int(round(math.sqrt(table.size(1)))) ** 2
        table = table[:, source_prefix - model.num_prefix:] if source_prefix >= model.num_prefix else torch.cat(
            [model.pos_embed[:, :model.num_prefix].detach(), table], dim=1)
        state[key] = interpolate_positions(table, model.num_prefix, model.grid)
    patch_stem = isinstance(model.patch_embed, nn.Conv2d)
    conv = model.patch_embed if patch_stem else model.patch_embed.conv
    key = prefix + ("patch_embed.weight" if patch_stem else "patch_embed.conv.weight")
    if key in state:
        weight, ours = state[key], conv.weight
        if weight.size(1) != ours.size(1) and {weight.size(1), ours.size(1)} == {1, 3}:
            weight = weight.sum(1, keepdim=True) if ours.size(1) == 1 else weight.repeat(1, 3, 1, 1) / 3
        if patch_stem and weight.shape[-2:] != ours.shape[-2:] and weight.shape[:2] == ours.shape[:2]:
            weight = F.interpolate(weight, size=ours.shape[-2:], mode="bicubic", align_corners=False) * (
                weight.shape[-1] * weight.shape[-2] / (ours.shape[-1] * ours.shape[-2]))
        state[key] = weight
    return state


def small_resnet18(in_channels: int, num_classes: int) -> nn.Module:
    """torchvision's ResNet-18 for small images: a 3x3 stride-1 first convolution and no max-pool (the usual
    CIFAR adaptation; the ImageNet stem would shrink a 32x32 image to 8x8 before the first block)."""
    from torchvision.models import resnet18

    net = resnet18(num_classes=num_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


class ViTClassifier(AttnLabModule):
    """Classify images with a ViT (or ``backbone: resnet``). Batches: (images (B, C, H, W), labels (B,)).

    Sizes read from the datamodule are saved with the checkpoint. Fine-tuning: ``init_from`` also takes
    ``torchvision:<vit>[=weights.pth]`` (see the module doc); the mechanism is ``AttnLabModule``'s.

    Args:
        backbone: vit (patches + core.Encoder) or resnet (torchvision's ResNet-18 for small images)
        image_size: side of the (square) images; None reads it from the datamodule at setup
        in_channels: image channels; None reads them from the datamodule
        num_classes: classes; None reads them from the datamodule
        patch_size: side of a patch (image_size must be a multiple)
        encoder: the ViT's blocks (core.EncoderConfig: dim, depth, num_heads, mlp_ratio, dropout, drop_path, ...)
        pool: cls (a learned class token) or mean (average of the patch outputs)
        position: learned table or fixed 2-D sinusoidal positions (see ViT)
        stem: patch (one convolution per patch) or conv (CCT's 3x3 convolution + max-pool, for tiny images)
        pattern: which patches attend to which (core pattern, default Full)
        label_smoothing: of the training cross-entropy
        mixup_alpha: MixUp strength, 0 = off (with cutmix_alpha: one of the two per batch)
        cutmix_alpha: CutMix strength, 0 = off
        layer_decay: lr of block i = lr * decay^(depth - i), the head at the full lr; 1 = off
    """

    monitor = "val/acc"
    monitor_mode = "max"
    app_name = "vision"
    data_state_key = "vision_data"  # class names + normalisation statistics of the training images
    data_state_attr = "stats"

    def __init__(
        self,
        backbone: Backbone = "vit",
        image_size: int | None = None,
        in_channels: int | None = None,
        num_classes: int | None = None,
        patch_size: int = 4,
        encoder: EncoderConfig = VIT_CLASSIFIER_ENCODER,
        pool: Literal["cls", "mean"] = "cls",
        position: Literal["learned", "sinusoidal"] = "learned",
        stem: Literal["patch", "conv"] = "patch",
        pattern: Pattern = Full(),
        label_smoothing: float = 0.1,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        init_from: str | None = None,
        freeze: str | list[str] = "none",
        layer_decay: float = 1.0,
        head_lr_scale: float = 1.0,
        backbone_lr_scale: float = 1.0,
        optim: OptimConfig | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__(optim=optim, compile=compile, init_from=init_from, freeze=freeze,
                         head_lr_scale=head_lr_scale, backbone_lr_scale=backbone_lr_scale)
        self.save_hyperparameters()
        if backbone not in ("vit", "resnet"):
            raise ValueError(f"model.backbone must be 'vit' or 'resnet', got {backbone!r}")
        if not 0.0 < layer_decay <= 1.0:
            raise ValueError(f"model.layer_decay must be in (0, 1], got {layer_decay}")
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError(f"model.mixup_alpha and model.cutmix_alpha must be >= 0, got {mixup_alpha}, "
                             f"{cutmix_alpha}")
        self.pattern = pattern  # the object: hparams may hold its config dict
        self.encoder_config = encoder  # likewise
        self.net: nn.Module | None = None
        self.stats: dict[str, Any] | None = None  # classes + normalisation, saved with checkpoints
        if None not in (image_size, in_channels, num_classes):
            self._build()

    # ----------------------------------------------------------------------------------------- model
    def _build(self) -> None:
        h = self.hparams
        if h.backbone == "vit":
            self.net = ViT(h.image_size, h.patch_size, h.in_channels, h.num_classes, self.encoder_config, h.pool,
                           h.position, self.pattern, h.stem)
        else:
            self.net = small_resnet18(h.in_channels, h.num_classes)
        metrics = {"acc": MulticlassAccuracy(h.num_classes, average="micro")}
        if h.num_classes > 5:
            metrics["acc_top5"] = MulticlassAccuracy(h.num_classes, top_k=5, average="micro")
        self.setup_metrics(metrics)
        self._mix = self._mixing(h.num_classes)

    def _mixing(self, num_classes: int) -> v2.Transform | None:
        h = self.hparams
        choices = ([v2.MixUp(alpha=h.mixup_alpha, num_classes=num_classes)] if h.mixup_alpha else []) + (
            [v2.CutMix(alpha=h.cutmix_alpha, num_classes=num_classes)] if h.cutmix_alpha else [])
        return None if not choices else choices[0] if len(choices) == 1 else v2.RandomChoice(choices)

    def setup(self, stage: str) -> None:
        """Sizes from the datamodule (checked against given ones), then build (``init_from`` and ``freeze`` follow
        in ``AttnLabModule.prepare_fine_tuning``). Statistics from a checkpoint win over the datamodule's: test
        and predict normalise like training."""
        dm = self.datamodule()
        if dm is not None and hasattr(dm, "shape"):
            self.setup_data_state(stage)
            channels, size, _ = dm.shape
            for key, value in (("image_size", size), ("in_channels", channels), ("num_classes", dm.num_classes)):
                given = self.hparams[key]
                if given is None:
                    self.hparams[key] = value
                elif given != value:
                    raise ValueError(f"model.{key}={given} but the data ({type(dm).__name__}) has {value}; set "
                                     f"model.{key}: {value} or null (read from the data), or data.image_size / "
                                     f"data.channels to match the model")
        if self.net is None:
            missing = [k for k in ("image_size", "in_channels", "num_classes") if self.hparams[k] is None]
            if missing:
                raise ValueError(f"ViTClassifier: {', '.join(missing)} unknown; set them in model or use a "
                                 f"datamodule that reports them (datamodules.vision.VisionData)")
            self._build()

    @property
    def encoder(self) -> nn.Module | None:
        """The ViT's encoder: what ``compile: true`` compiles (a property: registered once, under ``net``)."""
        return self.net.encoder if isinstance(self.net, ViT) else None

    @property
    def head_prefixes(self) -> tuple[str, ...]:
        return ("net.head.",) if self.hparams.backbone == "vit" else ("net.fc.",)

    def read_init_source(self, source: str) -> Mapping[str, Tensor]:
        """Our checkpoint, or ``torchvision:<arch>[=weights.pth]`` renamed to this ViT's keys."""
        if not source.startswith("torchvision:"):
            return super().read_init_source(source)
        if self.hparams.backbone != "vit":
            raise ValueError("init_from=torchvision:<vit> needs model.backbone: vit")
        return {"net." + k: v for k, v in torchvision_state_dict(load_torchvision(source)).items()}

    def adapt_state(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Position tables interpolated to this grid, patch embedding between grey and RGB (``adapt_state``)."""
        return adapt_state(self.net, state, prefix="net.") if isinstance(self.net, ViT) else dict(state)

    def lr_scale(self, name: str) -> float:
        """``AttnLabModule.lr_scale`` times the layer-wise decay of the ViT's blocks."""
        h = self.hparams
        scale = super().lr_scale(name)
        if self.is_head(name) or h.layer_decay == 1.0 or h.backbone != "vit":
            return scale
        depth = self.encoder_config.depth
        if name.startswith("net.encoder.blocks."):
            layer = int(name.split(".")[3]) + 1
        elif name.startswith("net.encoder.norm"):
            layer = depth + 1
        else:  # patch embedding, class token, positions
            layer = 0
        return scale * h.layer_decay ** (depth + 1 - layer)

    def forward(self, images: Tensor) -> Tensor:
        if self.net is None:
            raise RuntimeError("ViTClassifier is not built yet: fit it with a datamodule or load a checkpoint")
        return self.net(images)

    # ----------------------------------------------------------------------------------------- steps
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        targets: Tensor = labels
        if self._mix is not None:
            images, targets = self._mix(images, labels)
        logits = self(images)
        loss = F.cross_entropy(logits, targets, label_smoothing=self.hparams.label_smoothing)
        self.log_step("train", loss, logits, labels, batch_size=labels.size(0))
        return loss

    def _eval_step(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        images, labels = batch
        logits = self(images)
        self.log_step(stage, F.cross_entropy(logits, labels), logits, labels, batch_size=labels.size(0))

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    # ------------------------------------------------------------------------------------- checkpoint
    def build_from_data(self, state: dict[str, Any]) -> None:
        """Nothing to build: the statistics normalise inputs and name classes; sizes come from hparams."""

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.stats is not None:
            super().on_save_checkpoint(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.net is None:
            raise KeyError("this checkpoint holds no image size / channels / classes: not saved by ViTClassifier")
        if self.data_state_key in checkpoint:
            super().on_load_checkpoint(checkpoint)

    def class_names(self) -> list[str] | None:
        return list(self.stats["classes"]) if self.stats else None

    def predict_items(self, items: list[Any]) -> list[tuple[str, float]]:
        """Image paths or (C, H, W) tensors -> (class name, probability) each (``apps.vision_inputs``)."""
        h, stats = self.hparams, self.stats or {}
        images = prepare_images(items, h.image_size, h.in_channels, stats["mean"], stats["std"]).to(self.device)
        prob, index = self(images).softmax(-1).max(-1)
        return [(stats["classes"][i], p) for i, p in zip(index.tolist(), prob.tolist(), strict=True)]

    def export_example(self, batch: int = 2, length: int = 12) -> ExportSpec:
        """The network on normalised images of the trained size; the batch is dynamic."""
        h = self.hparams
        images = torch.randn(batch, h.in_channels, h.image_size, h.image_size,
                             generator=torch.Generator().manual_seed(batch))
        notes = {"inputs": "images (B, C, H, W) float: scaled to [0, 1], resized to image_size, then (x - mean) / std "
                           "per channel with vision_data's mean and std", "outputs": "logits (B, num_classes)"}
        return ExportSpec(self.net, (images,), {"images": {0: Dim.DYNAMIC}}, notes)

    # ---------------------------------------------------------------------------------------- predict
    def predict_step(self, batch, batch_idx: int) -> tuple[Tensor, Tensor]:
        probs = self(batch[0]).softmax(-1)
        top = probs.topk(min(5, probs.size(-1)), dim=-1)
        return top.values.cpu(), top.indices.cpu()

    def format_predictions(self, outputs: list[tuple[Tensor, Tensor]]) -> list[tuple[Path, str]]:
        """``image, class_1, prob_1, ..., class_5, prob_5`` per image to ``data.predict_output``."""
        dm = self.datamodule()
        if dm is None or not hasattr(dm, "predict_set"):
            return []
        probs = torch.cat([p for p, _ in outputs])
        index = torch.cat([i for _, i in outputs])
        classes = (self.stats or dm.stats)["classes"]
        k = probs.size(1)
        header = "image," + ",".join(f"class_{r},prob_{r}" for r in range(1, k + 1))
        lines = [header]
        for name, p_row, i_row in zip(dm.predict_set.names, probs.tolist(), index.tolist(), strict=True):
            cells = ",".join(f"{_csv(classes[c])},{p:.6f}" for c, p in zip(i_row, p_row, strict=True))
            lines.append(f"{_csv(name)},{cells}")
        return [(self.prediction_path(dm.predict_output, "predictions.csv"), "\n".join(lines) + "\n")]

    # ---------------------------------------------------------------------------------------- explain
    def explain_batch(self, loader: Any) -> tuple[Tensor, Tensor]:
        """One image of each class (a validation split may be ordered by class: CIFAR's first batch is all
        airplanes)."""
        return one_image_per_class(loader)

    def explain_figures(self, batch: tuple[Tensor, Tensor], out: Path, example: int) -> list[Path]:
        if not isinstance(self.net, ViT):
            raise ValueError("explain: model.backbone is resnet, which has no attention to draw")
        return draw_vision(self, self.datamodule(), batch, out, example)


def _csv(text: str) -> str:
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n') else text


def load_torchvision(source: str) -> dict[str, Tensor]:
    """``torchvision:<arch>`` -> the state dict of that pretrained torchvision model (download on a connected
    machine); ``torchvision:<arch>=<file>`` -> the state dict saved in ``file`` for that architecture."""
    import torchvision.models as tvm

    spec = source.removeprefix("torchvision:")
    arch, _, path = spec.partition("=")
    if not arch.startswith("vit_") or not hasattr(tvm, arch):
        raise ValueError(f"init_from={source!r}: expected torchvision:<vit architecture>[=weights.pth], e.g. "
                         f"torchvision:vit_b_16; {arch!r} is not a torchvision ViT")
    if path:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"init_from={source!r}: {path} does not exist")
        return torch.load(path, map_location="cpu", weights_only=True)
    try:
        return getattr(tvm, arch)(weights="DEFAULT").state_dict()
    except Exception as err:  # no network: URLError / OSError of several kinds
        raise RuntimeError(f"init_from={source!r}: torchvision could not fetch the pretrained weights "
                           f"({type(err).__name__}: {err}). On a machine without network, save them elsewhere with "
                           f"torch.save(torchvision.models.{arch}(weights='DEFAULT').state_dict(), 'w.pth') and use "
                           f"init_from: torchvision:{arch}=w.pth") from err
