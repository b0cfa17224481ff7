"""One parameter contract for strategies, model adapters, candidate pools and indexes, in
scikit-learn's style.

A class lists its constructor parameters' constraints in ``parameter_constraints``; subclassing
:class:`Parameterized` checks them once, right after ``__init__`` has stored the parameters, so a
typo (``optimizer="lazyy"``) fails when the object is built, never at the first round. Every
violation raises :class:`~raresift.errors.ConfigError` in one format::

    CoreSetStrategy: representation='pixels' is invalid; it must be one of 'auto', 'penultimate',
    'embedding'

>>> class Greedy(Parameterized):
...     parameter_constraints = {"budget": [Interval(int, 1, None)],
...                              "optimizer": [Options("naive", "lazy")]}
...     def __init__(self, budget=1, optimizer="lazy"):
...         self.budget, self.optimizer = budget, optimizer
>>> Greedy(optimizer="lazyy")
Traceback (most recent call last):
...
raresift.errors.ConfigError: Greedy: optimizer='lazyy' is invalid; it must be one of 'naive', 'lazy'

Arguments of a call (the ``k`` of a search, a number of samples) are data, not configuration:
:func:`positive_int` checks them and raises :class:`~raresift.errors.ValidationError`.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any, ClassVar

from raresift.errors import ConfigError, ValidationError

POSITIVE = ("both", "left")  # closed at the low end


class Interval:
    """A number of ``kind`` (int or float) in [low, high] (None: unbounded); ``closed`` says
    which ends are included ("both", "left", "right", "neither")."""

    def __init__(self, kind: type, low: float | None, high: float | None, closed: str = "both"):
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def holds(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.kind is int and not isinstance(value, numbers.Integral):
            return False
        if not math.isfinite(value):
            return False
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and (value < self.low or (value == self.low and not left)):
            return False
        return not (
            self.high is not None and (value > self.high or (value == self.high and not right))
        )

    def __str__(self) -> str:
        if self.kind is int and self.low == 1 and self.high is None and self.closed in POSITIVE:
            return "a positive integer"
        kind = "an integer" if self.kind is int else "a finite number"
        if self.low is not None and self.high is None:
            return f"{kind} {'>=' if self.closed in ('both', 'left') else '>'} {self.low}"
        if self.high is not None and self.low is None:
            return f"{kind} {'<=' if self.closed in ('both', 'right') else '<'} {self.high}"
        if self.low is None:
            return kind
        lo = "[" if self.closed in ("both", "left") else "("
        hi = "]" if self.closed in ("both", "right") else ")"
        return f"{kind} in {lo}{self.low}, {self.high}{hi}"


class Options:
    """One of the given values."""

    def __init__(self, *values: Any):
        self.values = values

    def holds(self, value: Any) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values)

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


class HasMethods:
    """An object with the named methods; ``what`` describes it for the message (e.g. "a
    probabilistic classifier such as LogisticRegression()")."""

    def __init__(self, *methods: str, what: str = "an object"):
        self.methods, self.what = methods, what

    def holds(self, value: Any) -> bool:
        return all(callable(getattr(value, m, None)) for m in self.methods)

    def __str__(self) -> str:
        return f"{self.what} with {' and '.join(self.methods)}()"


class Instance:
    """An instance of one of the given types (``None`` in the list allows None)."""

    def __init__(self, *types: type | None):
        self.types = types

    def holds(self, value: Any) -> bool:
        if value is None:
            return None in self.types
        if isinstance(value, bool) and bool not in self.types:
            return False
        return isinstance(value, tuple(t for t in self.types if t is not None))

    def __str__(self) -> str:
        names = ["None" if t is None else t.__name__ for t in self.types]
        return "a " + " or ".join(names)


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int if it is a positive integer (not a bool), else
    :class:`ValidationError`: the one check of a count passed to a call.

    >>> positive_int(3, "k")
    3
    >>> positive_int(0, "k")
    Traceback (most recent call last):
    ...
    raresift.errors.ValidationError: k must be a positive integer, got 0
    """
    if not Interval(int, 1, None).holds(value):
        raise ValidationError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def invalid(owner: str, name: str, value: Any, must: str) -> ConfigError:
    """The one message of a bad parameter: ``"owner: name=value is invalid; it must be ..."``
    (long or multi-line values, such as a network, are named by their type).

    >>> str(invalid("TorchModel", "n_classes", 4, "3, the classifier's outputs"))
    "TorchModel: n_classes=4 is invalid; it must be 3, the classifier's outputs"
    """
    shown = repr(value)
    if len(shown) > 80 or "\n" in shown:
        shown = f"<{type(value).__name__}>"
    return ConfigError(f"{owner}: {name}={shown} is invalid; it must be {must}")


def check_parameters(owner: str, values: dict[str, Any], constraints: dict[str, list]) -> None:
    """Raise :class:`ConfigError` for the first value that meets none of its constraints."""
    for name, allowed in constraints.items():
        if name not in values:
            continue
        value = values[name]
        if not any(c.holds(value) for c in allowed):
            raise invalid(owner, name, value, " or ".join(str(c) for c in allowed))


class Parameterized:
    """Base class that checks ``parameter_constraints`` once each object is constructed.

    The constraints of a class and all its bases apply (a subclass may override one by name).
    Parameters are read from the attributes of the same name that ``__init__`` stored.
    """

    parameter_constraints: ClassVar[dict[str, list]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def checked_init(self, *args, **kw):
            outermost = not self.__dict__.get("_constructing", False)
            self.__dict__["_constructing"] = True
            try:
                init(self, *args, **kw)
            finally:
                if outermost:
                    del self.__dict__["_constructing"]
            if outermost:
                self.check_parameters()

        cls.__init__ = checked_init

    @classmethod
    def all_constraints(cls) -> dict[str, list]:
        """Constraints of this class and its bases, the most derived winning."""
        merged: dict[str, list] = {}
        for klass in reversed(cls.__mro__):
            merged.update(klass.__dict__.get("parameter_constraints", {}))
        return merged

    def check_parameters(self) -> None:
        """Check the stored parameters against :meth:`all_constraints`."""
        values = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        check_parameters(type(self).__name__, values, self.all_constraints())
