"""Find an App from its ``MODULE:ATTRIBUTE`` path, as ``jobtrack worker`` is given it."""

import importlib
import os
import sys

from jobtrack.errors import ValidationFailed
from jobtrack.queue.app import App


def load_app(path: str) -> App:
    """Import ``module.sub:attr`` (the current directory is importable) and return the App."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValidationFailed(f"expected MODULE:APP (e.g. myproject.tasks:app), got {path!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValidationFailed(f"cannot import {module_name!r}: {exc}") from exc
    target: object = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValidationFailed(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(target, App):
        raise ValidationFailed(f"{path} is a {type(target).__name__}, not a jobtrack.App")
    return target
