"""The command line's arguments, checked before anything heavy loads.

``bbbprune <command> [key=value ...] [flags]`` is split into Hydra overrides and flags, and every
override is checked against the composed config (Hydra's compose API: pure Python, no torch):
an unknown group choice names the valid ones, an unknown key the closest existing key
(``difflib``), a value of the wrong type the key and the expected type, and a value out of range
its range. Each problem is one :class:`UserError` line; the command only runs once all pass.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError

CONFIG_MODULE = "bbbprune.conf"

# Hydra's flags that the commands pass on; those that take a value are followed by it.
FLAGS_WITH_VALUE = ("--cfg", "-c", "--package", "-p")
FLAGS = ("-m", "--multirun", "--resolve", "--hydra-help", "--info", "-i")
OWN_FLAGS = ("--help", "-h", "--dry-run")

# Ranges of numeric options: key -> (lowest, highest, whether highest is excluded, wording).
RANGES = {
    "prune.fraction": (0.0, 1.0, True, "in [0, 1)"),
    "prune.fractions": (0.0, 1.0, True, "in [0, 1)"),
    "train.epochs": (1, None, False, ">= 1"),
    "train.batch_size": (1, None, False, ">= 1"),
    "prune.finetune_epochs": (0, None, False, ">= 0"),
    "prune.latency_repeats": (0, None, False, ">= 0"),
    "dataset.train_subset": (1, None, False, ">= 1"),
    "prune.eval_subset": (1, None, False, ">= 1"),
}
# Options with a fixed set of values that no config group lists.
CHOICES = {
    "prune.scope": ("global", "layer"),
    "export.layout": ("auto", "sparse", "dense"),
    "train.distributed": ("auto", True, False),
    "prune.validate": ("mean", "all"),
    "prune.predictions": ("all", "primary", "native", "none"),
}
TYPE_WORDS = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list such as [0.5, 0.9]",
    dict: "a mapping such as {key: value}",
}


# ``train.dry_run=true`` is the same switch as ``--dry-run``, spelt as an option
DRY_RUN_OVERRIDES = ("train.dry_run=true", "train.dry_run=True")


@dataclass
class Invocation:
    """One command line, split: the command, Hydra overrides, Hydra flags, and our own flags."""

    command: str
    overrides: list[str] = field(default_factory=list)
    hydra_flags: list[str] = field(default_factory=list)
    multirun: bool = False
    help: bool = False
    dry_run: bool = False


def split_arguments(command: str, args: list[str]) -> Invocation:
    """Sort ``args`` into overrides (``key=value``) and flags; an unknown flag is a UserError."""
    inv = Invocation(command)
    it = iter(args)
    for arg in it:
        if arg in ("--help", "-h"):
            inv.help = True
        elif arg == "--dry-run" or arg.lstrip("+") in DRY_RUN_OVERRIDES:
            inv.dry_run = True
        elif arg in ("-m", "--multirun"):
            inv.multirun = True
            inv.hydra_flags.append(arg)
        elif arg in FLAGS_WITH_VALUE:
            value = next(it, None)
            if value is None:
                raise UserError(f"{arg} needs a value (e.g. {arg} job)")
            inv.hydra_flags += [arg, value]
        elif arg in FLAGS:
            inv.hydra_flags.append(arg)
        elif arg.startswith("-"):
            valid = ", ".join((*OWN_FLAGS, *FLAGS, *FLAGS_WITH_VALUE))
            raise UserError(f"unknown flag {arg!r}; valid: {valid}")
        elif "=" not in arg and not arg.startswith("~"):
            raise UserError(
                f"unexpected argument {arg!r}: options are key=value (see bbbprune {command} --help)"
            )
        else:
            inv.overrides.append(arg)
    return inv


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def parse_overrides(overrides: list[str]) -> list:
    """Hydra's own parse of the overrides; a syntax error is one UserError line."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    parsed = []
    for text in overrides:
        try:
            parsed += parser.parse_overrides([text])
        except HydraException as exc:
            raise UserError(f"cannot read option {text!r}: {_first_line(exc)}") from exc
    return parsed


def override_values(o) -> list:
    """The values of one override: one, or each value of a sweep (``a,b``, ``range(1,4)``)."""
    if o.is_delete():
        return []
    if o.is_sweep_override():
        try:
            return list(o.sweep_iterator())
        except Exception:  # interval sweeps (optimisers) have no list of values
            return []
    return [o.value()]


