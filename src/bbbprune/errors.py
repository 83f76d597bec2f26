"""User-facing errors: the CLI prints their message as one line, without a traceback."""


class UserError(Exception):
    """A mistake the user can fix (bad option, missing file, wrong checkpoint)."""


def check_choice(kind: str, value: str, valid) -> str:
    """Return ``value`` if it is one of ``valid``; otherwise raise a UserError naming both."""
    valid = sorted(valid)
    if value not in valid:
        raise UserError(f"unknown {kind} {value!r}; valid: {', '.join(valid)}")
    return value
