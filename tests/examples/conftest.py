"""The example tests import the examples as ``examples.*`` from the repository root, the
way their docs run them."""

import sys

from support.processes import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