class ConfigView:
    """The config groups and the composed config, read through Hydra's compose API."""

    def __init__(self):
        from hydra import initialize_config_module
        from hydra.core.global_hydra import GlobalHydra

        self._ctx = initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3")
        self._ctx.__enter__()
        self._loader = GlobalHydra.instance().config_loader()
        self._groups: dict[str, list[str]] = {}

    def close(self) -> None:
        self._ctx.__exit__(None, None, None)

    def __enter__(self) -> ConfigView:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def groups(self, parent: str = "") -> list[str]:
        """The config groups under ``parent`` (``""``: the top level; ``hydra``: Hydra's own)."""
        if parent not in self._groups:
            self._groups[parent] = sorted(self._loader.list_groups(parent))
        return self._groups[parent]

    def is_group(self, key: str) -> bool:
        parent, _, name = key.lstrip("/").rpartition("/")
        return name in self.groups(parent)

    def choices(self, group: str) -> list[str]:
        return sorted(self._loader.get_group_options(group))

    def compose(self, overrides: list[str], hydra_config: bool = False):
        from hydra import compose
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        try:
            return compose("config", overrides=overrides, return_hydra_config=hydra_config)
        except (HydraException, OmegaConfBaseException) as exc:
            raise UserError(hydra_message(exc)) from exc


def hydra_message(exc: BaseException) -> str:
    """Hydra's error as one line, without its hints about search paths and HYDRA_FULL_ERROR."""
    while exc.__cause__ is not None and not str(exc).strip():
        exc = exc.__cause__
    line = _first_line(exc)
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        line = f"{line} ({_first_line(cause)})"
    return line


def flat_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every key of a plain (unresolved) config container."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            out.append(path)
            out += flat_keys(v, path)
    return out


_MISSING = object()


