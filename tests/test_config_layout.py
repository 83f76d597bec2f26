"""The configs' layout: one file per method, tables that select on explicit fields."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import compose_config

from bbbprune.methods import METHODS, build_method

CONF = Path(__file__).resolve().parents[1] / "conf"
EXPERIMENTS = sorted(CONF.glob("experiment/*.yaml"))


def test_conf_method_holds_one_file_per_registered_method():
    assert sorted(p.stem for p in (CONF / "method").glob("*.yaml")) == sorted(METHODS)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_each_method_file_builds_its_registered_class(name):
    method = build_method(compose_config([f"method={name}"]).method)
    assert type(method) is METHODS[name] and method.name == name


def _selections(table: dict):
    """Every ``select``-like dict of a table section, and its ``group_by`` fields."""
    for key in ("fixed",):
        if table.get(key):
            yield key, table[key]
    for key in ("headline", "score"):
        if isinstance(table.get(key), dict) and table[key].get("select"):
            yield key, table[key]["select"]
    for key in ("rows", "checks", "columns"):
        items = table.get(key)
        for item in items if isinstance(items, list) else []:
            for part in ("select", "minus"):
                if isinstance(item, dict) and item.get(part):
                    yield f"{key}: {item.get('label')}", item[part]
    group_by = table.get("group_by")
    if group_by:
        yield "group_by", {g: None for g in ([group_by] if isinstance(group_by, str) else group_by)}


def _looks_like_a_repr(value) -> bool:
    return isinstance(value, str) and ("(" in value or "=" in value or "," in value)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_table_rows_select_on_explicit_fields_never_on_repr_strings(path):
    table = (yaml.safe_load(path.read_text()) or {}).get("table") or {}
    for where, select in _selections(table):
        assert "prior" not in select, f"{path.stem} {where} selects on the prior's repr"
        reprs = [k for k, v in select.items() if _looks_like_a_repr(v)]
        assert not reprs, f"{path.stem} {where} selects on a description string: {reprs}"
