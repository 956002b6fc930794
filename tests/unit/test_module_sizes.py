"""The structure rule of decision 8: no module of ``jobtrack/`` over 400 lines (the
migrations aside: each is one revision, written once), so that no module grows back into
one that holds several concerns."""

from pathlib import Path

import jobtrack

LIMIT = 400
ROOT = Path(jobtrack.__file__).parent


def test_no_module_is_over_the_limit() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in ROOT.rglob("*.py") if "migrations" not in path.parts
    }
    assert len(sizes) > 50  # the package itself was read
    over = {name: n for name, n in sizes.items() if n > LIMIT}
    assert over == {}, f"split these modules (decision 8): {over}"
