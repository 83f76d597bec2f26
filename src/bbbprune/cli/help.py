"""``bbbprune <command> --help``: the command's own options and the choices of its config groups.

Nothing here is a second copy of the configs: an option's description is its comment in
conf/config.yaml (or in the group's default file), a group's choices are the files of its
folder under conf/, and each choice is described by the first sentence of its file's comment.
"""

from __future__ import annotations

import re
import textwrap
from importlib import resources

from .options import CHOICES, RANGES

WIDTH = 100

# What each command is for, the options it reads, and the config groups it composes.
COMMANDS = {
    "train": (
        "Train one model per job (method, dataset, model, scale, seed) and evaluate its pruning "
        "at prune.fractions. -m sweeps the experiment's grid.",
        "[key=value ...] [-m] [--dry-run, or train.dry_run=true]",
        [
            "seed",
            "train.epochs",
            "train.batch_size",
            "train.resume",
            "train.force",
            "train.progress",
            "train.scheduler",
            "train.distributed",
            "train.init_from",
            "prune.criteria",
            "prune.fractions",
            "prune.scope",
            "prune.finetune_epochs",
            "prune.measure_speed",
            "prune.measure_export",
            "prune.eval_subset",
            "ood",
            "dataset.train_subset",
            "paths.runs",
            "paths.data",
        ],
        ["experiment", "method", "dataset", "model", "scale", "device", "hydra/launcher"],
    ),
    "prune": (
        "Prune a trained run at one fraction by one criterion and write its record; "
        "-m over prune.fraction and prune.criterion values evaluates them all in one process.",
        "run=<run dir> [key=value ...] [-m]",
        [
            "run",
            "prune.criterion",
            "prune.fraction",
            "prune.scope",
            "prune.seed",
            "prune.finetune_epochs",
            "prune.overwrite",
            "prune.eval_subset",
        ],
        [],
    ),
    "export": (
        "Write a pruned run as a deployable model (sparse or physically smaller; loads in "
        "plain torch).",
        "run=<run dir> [key=value ...]",
        [
            "run",
            "prune.criterion",
            "prune.fraction",
            "prune.scope",
            "prune.seed",
            "export.layout",
            "export.path",
        ],
        [],
    ),
    "table": (
        "Gather an experiment's records into results/<experiment>.md with its figures.",
        "experiment=<name> [key=value ...]",
        ["paths.results", "paths.runs"],
        ["experiment", "scale"],
    ),
    "overview": (
        "Write results/README.md: one row per experiment's table (its headline cell, the "
        "published number, wall time, figures) and error-against-compression figures per dataset.",
        "[overview.experiments=[a,b,...]] [overview.times=<file>] [key=value ...]",
        ["overview.experiments", "overview.times", "paths.results"],
        ["scale"],
    ),
    "data": (
        "Provision a dataset under paths.data and check every file's checksum.",
        "dataset=<name> [key=value ...]",
        ["data.refetch", "dataset.verify", "dataset.sources", "paths.data"],
        ["dataset"],
    ),
    "runs": (
        "List the run directories under paths.runs with their state "
        "(finished, running, failed, interrupted); key=value filters the list.",
        "[key=value ...]",
        [],
        [],
    ),
}
RUNS_FILTERS = {
    "experiment": "the experiment whose table the run belongs to",
    "method": "e.g. bbb",
    "dataset": "e.g. mnist",
    "model": "architecture label, e.g. mlp-400-400",
    "scale": "smoke, small or paper",
    "seed": "e.g. 0",
    "state": "finished, running, failed or interrupted",
    "paths.runs": "the folder holding the runs (default runs, or $BBBPRUNE_RUNS)",
}

_KEY_LINE = re.compile(
    r"^(?P<indent> *)(?P<key>[A-Za-z_][\w]*):(?P<value>[^#]*)(#\s?(?P<doc>.*))?$"
)


def _conf_text(*parts: str) -> str:
    folder = resources.files("bbbprune.conf")
    for part in parts[:-1]:
        folder = folder / part
    return (folder / parts[-1]).read_text()


