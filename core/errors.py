"""The one error type for a user's mistake: bad data, a bad config value, a checkpoint that does not fit.

A ``UserError`` says, in one line, where the problem is (a file and line, a config key), what was expected, and
what to do. ``attnlab`` prints it as that one line (``apps.cli.main``; the traceback only with ``--debug`` or
``ATTNLAB_DEBUG=1``). It lives in ``core`` so core, datamodules and apps all raise it without an upward import.

It is a ``ValueError``, like the errors raised before it existed, so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import os


class UserError(ValueError):
    """A mistake the user can fix: ``where`` (file:line, a config key), ``what`` went wrong, what was
    ``expected``, and the ``fix``. ``str()`` is the one line the CLI prints."""

    def __init__(self, what: str, *, where: str | os.PathLike | None = None, expected: str | None = None,
                 fix: str | None = None) -> None:
        self.what, self.where, self.expected, self.fix = what, where, expected, fix
        super().__init__(self.line())

    def line(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.expected:
            text += f"; expected {self.expected}"
        if self.fix:
            text += f". {self.fix}"
        return " ".join(text.split())  # one line, whatever the parts held


class DataError(UserError):
    """A data file's content is wrong (encoding, a row, a label, a sample rate, a non-finite value)."""


class ConfigError(UserError):
    """A config value is out of range or contradicts another (named by its key)."""


class CheckpointError(UserError):
    """A checkpoint is unreadable or does not fit the data or config it is used with."""


def require(condition: bool, key: str, value: object, expected: str, fix: str | None = None) -> None:
    """Raise ``ConfigError`` naming ``key`` and ``value`` when ``condition`` is false."""
    if not condition:
        raise ConfigError(f"{key}={value!r}", where=None, expected=expected,
                          fix=fix or f"Set {key} in the config or on the command line (--{key}).")


class NonFiniteInputWarning(UserWarning):
    """An input tensor holds NaN/Inf (``check_finite(..., warn=True)``)."""


def check_finite(x, what: str, warn: bool = False) -> None:
    """Raise ``DataError`` (``warn``: warn with its message) when ``x`` (a tensor) holds NaN or Inf: one inf input
    value would turn the whole sequence NaN through the softmax, and the NaN guard would blame the optimiser."""
    import torch  # core imports torch; imported here so the error types stay importable without it

    if _tracing(x) or not x.is_floating_point():
        return
    bad = ~torch.isfinite(x)  # padded positions too: their values still reach every output through 0 * NaN
    if bool(bad.any()):
        first = tuple(int(i) for i in bad.nonzero()[0])
        err = DataError(f"{what} holds {int(bad.sum())} NaN/Inf value(s), the first at index {first}",
                        expected="finite numbers", fix="Clean or drop that example in the data (a NaN/Inf input "
                        "makes every attention output of its sequence NaN).")
        if not warn:
            raise err
        import warnings

        warnings.warn(NonFiniteInputWarning(str(err)), stacklevel=3)


def check_token_ids(tokens, size: int, key: str) -> None:
    """Raise ``DataError`` when a token id is outside ``[0, size)`` (an embedding would fail with an opaque
    IndexError on CPU and a device-side assert on GPU)."""
    if _tracing(tokens) or tokens.numel() == 0:
        return
    low, high = int(tokens.min()), int(tokens.max())
    if low < 0 or high >= size:
        bad = high if high >= size else low
        raise DataError(f"token id {bad} in the batch is outside the vocabulary", expected=f"ids 0..{size - 1} "
                        f"({key}={size})", fix=f"Set {key} to cover the data's ids, or fix the data.")


def _tracing(x) -> bool:
    """Whether ``x`` is being traced (torch.compile, torch.export, jit, fake/meta tensors): no value checks then."""
    import torch

    exporting = getattr(torch.compiler, "is_exporting", lambda: False)
    if torch.compiler.is_compiling() or exporting() or torch.jit.is_tracing() or x.device.type == "meta":
        return True
    return type(x).__name__ in ("FakeTensor", "FunctionalTensor")
