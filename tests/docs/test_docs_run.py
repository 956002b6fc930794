"""The documentation runs: each page's ``run`` blocks, in order, in an empty directory
against a fresh SQLite database, as a reader would type them (``docblocks``)."""

from pathlib import Path

import pytest
from docblocks import blocks, run_page

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", ROOT / "docs/tutorial.md", ROOT / "docs/coming-from.md",
                *(ROOT / "docs/how-to").glob("*.md")])


@pytest.mark.timeout(600)
@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_runs(page: Path, tmp_path: Path) -> None:
    assert blocks(page.read_text()), f"{page.name} has no runnable block"
    run_page(page, tmp_path, timeout=300)


def test_the_readme_sends_what_its_task_takes() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "async def ingest(ctx, document_id: str)" in readme
    assert '"data": {"document_id": "d1"}' in readme
    assert "documentId" not in readme


def test_the_readme_says_how_to_get_jobtrack_on_path() -> None:
    readme = (ROOT / "README.md").read_text()
    assert ". .venv/bin/activate" in readme
    assert "pip install" in readme


def test_the_runner_stops_at_a_failing_block(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```sh run\necho one > one.txt\n```\n\n```sh run\nfalse\n```\n\n"
                    "```sh run\necho never > never.txt\n```\n")
    with pytest.raises(AssertionError, match=r"page.md:5: exit 1"):
        run_page(page, tmp_path / "work")