def key_docs(text: str, prefix: str = "") -> dict[str, tuple[str, str]]:
    """``dotted.key -> (value as written, inline comment)`` for every key of a YAML text."""
    out, stack = {}, []
    for line in text.splitlines():
        m = _KEY_LINE.match(line)
        if not m:
            continue
        indent = len(m["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m["key"]))
        path = ".".join(k for _, k in stack)
        out[prefix + path] = (m["value"].strip(), (m["doc"] or "").strip())
    return out


def first_sentence(text: str) -> str:
    """The first sentence of a config file's leading comment, on one line."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            if lines:
                break
            continue
        body = line.lstrip("#").strip()
        if body.startswith("@package"):
            continue
        lines.append(body)
    joined = " ".join(lines)
    m = re.search(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)\.(?=\s+[A-Z]|$)", joined)
    return _clip(joined[: m.start() + 1] if m else joined, WIDTH - 22)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 4].rstrip() + " ..."


def group_choices(group: str, view) -> list[tuple[str, str]]:
    """``(choice, description)`` for every config file of ``group`` (a folder of conf/)."""
    out = []
    for name in view.choices(group):
        try:
            text = _conf_text(*group.split("/"), f"{name}.yaml")
        except (FileNotFoundError, ModuleNotFoundError, OSError):
            text = ""  # one of Hydra's own (e.g. the basic launcher)
        out.append((name, first_sentence(text)))
    return out


def _default_choices() -> dict[str, str]:
    """The root config's defaults list: ``group -> default choice``."""
    out = {}
    for line in _conf_text("config.yaml").splitlines():
        m = re.match(r"^\s+- (?!override)(\w+): (\w+)", line)
        if m:
            out[m[1]] = m[2]
    return out


def _option_lines(keys: list[str], defaults: dict[str, str]) -> list[str]:
    docs = key_docs(_conf_text("config.yaml"))
    for group, choice in defaults.items():
        try:
            docs.update(key_docs(_conf_text(group, f"{choice}.yaml"), prefix=f"{group}."))
        except (FileNotFoundError, OSError):
            pass
    lines = []
    for key in keys:
        value, doc = docs.get(key, ("", ""))
        extra = []
        if key in CHOICES:
            extra.append("one of " + ", ".join(str(c).lower() for c in CHOICES[key]))
        if key in RANGES:
            extra.append(RANGES[key][3])
        extra = [e for e in extra if e not in doc]
        text = doc + (f" ({'; '.join(extra)})" if extra else "")
        lines.append(_two_columns(f"{key}={value or 'null'}", text))
    return lines


def _two_columns(left: str, right: str, width: int = 30) -> str:
    right = _clip(right.strip(), WIDTH - width)
    if len(left) >= width - 2:
        return f"  {left}" + ("\n" + " " * width + right if right else "")
    return f"  {left:<{width - 2}}{right}".rstrip()


def command_help(command: str) -> str:
    """The text of ``bbbprune <command> --help``."""
    summary, usage, keys, groups = COMMANDS[command]
    defaults = _default_choices()
    out = [f"usage: bbbprune {command} {usage}", "", textwrap.fill(summary, WIDTH), ""]
    if command == "runs":
        out.append("filters (key=value; several narrow the list):")
        out += [_two_columns(k, v, 16) for k, v in RUNS_FILTERS.items()]
        return "\n".join(out)
    out.append("options (key=default):")
    out += _option_lines(keys, defaults)
    from .options import ConfigView

    with ConfigView() as view:
        for group in groups:
            default = defaults.get(group)
            note = f" (default {default})" if default and default != "null" else ""
            out += ["", f"{group}=<choice>{note}:"]
            out += [_two_columns(name, doc, 22) for name, doc in group_choices(group, view)]
    out += [
        "",
        "Options are Hydra overrides: key=value, key=a,b with -m for a sweep. --cfg job prints",
        "the composed config; --hydra-help lists Hydra's own flags.",
    ]
    return "\n".join(out)
