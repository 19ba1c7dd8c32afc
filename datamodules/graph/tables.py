"""A graph as two CSV files, the format most graphs outside PyG arrive in (``data.source: csv``).

``data.nodes``: one row per node with a header: an id column (``data.id_column``, default ``id``), a label column
(``data.label_column``, default ``label``; an empty cell = unlabelled: the node is in the graph and gets a
prediction, but is in no train/val/test mask) and numeric feature columns (``data.feature_columns``; default
every other column). ``data.edges``: one row per edge with ``source`` and ``target`` columns
(``data.source_column`` / ``data.target_column``) holding node ids.

Ids may be any strings or integers; they are mapped to indices in file order and kept (``CsvGraph.node_ids``) so
predictions name the user's ids. Labels are class names, mapped to class indices in sorted order (numerically
when all are integers). A graph without feature columns gets one-hot node ids as features (as PyG's KarateClub),
up to ``MAX_ONE_HOT`` nodes. Every malformed cell is one ValueError naming ``file:line``, the column and the
config key.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch
from torch_geometric.data import Data

from core.errors import DataError

from ..paths import require_file

MAX_ONE_HOT = 20_000
NODES_EXPECTED = "a CSV file with a header: an id column, a label column and numeric feature columns"
EDGES_EXPECTED = "a CSV file with a header holding source and target columns of node ids"
WHERE_TO_GET = "your own graph: write one row per node (nodes) and one per edge (edges)"


@dataclass
class CsvGraph:
    """The graph, the user's id of every node (index order) and the class names (class-index order)."""

    data: Data
    node_ids: list[str]
    classes: list[str]


def _rows(path: Path, key: str, required: list[str], allow_empty: bool = False
          ) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and ``(line, row)`` pairs of a CSV file; one error naming the file and key for a missing column."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        if not header:
            raise DataError(f"{path}: empty file; expected a header line ({key})")
        reader.fieldnames = header
        for name in required:
            if name not in header:
                raise DataError(f"{path}:1: no column {name!r} in the header {header} ({key}); rename the column "
                                 f"or set the config key that names it")
        rows = []
        for row in reader:
            if None in row:  # more cells than header columns
                raise DataError(f"{path}:{reader.line_num}: {len(header) + len(row[None])} cells but the header has "
                                 f"{len(header)} columns ({key})")
            if any(v is None for v in row.values()):
                raise DataError(f"{path}:{reader.line_num}: fewer cells than the {len(header)} header columns "
                                 f"({key})")
            rows.append((reader.line_num, {k: v.strip() for k, v in row.items()}))
    if not rows and not allow_empty:
        raise DataError(f"{path}: no rows under the header ({key})")
    return header, rows


def _class_order(labels: set[str]) -> list[str]:
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def load_csv(nodes: str | Path | None, edges: str | Path | None, id_column: str = "id", label_column: str = "label",
             feature_columns: list[str] | None = None, source_column: str = "source",
             target_column: str = "target") -> CsvGraph:
    """The graph of a nodes CSV and an edges CSV (see the module docstring)."""
    nodes = require_file(nodes, "data.nodes", NODES_EXPECTED, WHERE_TO_GET)
    edges = require_file(edges, "data.edges", EDGES_EXPECTED, WHERE_TO_GET)
    header, rows = _rows(nodes, "data.nodes", [id_column, label_column, *(feature_columns or [])])
    features = list(feature_columns) if feature_columns is not None else [
        h for h in header if h not in (id_column, label_column)]
    index: dict[str, int] = {}
    for line, row in rows:
        node = row[id_column]
        if not node:
            raise DataError(f"{nodes}:{line}: empty id in column {id_column!r} (data.id_column)")
        if node in index:
            raise DataError(f"{nodes}:{line}: node id {node!r} appears twice (first on line {rows[index[node]][0]}; "
                             f"data.id_column={id_column!r})")
        index[node] = len(index)
    if features:
        x = torch.empty(len(rows), len(features))
        for i, (line, row) in enumerate(rows):
            for j, column in enumerate(features):
                try:
                    x[i, j] = float(row[column])
                except ValueError:
                    raise DataError(f"{nodes}:{line}: column {column!r} holds {row[column]!r}, not a number; "
                                     f"feature columns must be numeric (data.feature_columns selects them)") from None
    elif len(rows) <= MAX_ONE_HOT:
        x = torch.eye(len(rows))
    else:
        raise DataError(f"{nodes}: no feature columns besides {id_column!r} and {label_column!r}, and "
                         f"{len(rows)} nodes are too many for one-hot id features (at most {MAX_ONE_HOT}); add "
                         f"feature columns (data.feature_columns)")
    classes = _class_order({row[label_column] for _, row in rows if row[label_column]})
    if not classes:
        raise DataError(f"{nodes}: column {label_column!r} is empty on every row; label some nodes "
                         f"(data.label_column names the column)")
    class_index = {name: c for c, name in enumerate(classes)}
    y = torch.tensor([class_index[row[label_column]] if row[label_column] else -1 for _, row in rows])
    _, edge_rows = _rows(edges, "data.edges", [source_column, target_column], allow_empty=True)
    pairs = []
    for line, row in edge_rows:
        ends = []
        for column, key in ((source_column, "data.source_column"), (target_column, "data.target_column")):
            node = row[column]
            if node not in index:
                raise DataError(f"{edges}:{line}: {column} {node!r} is no node id of {nodes} ({key}; ids must "
                                 f"match data.id_column={id_column!r} exactly)")
            ends.append(index[node])
        pairs.append(ends)
    edge_index = torch.tensor(pairs, dtype=torch.long).view(-1, 2).t().contiguous()
    return CsvGraph(Data(x=x, edge_index=edge_index, y=y), list(index), classes)
