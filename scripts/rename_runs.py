"""Rename run directories to the name the current run identity gives them (docs/runs.md).

Each run directory under RUNS (default runs/) holds the resolved config it was trained with
(config.yaml); its name is recomputed from that config, and where it differs the directory is
renamed and the ``run`` field of its metrics.json and pruning records is rewritten. Nothing is
retrained. A target that already exists is left alone and reported.

    python scripts/rename_runs.py [RUNS] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from omegaconf import OmegaConf

from bbbprune.evaluation.records import ANALYSES, METRICS, RECORDS
from bbbprune.run.checkpoints import CONFIG
from bbbprune.run.identity import run_directory
from bbbprune.storage import write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="?", default="runs", type=Path)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    if not args.runs.is_dir():
        parser.error(f"{args.runs} is not a directory")
    for run_dir in sorted(p for p in args.runs.iterdir() if (p / CONFIG).exists()):
        cfg = OmegaConf.load(run_dir / CONFIG)
        OmegaConf.set_struct(cfg, False)
        cfg.paths.runs = str(args.runs)
        new = run_directory(cfg)
        if new.name == run_dir.name:
            continue
        if new.exists():
            print(f"{run_dir.name}: {new.name} exists already, left alone")
            continue
        print(f"{run_dir.name} -> {new.name}")
        if args.dry_run:
            continue
        files = [run_dir / METRICS, *(run_dir / RECORDS).glob("*.json")]
        files += list((run_dir / ANALYSES).glob("*.json"))
        for path in files:
            if path.exists():
                record = json.loads(path.read_text())
                record["run"] = new.name
                write_json(path, record)
        run_dir.rename(new)


if __name__ == "__main__":
    main()
