"""Vision app: torchvision ViT equivalence and weight import, position interpolation, fine-tuning from our
checkpoints, image folders (tar, corrupt files), freezing / layer-wise lr, and the CLI on digits."""

from __future__ import annotations

import csv
import io
import json
import sys
import tarfile
from pathlib import Path

import lightning as L
import pytest
import torch
from PIL import Image
from torchvision.models import VisionTransformer

from apps.cli import find_checkpoint, main
from apps.vision import (
    VIT_CLASSIFIER_ENCODER,
    VIT_ENCODER,
    ViT,
    ViTClassifier,
    adapt_state,
    interpolate_positions,
    torchvision_state_dict,
)
from apps.vision_figures import receptive_fields
from core import Neighborhood2D
from datamodules.vision import ImageError, VisionData, read_folder, stratified_split

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
DIGITS = ["--config", str(ROOT / "configs" / "vision" / "digits.yaml"), *QUIET, "--trainer.max_epochs", "6",
          "--model.optim.lr", "0.005", "--model.optim.warmup_ratio", "0.1",
          "--model.encoder.dim", "32", "--model.encoder.depth", "2", "--model.encoder.num_heads", "2"]
APP_DIR = Path("runs") / "vision"


def tiny_torchvision(image_size: int = 32, num_classes: int = 5) -> VisionTransformer:
    torch.manual_seed(0)
    model = VisionTransformer(image_size=image_size, patch_size=8, num_layers=2, num_heads=4, hidden_dim=32,
                              mlp_dim=48, num_classes=num_classes)
    with torch.no_grad():  # torchvision zero-initialises the head and class token: make every weight count
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


# ------------------------------------------------------------------------------------------ torchvision
def test_from_torchvision_gives_the_same_outputs() -> None:
    tv = tiny_torchvision()
    ours = ViT.from_torchvision(tv).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected, got = tv(x), ours(x)
    assert got.shape == (3, 5)
    assert ((got - expected).abs().max() / expected.abs().max()).item() <= 1e-5
    # every weight was mapped: a changed torchvision weight changes our output too
    state = torchvision_state_dict(tv.state_dict())
    assert set(state) == set(ours.state_dict())


def test_from_torchvision_rejects_what_it_cannot_map() -> None:
    with pytest.raises(ValueError, match="VisionTransformer"):
        ViT.from_torchvision(torch.nn.Linear(2, 2))
    tv = VisionTransformer(image_size=16, patch_size=8, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=8,
                           representation_size=4)
    with pytest.raises(ValueError, match="representation"):
        ViT.from_torchvision(tv)


def test_init_from_torchvision_weights_file_at_another_image_size(tmp_path: Path) -> None:
    tv = tiny_torchvision(image_size=32, num_classes=1000)
    weights = tmp_path / "vit.pth"
    torch.save(tv.state_dict(), weights)
    model = ViTClassifier(encoder=VIT_CLASSIFIER_ENCODER.replace(dim=32, depth=2, num_heads=4, mlp_ratio=1.5,
                          norm_eps=1e-6), image_size=16, in_channels=3, num_classes=10, patch_size=8)
    report = model.initialise_from(f"torchvision:vit_b_16={weights}")
    assert report["reshaped"] == ["net.head.bias", "net.head.weight"] and not report["missing"]
    expected = interpolate_positions(tv.encoder.pos_embedding.detach(), 1, 2)
    torch.testing.assert_close(model.net.pos_embed.detach(), expected)
    torch.testing.assert_close(model.net.encoder.blocks[1].attn.qkv.weight.detach(),
                               tv.encoder.layers[1].self_attention.in_proj_weight.detach())
    with pytest.raises(ValueError, match="not a torchvision ViT"):
        model.initialise_from("torchvision:resnet18")


