"""Per-job round logs (one JSON line per finished round, fsynced) and the tidy results table.

A job's log is ``OUT/runs/<label>__seed<s>.jsonl``; a killed job leaves at most a torn last line,
which :func:`read_log` drops, so a study resumes from its last finished round.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from raresift.errors import ValidationError
from raresift.simulate.config import StudyConfig

logger = logging.getLogger("raresift")

TIMING_COLUMNS = ("seconds_training", "seconds_selection")
COLUMN_ORDER = (
    "study", "strategy", "strategy_name", "selected_by", "seed", "round", "n_labeled",
    "accuracy", "rare_accuracy", "average_precision", "recall", "n_selected",
    "n_rare_selected", "n_unique_selected", "n_in_distribution_selected", "train_accuracy",
    "n_epochs", *TIMING_COLUMNS,
)  # fmt: skip


def log_path(out_dir: Path, label: str, seed: int) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)
    return out_dir / "runs" / f"{safe}__seed{seed}.jsonl"


def read_log(path: Path) -> list[dict[str, Any]]:
    """Finished rounds of one job, in order. A torn last line (killed mid-write) is dropped."""
    if not path.exists():
        return []
    rows = []
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number >= len(lines) - 2:  # only the final line may be torn
                logger.warning("dropping a torn last line in %s", path)
                break
            raise ValidationError(
                f"{path}:{number + 1} is not a JSON line; delete the file"
            ) from None
        if not isinstance(row, dict):
            raise ValidationError(
                f"{path}:{number + 1} is a JSON {type(row).__name__}, not a round record "
                "(an object); delete the file to recompute this job"
            )
        if row.get("round") != len(rows):
            raise ValidationError(f"{path} skips a round at line {number + 1}; delete the file")
        rows.append(row)
    return rows


def write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    os.replace(tmp, path)


def append_log(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def collect_rows(config: StudyConfig, out_dir: str | Path) -> list[dict[str, Any]]:
    """Every finished row of the study's jobs, ordered by strategy (config order), seed, round."""
    rows = []
    for spec in config.strategies:
        for seed in config.seeds:
            for row in read_log(log_path(Path(out_dir), spec.label, seed))[: config.rounds + 1]:
                row = dict(row)
                row.pop("batch_ids", None)
                rows.append(row)
    return rows


def write_table(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write rows as a CSV table with the known columns first (empty cells for missing values)."""
    import csv

    columns = [c for c in COLUMN_ORDER if any(c in r for r in rows)]
    columns += sorted({k for r in rows for k in r} - set(columns))
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k)) for k in columns})
    os.replace(tmp, path)
    return path


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if np.isnan(value) else repr(value)
    return value
