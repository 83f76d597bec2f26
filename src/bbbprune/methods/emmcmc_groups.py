"""Weight groups for structured (group) priors and pruning: the one place that says which entries
of a layer's weight form a group.

* linear layer, weight (out, in): a group is an input-node column ``w[:, j]`` (Ke & Fan 2022,
  fully connected layers; removing it removes input node j);
* convolution, weight (out, in, kh, kw): a group is an output filter ``w[c]`` (a channel; removing
  it removes output channel c).

``group_axis`` names the axis that indexes the groups; every other axis is summed over.
"""

from __future__ import annotations

import torch


def group_axis(weight: torch.Tensor) -> int:
    """The axis of ``weight`` that indexes its groups: 1 (input columns) for a linear weight, 0
    (output filters) for a convolution."""
    if weight.ndim == 2:
        return 1
    if weight.ndim in (3, 4, 5):
        return 0
    raise ValueError(f"no group structure for a weight of shape {tuple(weight.shape)}")


def n_groups(weight: torch.Tensor) -> int:
    return weight.shape[group_axis(weight)]


def group_sum(values: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Sum of ``values`` (shaped like ``weight``) over each group: a vector of length n_groups."""
    axis = group_axis(values if weight is None else weight)
    dims = [d for d in range(values.ndim) if d != axis]
    return values.sum(dim=dims)


def expand_groups(per_group: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A per-group vector broadcast to ``weight``'s shape (every entry gets its group's value)."""
    axis = group_axis(weight)
    shape = [1] * weight.ndim
    shape[axis] = weight.shape[axis]
    return per_group.reshape(shape).expand_as(weight)