# ------------------------------------------------------------------------------------------ positions
def test_position_interpolation() -> None:
    table = torch.randn(1, 1 + 16, 8)
    assert interpolate_positions(table, 1, 4) is table  # same grid: unchanged
    up = interpolate_positions(table, 1, 8)
    assert up.shape == (1, 65, 8) and torch.equal(up[:, :1], table[:, :1])  # class-token row kept
    constant = torch.ones(1, 16, 3) * torch.tensor([1.0, -2.0, 0.5])
    torch.testing.assert_close(interpolate_positions(constant, 0, 7), torch.ones(1, 49, 3) * constant[:, :1])
    # a smooth ramp over the grid stays a ramp: row-major order, increasing along rows and columns
    rows = torch.arange(4.0).repeat_interleave(4)
    ramp = interpolate_positions(rows.view(1, 16, 1), 0, 8).view(8, 8)
    assert (ramp[1:] - ramp[:-1] > -1e-6).all() and (ramp.std(1) < 1e-5).all()
    with pytest.raises(ValueError, match="square"):
        interpolate_positions(torch.randn(1, 15, 4), 0, 4)


def test_adapt_state_grey_to_rgb_and_cls_to_mean() -> None:
    grey = ViT(8, 2, 1, 10, encoder=VIT_ENCODER.replace(dim=16, depth=1, num_heads=2))
    rgb = ViT(16, 2, 3, 10, encoder=VIT_ENCODER.replace(dim=16, depth=1, num_heads=2), pool="mean")
    state = adapt_state(rgb, grey.state_dict())
    assert state["patch_embed.weight"].shape == rgb.patch_embed.weight.shape
    torch.testing.assert_close(state["patch_embed.weight"].sum(1), grey.patch_embed.weight.sum(1))
    assert state["pos_embed"].shape == (1, 64, 16)  # class-token row dropped, 4x4 grid -> 8x8


# ----------------------------------------------------------------------------------------- fine-tuning
def test_init_from_our_checkpoint_with_new_classes_and_size(tmp_path: Path) -> None:
    source = ViTClassifier(encoder=VIT_CLASSIFIER_ENCODER.replace(dim=16, depth=2, num_heads=2), image_size=8,
                           in_channels=1, num_classes=10, patch_size=2)
    ckpt = tmp_path / "source.ckpt"
    torch.save({"state_dict": source.state_dict()}, ckpt)
    target = ViTClassifier(encoder=VIT_CLASSIFIER_ENCODER.replace(dim=16, depth=2, num_heads=2), image_size=16,
                           in_channels=1, num_classes=3, patch_size=2)
    report = target.initialise_from(str(ckpt))
    assert report["reshaped"] == ["net.head.bias", "net.head.weight"]
    assert not report["missing"] and not report["unexpected"]
    torch.testing.assert_close(target.net.pos_embed.detach(),
                               interpolate_positions(source.net.pos_embed.detach(), 1, 8))
    torch.testing.assert_close(target.net.encoder.blocks[0].mlp.fc1.weight, source.net.encoder.blocks[0].mlp.fc1.weight)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        target.initialise_from(str(tmp_path / "nope.ckpt"))


def test_freeze_backbone_and_layer_decay() -> None:
    model = ViTClassifier(encoder=VIT_CLASSIFIER_ENCODER.replace(dim=16, depth=3, num_heads=2), image_size=8,
                          in_channels=1, num_classes=4, patch_size=2, layer_decay=0.5, head_lr_scale=2.0)
    assert model.lr_scale("net.head.weight") == 2.0
    assert model.lr_scale("net.encoder.norm.weight") == 1.0
    assert model.lr_scale("net.encoder.blocks.2.attn.qkv.weight") == 0.5
    assert model.lr_scale("net.encoder.blocks.0.attn.qkv.weight") == 0.125
    assert model.lr_scale("net.pos_embed") == 0.0625
    names = {id(p): n for n, p in model.named_parameters()}
    lr_of = {names[id(p)]: g.get("lr", model.optim.lr) for g in model.parameter_groups() for p in g["params"]}
    assert len(lr_of) == len(names)  # every parameter in exactly one group
    assert lr_of["net.encoder.blocks.1.mlp.fc1.weight"] == pytest.approx(0.25 * model.optim.lr)
    assert lr_of["net.head.bias"] == pytest.approx(2.0 * model.optim.lr)
    assert lr_of["net.encoder.norm.bias"] == model.optim.lr
    frozen = model.freeze("net.*", exclude=("net.head.",))
    assert all(not n.startswith("net.head.") for n in frozen)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"net.head.weight", "net.head.bias"}
    with pytest.raises(ValueError, match="matches no parameter"):
        model.freeze("backbone.*")


