"""Run a documentation page's code as a reader would: every fenced block whose info
string says ``run`` (```` ```sh run ````, ```` ```python run ````), in order, in one fresh
directory, against a fresh SQLite database (``./jobtrack.db`` there).

- ```` ```python file=NAME ```` writes the block to ``NAME`` in that directory (a task
  module the next blocks use) instead of running it.
- ``sh`` blocks run under ``bash -eo pipefail``; what they start in the background
  (``jobtrack serve &``, ``jobtrack worker ... &``) keeps running for the next blocks and
  is stopped (SIGTERM, then SIGKILL) when the page is done.
- ``python`` blocks run with the same interpreter as this script.
- Ports 8000 to 8099 in a page become free ports, so pages can run side by side.

Used by ``tests/docs/test_docs_run.py`` and ``scripts/fresh-clone-check``::

    python tests/docs/docblocks.py README.md docs/tutorial.md
"""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.M | re.S)
PORT = re.compile(r"\b80\d\d\b")


@dataclass
class Block:
    lang: str
    code: str
    file: str | None
    line: int


def blocks(text: str) -> list[Block]:
    """The page's runnable blocks, in order."""
    found = []
    for m in FENCE.finditer(text):
        words = m.group(1).split()
        if not words:
            continue
        lang, marks = words[0], words[1:]
        file = next((w.split("=", 1)[1] for w in marks if w.startswith("file=")), None)
        if "run" in marks or file is not None:
            found.append(Block(lang, m.group(2), file, text.count("\n", 0, m.start()) + 1))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Failed(AssertionError):
    pass


def run_page(page: Path, workdir: Path | None = None, timeout: float = 120) -> list[str]:
    """Run the page's blocks; return each block's output. Raises :class:`Failed` naming
    the block (its line in the page) and its output."""
    ports: dict[str, str] = {}
    text = PORT.sub(lambda m: ports.setdefault(m.group(0), str(free_port())),
                    page.read_text())
    work = workdir or Path(tempfile.mkdtemp(prefix="jobtrack-doc-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBTRACK_")}
    bin_dir = str(Path(sys.executable).parent)
    env.update(PATH=f"{bin_dir}:{env.get('PATH', '')}", PYTHONPATH=str(work),
               COLUMNS="80", NO_COLOR="1")
    groups: list[int] = []
    outputs = []
    try:
        for block in blocks(text):
            if block.file is not None:
                (work / block.file).write_text(block.code)
                outputs.append("")
                continue
            if block.lang in ("sh", "bash", "console"):
                args = ["bash", "-eo", "pipefail", "-c", block.code]
            elif block.lang == "python":
                args = [sys.executable, "-c", block.code]
            else:
                raise Failed(f"{page}:{block.line}: cannot run a {block.lang!r} block")
            # output to a file, not a pipe: what the block leaves running in the
            # background may keep the descriptor open long after the block is done
            log = work / f".block-{block.line}.log"
            with log.open("w") as sink:
                proc = subprocess.Popen(args, cwd=work, env=env, stdout=sink,
                                        stderr=subprocess.STDOUT, start_new_session=True)
            groups.append(proc.pid)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _stop(proc.pid)
                raise Failed(f"{page}:{block.line}: still running after {timeout:g} s:\n"
                             f"{block.code}\n--- output ---\n{log.read_text()}") from None
            output = log.read_text()
            outputs.append(output)
            if proc.returncode != 0:
                raise Failed(f"{page}:{block.line}: exit {proc.returncode}:\n{block.code}\n"
                             f"--- output ---\n{output}")
    finally:
        for pgid in reversed(groups):
            _stop(pgid)
    return outputs


def _stop(pgid: int) -> None:
    """SIGTERM what a block left running (its process group), SIGKILL after 15 s."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def main() -> None:
    for name in sys.argv[1:]:
        print(f"== {name}", flush=True)
        try:
            run_page(Path(name))
        except Failed as exc:
            print(exc, file=sys.stderr)
            sys.exit(1)
        print(f"ok: {len(blocks(Path(name).read_text()))} blocks", flush=True)


if __name__ == "__main__":
    main()
