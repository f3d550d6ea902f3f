"""Error types shared by every nasforge package."""


class NasforgeError(ValueError):
    """A user-facing error: bad input, a missing file, an unknown name.

    The command line prints its message on one line and exits with code 2.
    """


def unknown(kind: str, value: object, allowed: "list[str] | tuple[str, ...]") -> NasforgeError:
    """The standard error for a name that is not one of the allowed ones."""
    return NasforgeError(f"unknown {kind} {value!r}; allowed: {', '.join(map(str, allowed))}")