# ------------------------------------------------------------------------------------------- image data
def write_folder(root: Path, sizes: int = 6, corrupt: str | None = None) -> Path:
    for split in ("train", "test"):
        for c, colour in enumerate([(255, 0, 0), (0, 0, 255)]):
            folder = root / "pics" / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(sizes):
                Image.new("RGB", (12, 12), colour).save(folder / f"{i}.png")
    if corrupt:
        path = root / "pics" / "train" / "class1" / corrupt
        buffer = io.BytesIO()
        Image.new("RGB", (12, 12), (1, 2, 3)).save(buffer, format="JPEG")
        path.write_bytes(buffer.getvalue()[:40])  # truncated
    return root / "pics"


def test_folder_and_tar_sources(tmp_path: Path) -> None:
    folder = write_folder(tmp_path)
    dm = VisionData(source="folder", path=str(folder), root=str(tmp_path / "data"), val_fraction=0.2, batch_size=4)
    dm.setup()
    assert dm.shape == (3, 12, 12) and dm.num_classes == 2
    assert len(dm.splits["train"]) + len(dm.splits["val"]) == 12 and len(dm.splits["test"]) == 12
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 12, 12) and images.dtype == torch.float32
    archive = tmp_path / "pics.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(folder, arcname="pics")
    from_tar = VisionData(source="folder", path=str(archive), root=str(tmp_path / "extracted"), image_size=8,
                          channels=1)
    from_tar.setup()
    assert (tmp_path / "extracted" / "pics" / "train" / "class0").is_dir()
    assert from_tar.shape == (1, 8, 8) and from_tar.stats["classes"] == ["class0", "class1"]


def test_decoded_folder_is_cached_and_refreshed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datamodules.vision.cache as vision  # read_folder_cached looks read_folder up there

    folder = write_folder(tmp_path)
    first = VisionData(source="folder", path=str(folder), root=str(tmp_path / "data"))
    first.setup()
    assert len(list((tmp_path / "data" / ".cache").glob("*.pt"))) == 2  # train and test
    decoded = []
    real = vision.read_folder
    monkeypatch.setattr(vision, "read_folder", lambda *a, **k: decoded.append(a[0]) or real(*a, **k))
    again = VisionData(source="folder", path=str(folder), root=str(tmp_path / "data"))
    again.setup()
    assert decoded == [] and torch.equal(again.splits["test"].images, first.splits["test"].images)
    Image.new("RGB", (12, 12), (0, 255, 0)).save(folder / "test" / "class0" / "new.png")  # the folder changed
    VisionData(source="folder", path=str(folder), root=str(tmp_path / "data")).setup()
    assert decoded == [folder / "test"]


def test_corrupt_image_is_named_or_skipped(tmp_path: Path) -> None:
    folder = write_folder(tmp_path, corrupt="broken.jpg")
    with pytest.raises(ImageError, match="broken.jpg: cannot read image"):
        VisionData(source="folder", path=str(folder), root=str(tmp_path / "data")).setup()
    with pytest.warns(UserWarning, match="skipped 1 unreadable image"):
        images = read_folder(folder / "train", on_bad_file="skip")
    assert len(images) == 12


def test_bad_data_settings_name_the_key() -> None:
    with pytest.raises(ValueError, match="data.source must be one of"):
        VisionData(source="imagenet")
    with pytest.raises(ValueError, match="needs data.path"):
        VisionData(source="folder")
    with pytest.raises(ValueError, match="data.channels"):
        VisionData(channels=2)
    with pytest.raises(FileNotFoundError, match="data.download: true"):
        VisionData(source="cifar10", root="/nonexistent").setup()


