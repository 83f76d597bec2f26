"""``python -m bbbprune.cli``: the same as the ``bbbprune`` command."""

from . import main

main()
