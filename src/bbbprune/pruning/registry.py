"""The one registry of pruning criteria, by kind:

  * weight criteria: ``scores(model, generator) -> {layer name: score per weight}``, low score
    removed first; a fraction of the weights is then masked (bbbprune.pruning.masking);
  * threshold rules: ``masks(model, threshold) -> {layer name: 0/1 mask}``, a method's own rule
    that fixes a threshold and lets the model decide how many weights go;
  * controls: ``name -> (weight criterion, scope)``, a criterion that knows no posterior
    removing as many weights as a reference mask, globally or layer by layer (controls.py);
  * node criteria: ``scores(layer) -> score per input node`` of one layer family, high = keep;
    the family is found by the layer's class (its method resolution order), not by attributes.

Each criterion registers itself where it is defined (criteria.py, thresholds.py, nodes.py);
tests parametrise over these dicts, so adding a criterion touches one file.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

WEIGHT_CRITERIA: dict[str, Callable] = {}
THRESHOLD_RULES: dict[str, Callable] = {}
CONTROLS: dict[str, tuple[str, str]] = {}
NODE_CRITERIA: dict[type, tuple[str, Callable]] = {}


def weight_criterion(name: str) -> Callable:
    """Register a weight criterion under ``name`` (a ``prune.criterion`` value)."""

    def register(scores: Callable) -> Callable:
        WEIGHT_CRITERIA[name] = scores
        return scores

    return register


def threshold_rule(name: str) -> Callable:
    """Register a threshold rule under ``name``."""

    def register(masks: Callable) -> Callable:
        THRESHOLD_RULES[name] = masks
        return masks

    return register


def control(name: str, criterion: str, scope: str) -> None:
    """Register a control at matched sparsity: ``criterion``'s scores masked with ``scope``."""
    CONTROLS[name] = (criterion, scope)


def node_criterion(layer_type: type, name: str) -> Callable:
    """Register the node score of a layer family (``layer_type`` and its subclasses); ``name``
    says what the score is in records and tables."""

    def register(scores: Callable) -> Callable:
        NODE_CRITERIA[layer_type] = (name, scores)
        return scores

    return register


def node_criterion_for(layer: nn.Module) -> tuple[str, Callable]:
    """The node criterion registered for the most specific class of ``layer``."""
    for cls in type(layer).__mro__:
        if cls in NODE_CRITERIA:
            return NODE_CRITERIA[cls]
    raise KeyError(f"no node criterion for {type(layer).__name__}")
