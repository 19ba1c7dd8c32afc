"""Run folders and atomic writes: where every attnlab run writes, and how a file is written.

A run is ``<default_root_dir>/<app>/version_N/`` (``default_root_dir`` defaults to ``runs``): logs (CSV,
TensorBoard in ``tb/``), ``config.yaml``, ``checkpoints/`` with ``best.txt`` (the best checkpoint's file name);
next to the checkpoint a test evaluated, its metrics JSON, per-class report and confusion matrix; the
predictions of a predict run unless ``data.predict_output`` names a path. ``--ckpt_path best|last`` is resolved
here, outside the fit that made the checkpoints.

Every file the project writes goes through ``write_atomic`` / ``save_atomic``: a temporary file in the target's
folder, flushed and fsync'ed, then ``os.replace`` over the target, so a reader (or a resumed run) sees the old
file or the new one, never half of one, and a failed write (full disk, kill) leaves the previous file intact.
The temporary file gets the mode an ordinary ``open`` would give (0666 less the umask), not mkstemp's 0600.

This module imports nothing of the project, so the CLI, the apps, ``explain`` and the datamodules all use it
without an import circle. A failed write is an ``OutputError`` naming the target.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch

BEST_POINTER = "best.txt"  # written next to the checkpoints: file name of the best one


# ------------------------------------------------------------------------------------------ atomic writes
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_atomic(path: str | os.PathLike, writer: Callable[[Path], object]) -> Path:
    """Call ``writer(tmp)`` to write a temporary file next to ``path``, then rename it over ``path``.

    For writers that want a file name (``torch.save``, ``np.save``, ``fig.savefig``, Lightning's checkpoint IO).
    On any error the temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:  # a read-only or missing-permission folder: named, not a temp file
        raise OutputError(err, path) from err
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        writer(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, OutputError):
            raise OutputError(err, path) from err
        raise
    return path


class OutputError(OSError):
    """Writing ``path`` failed (full disk, read-only folder): an ``OSError`` with the same errno naming the target
    (never the temporary file) and what to do; the previous file is intact. ``user_error``: the CLI prints it as
    one line, like a ``core.errors.UserError`` (this module imports nothing of the project)."""

    user_error = True

    def __init__(self, err: OSError, path: Path) -> None:
        self.what = f"{path}: cannot write ({err.strerror or err})"
        self.where, self.expected = None, None
        self.fix = "the previous file, if any, is intact. Free disk space or choose a writable folder"
        OSError.__init__(self, err.errno, f"{self.what}; {self.fix}")

    def __str__(self) -> str:
        return f"{self.what}; {self.fix}"


def check_writable(folder: str | os.PathLike, key: str) -> None:
    """Before expensive work: ``folder`` can be created and written (a probe file written and removed), else an
    ``OutputError`` naming ``key``."""
    probe = Path(folder) / ".attnlab-write-probe"
    try:
        save_atomic(probe, lambda tmp: tmp.write_bytes(b"ok"))
    except OutputError as err:
        raise OutputError(OSError(err.errno, f"{err.strerror or err} (set {key} to a writable place)"),
                          Path(folder)) from None
    probe.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically (see ``save_atomic``)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return save_atomic(path, lambda tmp: tmp.write_bytes(payload))


# -------------------------------------------------------------------------------------------- run folders
def app_name(model_class: type) -> str:
    """The folder under the run root: the class attribute ``app_name``, else the lower-cased class name."""
    return getattr(model_class, "app_name", None) or model_class.__name__.lower()


DEFAULT_ROOT = "runs"  # the run root when the trainer's default_root_dir is unset


def runs_root(default_root_dir: str | os.PathLike | None) -> Path:
    """The folder holding ``<app>/version_N``: the trainer's default_root_dir itself, ``runs`` when unset
    (``--trainer.default_root_dir X`` gives ``X/<app>/version_N``, never ``X/runs/...``)."""
    return Path(default_root_dir or DEFAULT_ROOT)


def versions(app_dir: Path) -> list[tuple[int, Path]]:
    """``(N, folder)`` of every ``version_N`` folder of ``app_dir``, oldest first."""
    matches = ((re.fullmatch(r"version_(\d+)", p.name), p) for p in app_dir.glob("version_*"))
    return sorted((int(m.group(1)), p) for m, p in matches if m and p.is_dir())


def next_version(app_dir: Path) -> int:
    found = versions(app_dir)
    return found[-1][0] + 1 if found else 0


def version_of(checkpoint: str | os.PathLike, app_dir: Path) -> int | None:
    """N when ``checkpoint`` lies in ``<app_dir>/version_N/checkpoints/``, else None."""
    folder = Path(checkpoint).resolve().parent
    match = re.fullmatch(r"version_(\d+)", folder.parent.name)
    if folder.name != "checkpoints" or not match or folder.parent.parent != app_dir.resolve():
        return None
    return int(match.group(1))


def write_best_pointer(checkpoint_dir: str | os.PathLike, best: str | os.PathLike) -> None:
    """Record the best checkpoint's file name in ``best.txt`` so ``best`` resolves without loading a checkpoint."""
    write_atomic(Path(checkpoint_dir) / BEST_POINTER, Path(best).name + "\n")


def _best_from_last(last: Path) -> Path | None:
    """The best checkpoint named by the ModelCheckpoint state inside ``last.ckpt`` (weights memory-mapped)."""
    try:
        ckpt = torch.load(last, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # unreadable or not weights_only-safe: no answer from this file
        return None
    for state in ckpt.get("callbacks", {}).values():
        best = state.get("best_model_path") if isinstance(state, dict) else None
        if best:
            return last.parent / Path(best).name
    return None


DATA_IDENTITY = ("class_path", "source", "root", "path", "dataset", "train", "dev", "test", "layout", "split",
                 "nodes", "edges", "tagset")  # the data config keys that say which data set a run used


def data_identity(data: Any) -> dict[str, Any]:
    """The keys of a ``data`` config section (a dict or jsonargparse Namespace) that name its data set."""
    if data is None:
        return {}
    as_dict = data.as_dict() if hasattr(data, "as_dict") else dict(data)
    args = as_dict.get("init_args") or {}
    out = {"class_path": as_dict.get("class_path")}
    out.update({k: args[k] for k in DATA_IDENTITY[1:] if args.get(k) not in (None, "")})
    return out


def run_data(version_dir: Path) -> dict[str, Any] | None:
    """``data_identity`` of the run's saved ``config.yaml``; None when it has none or it is unreadable."""
    import yaml

    try:
        config = yaml.safe_load((version_dir / "config.yaml").read_text())
        return data_identity(config.get("data"))
    except Exception:
        return None


def find_checkpoint(app_dir: Path, which: Literal["best", "last"], data: Any = None) -> Path:
    """Resolve ``best`` / ``last`` in the newest ``version_N`` of ``app_dir`` that holds checkpoints and, when
    ``data`` (the config's data section) is given, whose saved config names the same data set."""
    runs = [p / "checkpoints" for _, p in reversed(versions(app_dir)) if (p / "checkpoints").is_dir()]
    if not runs:
        raise FileNotFoundError(
            f"ckpt_path={which!r}: no checkpoints found, searched {app_dir}/version_*/checkpoints/. "
            "Run `attnlab fit` with this config first, or pass a checkpoint file."
        )
    wanted = data_identity(data) if data is not None else None
    if wanted:
        same = [r for r in runs if run_data(r.parent) in (None, wanted)]
        if not same:
            raise FileNotFoundError(
                f"ckpt_path={which!r}: none of the {len(runs)} runs in {app_dir} was trained on this config's data "
                f"({', '.join(f'{k}={v}' for k, v in wanted.items())}); the newest used "
                f"{', '.join(f'{k}={v}' for k, v in (run_data(runs[0].parent) or {}).items())}. Run `attnlab fit` "
                "with this config first, or pass that run's checkpoint file as --ckpt_path.")
        runs = same
    ckpt_dir, last = runs[0], runs[0] / "last.ckpt"
    if which == "last":
        if last.is_file():
            return last
        raise FileNotFoundError(f"ckpt_path='last': {last} does not exist (is save_last enabled?)")
    pointer = ckpt_dir / BEST_POINTER
    best = ckpt_dir / pointer.read_text().strip() if pointer.is_file() else None
    if best is None and last.is_file():
        best = _best_from_last(last)
    if best is not None and best.is_file():
        return best
    raise FileNotFoundError(
        f"ckpt_path='best': no best checkpoint recorded in {ckpt_dir} (looked for {BEST_POINTER} and the "
        f"ModelCheckpoint state in last.ckpt){'' if best is None else f'; it names {best}, which is missing'}"
    )


def evaluation_path(checkpoint: str | os.PathLike | None, log_dir: str | os.PathLike, name: str) -> Path:
    """Where an evaluation of ``checkpoint`` writes its file ``name`` (``metrics.json``, ``report.txt``,
    ``confusion.png``, ...): ``<checkpoint without .ckpt>.<name>`` next to it, else ``name`` in the run folder."""
    return Path(checkpoint).with_suffix(f".{name}") if checkpoint else Path(log_dir) / name


def metrics_path(checkpoint: str | os.PathLike | None, log_dir: str | os.PathLike) -> Path:
    """Where ``attnlab test`` writes its metrics: next to the checkpoint it evaluated, else in the run folder."""
    return evaluation_path(checkpoint, log_dir, "metrics.json")