def test_splits_are_stratified_and_disjoint() -> None:
    labels = torch.arange(10).repeat(20)
    rest, taken = stratified_split(labels, 0.1, seed=0)
    assert set(rest.tolist()).isdisjoint(taken.tolist()) and len(rest) + len(taken) == 200
    assert torch.bincount(labels[taken]).tolist() == [2] * 10
    subset = VisionData(source="digits", train_subset=0.25)
    subset.setup()
    full = VisionData(source="digits")
    full.setup()
    assert abs(len(subset.splits["train"]) - len(full.splits["train"]) / 4) <= 10
    assert torch.equal(subset.splits["test"].labels, full.splits["test"].labels)


# ------------------------------------------------------------------------------------------ CLI
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("digits")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setattr(sys, "argv", ["attnlab"])
        main(["fit", *DIGITS])
    return root


def test_digits_fit_test_predict(digits_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(digits_run)
    monkeypatch.setattr(sys, "argv", ["attnlab"])
    main(["test", *DIGITS, "--ckpt_path", "best"])
    ckpt = find_checkpoint(APP_DIR, "best")
    metrics = json.loads(ckpt.with_suffix(".metrics.json").read_text())["metrics"]
    assert metrics["test/acc"] >= 0.5, metrics  # 6 short epochs of a tiny ViT: well above chance (0.1)
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert saved["vision_data"]["classes"] == [str(i) for i in range(10)] and len(saved["vision_data"]["mean"]) == 1
    main(["predict", *DIGITS, "--ckpt_path", "best", "--data.predict_output", "out/pred.csv"])
    with open("out/pred.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 359 and list(rows[0])[:3] == ["image", "class_1", "prob_1"] and "prob_5" in rows[0]
    for row in rows[:20]:
        probs = [float(row[f"prob_{r}"]) for r in range(1, 6)]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-5


def test_resnet_backbone_trains_in_the_same_loop(tmp_path: Path) -> None:
    model = ViTClassifier(backbone="resnet")
    data = VisionData(source="digits", batch_size=32)
    trainer = L.Trainer(max_steps=2, limit_val_batches=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, data)
    assert model.hparams.in_channels == 1 and model.net.fc.out_features == 10
    with pytest.raises(ValueError, match="model.num_classes=3 but the data"):
        L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  default_root_dir=tmp_path).fit(ViTClassifier(num_classes=3), data)


def test_neighborhood_pattern_from_the_cli_keeps_attention_in_the_window(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``--model.pattern core.Neighborhood2D``: the ViT fills in its patch grid, the trained model's attention
    weights are zero outside each patch's window, and ``explain`` draws the receptive fields."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["attnlab"])
    args = [*DIGITS, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3",
            "--model.pattern", "core.Neighborhood2D", "--model.pattern.radius", "1"]
    main(["fit", *args])
    ckpt = find_checkpoint(APP_DIR, "last")
    model = ViTClassifier.load_from_checkpoint(ckpt, map_location="cpu").eval()
    net = model.net
    assert net.pattern == Neighborhood2D(1, (4, 4), 0) and net.grid == 4
    images = torch.randn(3, 1, 8, 8)
    _, weights = net(images, return_weights=True)
    rows, cols = torch.arange(16) // 4, torch.arange(16) % 4
    outside = ((rows[:, None] - rows[None]).abs() > 1) | ((cols[:, None] - cols[None]).abs() > 1)
    for layer in weights:  # (B, H, T, T)
        assert layer[..., outside].abs().max() == 0 and layer[..., ~outside].sum() > 0
    main(["explain", *args, "--ckpt_path", str(ckpt), "--out", "figures"])
    assert (tmp_path / "figures" / "vision_receptive_fields.png").stat().st_size > 1000


def test_receptive_fields_grow_by_the_radius_per_layer() -> None:
    mask = Neighborhood2D(1, (7, 7), 1).mask(50)
    through_class_token = receptive_fields(mask, 3)[:, 1:, 1:]
    patches_only = receptive_fields(mask[1:, 1:], 3)
    centre = 3 * 7 + 3
    assert [int(through_class_token[d, centre].sum()) for d in range(3)] == [9, 49, 49]
    assert [int(patches_only[d, centre].sum()) for d in range(3)] == [9, 25, 49]
    corner = receptive_fields(Neighborhood2D(1, (7, 7), 0).mask(49), 3)[:, 0]
    assert [int(corner[d].sum()) for d in range(3)] == [4, 9, 16]
