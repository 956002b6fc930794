"""A fast copy of the domain's frozen values (jobs, phases, progress).

The planner copies a job several times per change, on every worker's hot path.
``dataclasses.replace`` runs ``__init__`` again; this writes the fields straight into the new
object instead. For a ``Job`` that is two ``__dict__`` copies in C, which is why ``Job`` is a
frozen dataclass *without* slots while the small values (``Phase``, ``Progress``) keep theirs
(measured: see ``bench/``). Private to the domain and the store's writers, which copy planned
jobs the same way.
"""

from typing import Any, TypeVar

_T = TypeVar("_T")
_set = object.__setattr__


def replace(obj: _T, /, **changes: Any) -> _T:
    """``dataclasses.replace`` for the frozen values of this module, without running
    ``__init__`` again: the planner copies a job several times per change, and this is the
    hot path of every worker (an unknown field name still raises)."""
    cls: Any = type(obj)
    new: _T = object.__new__(cls)
    values = getattr(obj, "__dict__", None)
    if values is not None:  # Job: two dict copies in C
        if not changes.keys() <= values.keys():
            raise TypeError(f"{cls.__name__} has no field {sorted(changes.keys() - values.keys())}")
        fields = new.__dict__
        fields.update(values)
        fields.update(changes)
        return new
    for name in cls.__slots__:
        _set(new, name, getattr(obj, name))
    for name, value in changes.items():
        _set(new, name, value)
    return new
