"""The example tests import the examples as ``examples.*`` from the repository root, the
way their docs run them."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
