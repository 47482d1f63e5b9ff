"""The adapter's one internal error: a call's input it cannot serve (its entries become misses)."""


class BadInput(ValueError):
    """A call's arguments cannot be served: its entries are False and the reason is logged."""
