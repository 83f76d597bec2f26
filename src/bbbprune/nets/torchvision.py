"""Any torchvision classification model by name (``model=torchvision model.name=resnet18``),
built with random weights (nothing is downloaded) and adapted to the dataset:

  * the classifier has ``n_classes`` outputs (torchvision's ``num_classes``);
  * the input stem, the first nn.Conv2d in module order, reads the dataset's channels;
  * for small images (side < ``small_input_below``, 64 by default: MNIST, CIFAR), the stem's
    stride becomes 1 and the first max-pool, if any, the identity — the usual CIFAR adaptation
    of ImageNet networks (e.g. He et al. 2016, Sec. 4.2 keep 32×32 maps in the first stage),
    which keeps enough resolution for the later stages.

Extra constructor arguments go in ``model.kwargs`` (e.g. ``{aux_logits: false}`` for googlenet).
The method's layers then replace every nn.Linear / nn.Conv2d (bbbprune.nets.convert), with
torchvision's initial weights as their point weights.
"""

from __future__ import annotations

from torch import nn

from ..errors import UserError
from .convert import convert_with_factory, replace_module


def classification_models() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def torchvision_network(spec: dict) -> nn.Module:
    """The plain (nn.Linear / nn.Conv2d) torchvision network of ``spec``, adapted (module
    docstring)."""
    import torchvision

    name = str(spec["name"])
    valid = classification_models()
    if name not in valid:
        raise UserError(f"unknown torchvision model {name!r}; valid: {', '.join(valid)}")
    kwargs = dict(spec.get("kwargs") or {})
    net = torchvision.models.get_model(
        name, weights=None, num_classes=int(spec["n_classes"]), **kwargs
    )
    channels, height, width = (int(v) for v in spec["input_shape"])
    small = min(height, width) < int(spec.get("small_input_below", 64))
    stem_name, stem = next((n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d))
    if stem.in_channels != channels or small:
        new = nn.Conv2d(
            channels,
            stem.out_channels,
            stem.kernel_size,
            stride=1 if small else stem.stride,
            padding=stem.padding,
            dilation=stem.dilation,
            groups=1 if stem.groups == 1 else channels,
            bias=stem.bias is not None,
        )
        replace_module(net, stem_name, new)
    if small:
        pool = next((n for n, m in net.named_modules() if isinstance(m, nn.MaxPool2d)), None)
        if pool is not None:
            replace_module(net, pool, nn.Identity())
    return net


def build_torchvision(spec: dict, layers) -> nn.Module:
    """The adapted torchvision network with the method's layers (``layers``: a LayerFactory)."""
    return convert_with_factory(torchvision_network(spec), layers)
