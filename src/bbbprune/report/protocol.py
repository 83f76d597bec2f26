"""What every table's header states (the reporting protocol, after Blalock et al. 2020, "What is
the state of neural network pruning?", Sec. 7, plus what Bayesian methods add): the prior, the
KL weight and its warm-up, the Monte Carlo samples in training and at test, whether a cell is the
mean-weights network or the sampled predictive, the threshold and how it was chosen, and beside
the published numbers whether our setting is the paper's or reduced. Everything is read from the
runs' ``metrics.json`` (Method.describe()), the records and the table's own spec, never from a
model or a dataset."""

from __future__ import annotations

import pandas as pd

from .render import markdown_row

SINGLE_SEED = "†"  # after a cell computed from one seed only (render._fmt)

MODES = {
    "mean": "mean-weights network (posterior means; for EM-MCMC the last sample)",
    "sampled": "sampled predictive",
    "ensemble": "snapshot-ensemble predictive",
}


def _kl_weight(m: dict) -> str:
    if "kl_weighting" in m:
        scale = f"{m['kl_scale']:g} × " if m.get("kl_scale", 1.0) != 1.0 else ""
        if m["kl_weighting"] == "blundell":
            return f"{scale}KL/N, minibatch i of M weighted 2^(M−i)/(2^M−1) (Blundell et al. eq. 9)"
        return f"{scale}KL/N per example, uniform over minibatches"
    if m.get("prior") is None:
        return "– (no KL term)"
    return "KL/N per example"


def _warmup(m: dict) -> str:
    if "warmup_start" in m:
        s, e = m["warmup_start"], m["warmup_end"]
        return "none" if e == 0 else f"0 before epoch {s}, linear to 1 at epoch {e}"
    if m.get("kl_warmup_epochs"):
        return f"linear from 0 to 1 over the first {m['kl_warmup_epochs']} epochs"
    return "none" if m.get("prior") is not None else "–"


def _samples(m: dict) -> str:
    if "eval_samples" not in m:
        return "– (deterministic)"
    return f"{m.get('train_samples', 1)} / {m['eval_samples']}"


def _threshold(m: dict, spec: dict) -> str:
    own = m.get("threshold", m.get("prune_threshold"))
    how = spec.get("threshold_choice") or (
        "fractions swept, global over layers (no threshold chosen)"
        + ("; own rule at the method's fixed value, not tuned" if own is not None else "")
    )
    return (f"own rule {own}; " if own is not None else "") + how


def settings_table(runs: list[dict], spec: dict) -> list[str]:
    """One row per method of the runs: prior, KL weight, warm-up, MC samples, threshold."""
    header = [
        "method",
        "prior",
        "KL weight",
        "KL warm-up",
        "MC samples train / test",
        "threshold (how chosen)",
    ]
    lines = ["### Settings of the runs", "", markdown_row(header), "|" + "---|" * len(header)]
    seen = set()
    for m in sorted(runs, key=lambda r: r["method"]):
        row = (
            m["method"],
            str(m.get("prior") or "none"),
            _kl_weight(m),
            _warmup(m),
            _samples(m),
            _threshold(m, spec),
        )
        if row not in seen:
            seen.add(row)
            lines.append(markdown_row(row))
    return lines + [""]


def cell_modes(spec: dict, df: pd.DataFrame) -> str:
    """Which cells are the mean-weights network and which a predictive over samples."""
    if not df.empty and "prediction" in df.columns:
        parts = []
        for mode, group in df.groupby("prediction", sort=True):
            samples = sorted({int(s) for s in group.get("samples", pd.Series([1])).dropna()})
            s = f" (S = {', '.join(map(str, samples))})" if mode != "mean" else ""
            rows = [
                r["label"]
                for r in spec.get("rows", [])
                if r.get("select", {}).get("prediction", spec.get("fixed", {}).get("prediction"))
                == mode
            ]
            where = f": rows {'; '.join(rows)}" if rows else ""
            parts.append(f"{MODES.get(mode, mode)}{s}{where}")
        return "- cells: " + " | ".join(parts)
    return "- cells: (no records yet)"


def published_setting(spec: dict) -> str:
    """Where the published numbers come from and whether our setting is the paper's."""
    setting = spec.get("published_setting") or "not stated"
    return f"- our setting against the published one (source above): {setting}"


def single_seed_note(seeds: list) -> list[str]:
    return [
        f"{SINGLE_SEED} one seed only (no spread); headline rows are run over at least 3 seeds "
        "and show mean ± sample std."
    ]


def header_lines(spec: dict, runs: list[dict], df: pd.DataFrame) -> list[str]:
    """The protocol's header: settings table, cell modes, published setting."""
    return [cell_modes(spec, df), published_setting(spec), ""] + settings_table(runs, spec)
