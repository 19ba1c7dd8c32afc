"""UPOS / XPOS / UFeats of the tagger on UD treebanks, scored by the official CoNLL 2018 scorer, beside UDPipe 1.

For every treebank: ``attnlab fit --config configs/pos/ud.yaml --data.train/dev/test <treebank files>``, ``attnlab
test --ckpt_path best`` (its test/acc, test/xpos_acc, test/ufeats_acc), ``attnlab predict`` of the test file
(other columns kept: the scorer needs HEAD) and ``conll18_ud_eval.py -v gold predicted``. Prints one markdown
table: the scorer's F1 (= accuracy with gold tokenisation) and ``attnlab test``'s numbers, the epochs the step
schedule ran, fit seconds, and the published UDPipe 1 row (UD 2.5 models, gold tokenisation, no pretrained
embeddings), plus the share of test words whose gold FEATS string never occurs in training (a whole-string
FEATS head cannot get those right).

Run: ``.venv/bin/python benchmarks/pos_treebanks.py --ud ../shared/data/ud --scorer ../shared/tools/conll18_ud_eval.py
--treebanks el_gdt fr_sequoia tr_imst en_ewt``
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ATTNLAB = [sys.executable, "-m", "apps.cli"]
UDPIPE1 = {"en_ewt": (94.4, 93.9, 95.4), "fr_sequoia": (97.1, None, 95.9), "el_gdt": (95.9, 95.9, 90.5),
           "tr_imst": (93.0, 92.1, 89.9)}
OURS = (("UPOS", "test/acc"), ("XPOS", "test/xpos_acc"), ("UFeats", "test/ufeats_acc"))


def attnlab(args: list[str], threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([*ATTNLAB, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"attnlab {args[0]} failed:\n{done.stderr[-3000:]}")


def scorer(script: Path, gold: Path, predicted: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, str(script), "-v", str(gold), str(predicted)], capture_output=True,
                         text=True, check=True).stdout
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"^(UPOS|XPOS|UFeats)\s*\|[^|]*\|[^|]*\|\s*([\d.]+)", out, re.M)}


def unseen_feats(train: Path, test: Path) -> float:
    """% of test words whose gold FEATS string is not in the training file."""
    def feats(path: Path) -> list[str]:
        return [line.split("\t")[5] for line in path.read_text(encoding="utf-8").splitlines()
                if "\t" in line and line.split("\t")[0].isdigit()]
    seen = set(feats(train))
    values = feats(test)
    return 100 * sum(v not in seen for v in values) / max(1, len(values))


def epochs_run(metrics_csv: Path) -> int:
    """Epochs the fit ran (the step schedule decides): the largest epoch of its CSV log, plus one."""
    with open(metrics_csv) as f:
        return 1 + max((int(row["epoch"]) for row in csv.DictReader(f) if row.get("epoch")), default=-1)


def run_treebank(name: str, ud: Path, script: Path, out: Path, threads: int, overrides: list[str]) -> str:
    files = {split: ud / f"{name}-ud-{split}.conllu" for split in ("train", "dev", "test")}
    root = out / name
    common = ["--config", str(ROOT / "configs" / "pos" / "ud.yaml"), "--data.train", str(files["train"]),
              "--data.dev", str(files["dev"]), "--data.test", str(files["test"]), "--trainer.default_root_dir",
              str(root), "--trainer.enable_progress_bar", "false", *overrides]
    start = time.perf_counter()
    attnlab(["fit", *common], threads)
    seconds = time.perf_counter() - start
    attnlab(["test", *common, "--ckpt_path", "best"], threads)
    predicted = root / "predicted.conllu"
    attnlab(["predict", *common, "--ckpt_path", "best", "--data.predict_path", str(files["test"]),
             "--data.predict_output", str(predicted), "--data.keep_columns", "true"], threads)
    metrics = json.loads(next(root.rglob("*.metrics.json")).read_text())["metrics"]
    scores = scorer(script, files["test"], predicted)
    epochs = max(epochs_run(path) for path in root.rglob("metrics.csv"))  # the fit's log (test logs epoch 0)
    has_xpos = "test/xpos_acc" in metrics

    def cell(column: str, key: str) -> str:
        if column == "XPOS" and not has_xpos:
            return "– (`_` in the treebank)"
        return f"{scores[column]:.2f} ({100 * metrics[key]:.2f})"

    published = " / ".join("–" if v is None else f"{v:.1f}" for v in UDPIPE1.get(name, (None,) * 3))
    return (f"| {name} | " + " | ".join(cell(c, k) for c, k in OURS) + f" | {published} | "
            f"{unseen_feats(files['train'], files['test']):.2f} | {epochs} | {seconds:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ud", type=Path, required=True, help="folder of <name>-ud-{train,dev,test}.conllu")
    parser.add_argument("--scorer", type=Path, required=True, help="conll18_ud_eval.py")
    parser.add_argument("--treebanks", nargs="+", default=["el_gdt", "fr_sequoia", "tr_imst", "en_ewt"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (OMP_NUM_THREADS)")
    parser.add_argument("--out", type=Path, default=None, help="run folders (default: a temporary folder)")
    parser.add_argument("overrides", nargs="*", help="extra attnlab arguments after --")
    args = parser.parse_args()
    begin = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        print(f"# configs/pos/ud.yaml, {args.threads} thread(s)"
              + (f", overrides: {' '.join(args.overrides)}" if args.overrides else "") + "\n")
        print("| treebank | UPOS | XPOS | UFeats | UDPipe 1 UPOS / XPOS / UFeats | test words with unseen FEATS % "
              "| epochs | fit s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name in args.treebanks:
            print(run_treebank(name, args.ud, args.scorer, out, args.threads, args.overrides), flush=True)
    print("\ncells: the official scorer's F1 on the written file (attnlab test's accuracy in brackets)")
    print(f"wall time {time.perf_counter() - begin:.0f} s")


if __name__ == "__main__":
    main()
