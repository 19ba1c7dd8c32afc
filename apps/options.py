"""``--help`` descriptions of the options every app shares (fine-tuning, optimiser, compile), written once.

jsonargparse reads an option's description from the "Args:" section (Google style) of the class docstring.
Every app takes the same six ``AttnLabModule`` options; ``AttnLabModule.__init_subclass__`` appends their lines
(``with_shared_args``) to each app's own "Args:" section, so ``attnlab fit --model.help apps.graph.NodeClassifier``
describes them without seven copies of the same text.
"""

from __future__ import annotations

import inspect
import re

SHARED_ARGS = {
    "init_from": "checkpoint (or bare state dict) to start a fit from: every weight whose name and shape match is "
                 "loaded, the rest reported (fine-tuning)",
    "freeze": '"backbone" (all but the head and what init_from could not load), fnmatch patterns of parameter '
              'names, or none: the parameters that are not trained',
    "head_lr_scale": "multiplier of optim.lr for the head (and for what init_from could not load)",
    "backbone_lr_scale": "multiplier of optim.lr for every other parameter",
    "optim": "optimiser and schedule (OptimConfig: optimizer adamw|adam, lr, weight_decay, betas, warmup_steps or "
             "warmup_ratio, scheduler cosine|constant, min_lr_ratio)",
    "compile": "torch.compile the encoder (state-dict keys unchanged)",
}


def with_shared_args(doc: str | None, params: list[str]) -> str | None:
    """``doc`` with a line for each shared option in ``params`` that its "Args:" section does not describe
    (the section is made at the end when there is none)."""
    missing = [p for p in params if p in SHARED_ARGS and not re.search(rf"^\s+{p}\s*(\(.*\))?:", doc or "", re.M)]
    if doc is None or not missing:
        return doc
    found = re.search(r"^([ \t]*)Args:\s*$", doc, re.M)
    body_indent = re.search(r"\n([ \t]+)\S", doc)
    indent = found.group(1) if found else body_indent.group(1) if body_indent else ""
    lines = "\n".join(f"{indent}    {p}: {SHARED_ARGS[p]}" for p in missing)
    body = doc.rstrip()
    return f"{body}\n{lines}\n{indent}" if found else f"{body}\n\n{indent}Args:\n{lines}\n{indent}"


def init_params(cls: type) -> list[str]:
    """The keyword parameters of ``cls.__init__``."""
    try:
        return list(inspect.signature(cls.__init__).parameters)[1:]
    except (TypeError, ValueError):
        return []