def raw_lookup(container: dict, key: str) -> Any:
    """The unresolved value at a dotted key, or ``_MISSING``."""
    node: Any = container
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def suggest(key: str, keys: list[str]) -> str:
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _type_ok(current: Any, value: Any) -> bool:
    if value is None or current is None:
        return True
    if isinstance(current, bool):
        return isinstance(value, bool)
    if isinstance(current, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(current, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(current, str):
        return not isinstance(value, list | dict)
    if isinstance(current, list):
        return isinstance(value, list)
    if isinstance(current, dict):
        return isinstance(value, dict)
    return True


def check_value(key: str, current: Any, value: Any) -> None:
    """The type, range and allowed values of one option's new value."""
    if not _type_ok(current, value):
        expected = next(w for t, w in TYPE_WORDS.items() if isinstance(current, t))
        raise UserError(f"{key} expects {expected}, got {value!r}")
    if key in CHOICES and value not in CHOICES[key]:
        valid = ", ".join(str(v).lower() if isinstance(v, bool) else v for v in CHOICES[key])
        raise UserError(f"unknown {key} {value!r}; choose from: {valid}")
    if key in RANGES and value is not None:
        low, high, open_high, words = RANGES[key]
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise UserError(f"{key} expects numbers, got {v!r}")
            if v < low or (high is not None and (v >= high if open_high else v > high)):
                raise UserError(f"{key} must be {words}, got {v}")


def _resolved(cfg, key: str) -> Any:
    from omegaconf import OmegaConf

    try:
        value = OmegaConf.select(cfg, key, throw_on_resolution_failure=True)
    except Exception:  # an interpolation that needs Hydra's runtime: type not known here
        return None
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def check_run_dir(command: str, cfg) -> None:
    """``prune`` and ``export`` need ``run=`` naming a trained run; its method's criteria."""
    from omegaconf import OmegaConf

    if not cfg.get("run"):
        raise UserError(f"bbbprune {command} needs run=<run directory> (see bbbprune runs)")
    run_dir = Path(str(cfg.run))
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir} is not a run directory (no config.yaml)")
    if not (run_dir / "checkpoint.pt").is_file():
        raise UserError(f"{run_dir} has no checkpoint.pt (its training has not finished)")
    try:
        run_cfg = OmegaConf.load(run_dir / "config.yaml")
    except Exception as exc:
        raise UserError(f"{run_dir / 'config.yaml'} is unreadable: {_first_line(exc)}") from exc
    criteria = OmegaConf.select(run_cfg, "method.criteria", default=None)
    criterion = cfg.prune.criterion
    if criteria and criterion not in criteria and criterion != "native":
        raise UserError(
            f"criterion {criterion!r} does not apply to method {run_cfg.method.name}; "
            f"choose from: {', '.join(criteria)}"
        )


def check_overview(cfg, view: ConfigView) -> None:
    """``overview.experiments``: a list of experiment names (conf/experiment/)."""
    names = cfg.overview.experiments
    if names is None:
        return
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise UserError(f"overview.experiments expects a list of names such as [a, b], got {names}")
    valid = view.choices("experiment")
    for name in names:
        if name not in valid:
            raise UserError(
                f"unknown experiment {name!r} in overview.experiments{suggest(name, valid)}"
            )


def method_reads(container: dict, key: str, prior_kind: str | None = None) -> bool:
    """Whether ``+key`` adds an option the method reads although its YAML leaves it out: an
    argument of the method's class (``+method.moped_delta``; inside a mapping argument,
    ``+method.layer_decays.conv.scale``) or a key the prior's kind reads
    (``+method.prior.neg_log_sigma`` with ``method.prior.kind=gaussian``; ``prior_kind``: the
    kind the command line sets, if it does). Imports the method's class (and so torch) only for
    such an option."""
    parts = key.split(".")
    method = container.get("method")
    if len(parts) < 2 or parts[0] != "method" or not isinstance(method, dict):
        return False
    if parts[1] == "prior":
        from ..layers.priors import PRIOR_KEYS

        prior = method.get("prior")
        kind = prior_kind or (prior.get("kind") if isinstance(prior, dict) else None)
        return len(parts) == 3 and isinstance(prior, dict) and parts[2] in PRIOR_KEYS.get(kind, ())
    present = method.get(parts[1])
    if parts[1] in ("self", "name") or (parts[1] in method and not isinstance(present, dict)):
        return False
    if not method.get("_target_"):
        return False
    import inspect

    from hydra.utils import get_class

    try:
        return parts[1] in inspect.signature(get_class(method["_target_"]).__init__).parameters
    except Exception:  # a target that cannot be imported: the compose reports it
        return False


def first_job_text(o) -> str:
    """The override as the first job of its sweep sees it (itself, if not a sweep)."""
    if not o.is_sweep_override():
        return o.input_line
    return f"{o.input_line.split('=', 1)[0]}={next(iter(o.sweep_string_iterator()))}"


def validate(inv: Invocation, view: ConfigView | None = None):
    """Check every override of ``inv``; return the composed config of the first job of a sweep.

    One compose (group choices, Hydra's settings, added keys) gives the config every other
    override is checked against: its key must exist, its values fit the type and range."""
    from omegaconf import OmegaConf

    parsed = parse_overrides(inv.overrides)
    own_view = view is None
    view = view or ConfigView()
    try:
        if not inv.multirun:
            for o in parsed:
                if o.is_sweep_override():
                    raise UserError(
                        f"{o.input_line} is a sweep (one job per value): add -m to run it"
                    )
        composed, checked = [], []
        for o in parsed:
            key = o.key_or_group
            if view.is_group(key):
                group = key.lstrip("/")
                valid = view.choices(group)
                values = override_values(o)  # a list value picks several: logger=[csv,mlflow]
                for v in [
                    x for item in values for x in (item if isinstance(item, list) else [item])
                ]:
                    if v is not None and str(v) not in valid:
                        raise UserError(f"unknown {group} {v!r}; choose from: {', '.join(valid)}")
                composed.append(first_job_text(o))
            elif key == "hydra" or key.startswith("hydra."):
                composed.append(first_job_text(o))  # checked by Hydra's compose below
            else:
                checked.append(o)
        hydra_settings = any(t.split("=", 1)[0].lstrip("+~").startswith("hydra") for t in composed)
        cfg = view.compose(composed, hydra_config=hydra_settings)
        container = OmegaConf.to_container(cfg, resolve=False)
        container.pop("hydra", None)
        keys = flat_keys(container)
        OmegaConf.set_struct(cfg, False)
        prior_kind = next(
            (str(o.value()) for o in checked if o.key_or_group == "method.prior.kind"), None
        )
        for o in checked:
            key = o.key_or_group
            exists = raw_lookup(container, key) is not _MISSING
            if not exists and o.is_add() and method_reads(container, key, prior_kind):
                continue  # an optional argument of the method, e.g. +method.moped_delta=0.1
            if not exists:
                raise UserError(f"unknown option {key!r}{suggest(key, keys)}")
            if o.is_add():
                raise UserError(f"{key} exists: set it without the leading +")
            if o.is_delete():
                continue
            current = _resolved(cfg, key)
            values = override_values(o)
            for v in values:
                check_value(key, current, v)
            if values:
                OmegaConf.update(cfg, key, values[0], merge=False)
        if inv.command in ("prune", "export"):
            check_run_dir(inv.command, cfg)
        if inv.command == "overview":
            check_overview(cfg, view)
        return cfg
    finally:
        if own_view:
            view.close()
