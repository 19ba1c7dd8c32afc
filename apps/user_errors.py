"""How ``attnlab`` reports a user's mistake, and what a failed fit leaves behind.

A ``core.errors.UserError`` raised anywhere (config check, data reading, checkpoint loading; also when torch,
jsonargparse or Lightning wrapped it in another exception), or a ``ValueError`` an attnlab constructor raised
while checking a config value, is printed as one line on stderr,
``attnlab: error: <where>: <what>; expected <...>. <what to do> [--debug ...]``, and the command exits with
status 2. The full traceback comes with ``--debug`` on the command line or ``ATTNLAB_DEBUG=1`` in the environment.

A fit that fails before it saved any checkpoint removes its ``version_N`` folder (it holds only the config and
empty logs), so failed attempts do not pile up as empty runs.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import UserError

DEBUG_FLAG = "--debug"
DEBUG_ENV = "ATTNLAB_DEBUG"


def debug_requested(argv: list[str] | None = None) -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no") or DEBUG_FLAG in (argv or [])


def user_error_in(err: BaseException | None) -> BaseException | None:
    """The ``UserError`` that is ``err`` or that caused it (``__cause__`` / ``__context__`` chain), else None."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, UserError) or getattr(err, "user_error", False):  # apps.runs.OutputError too
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


PROJECT = Path(__file__).resolve().parents[1]  # core/, apps/, datamodules/ live here
CONSTRUCTORS = ("__init__", "__post_init__")


def config_error_in(err: BaseException | None) -> BaseException | None:
    """A ``ValueError`` an attnlab constructor raised while jsonargparse built the config's classes (its check of
    a config value); jsonargparse wraps it in a second traceback and a dump of the whole Namespace."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, ValueError) and not isinstance(err, OSError) and err.__traceback__ is not None:
            frame = err.__traceback__
            while frame.tb_next is not None:
                frame = frame.tb_next
            code = frame.tb_frame.f_code
            if code.co_name in CONSTRUCTORS and Path(code.co_filename).resolve().is_relative_to(PROJECT) \
                    and ".venv" not in Path(code.co_filename).parts:
                return err
        err = err.__cause__ or err.__context__
    return None


def one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def run_reporting_user_errors(run: Callable[[Any], object], args: Any = None) -> None:
    """``run(args)``; a ``UserError`` becomes one line on stderr and exit status 2 (unless debugging)."""
    if args is None:  # the command line: --debug is ours, LightningCLI must not see it
        debug = debug_requested(sys.argv[1:])
        sys.argv[1:] = [a for a in sys.argv[1:] if a != DEBUG_FLAG]
    elif isinstance(args, list | tuple):
        debug = debug_requested(list(args))
        args = [a for a in args if a != DEBUG_FLAG]
    else:
        debug = debug_requested()
    try:
        run(args)
    except SystemExit:
        raise
    except BaseException as err:
        found = user_error_in(err) or config_error_in(err)
        if found is None or debug:
            raise
        print(f"attnlab: error: {one_line(found)} [{DEBUG_FLAG} or {DEBUG_ENV}=1 for the traceback]", file=sys.stderr)
        raise SystemExit(2) from None


def discard_failed_run(trainer: Any) -> Path | None:
    """Remove the ``version_N`` folder of a fit that failed before writing any checkpoint; returns it."""
    try:
        folder = Path(trainer.log_dir) if trainer is not None and trainer.log_dir else None
    except Exception:  # no logger, or a logger that cannot say
        return None
    if folder is None or not folder.is_dir() or not re.fullmatch(r"version_\d+", folder.name):
        return None
    if any(folder.rglob("*.ckpt")):
        return None
    if trainer.is_global_zero:
        shutil.rmtree(folder, ignore_errors=True)
    return folder
