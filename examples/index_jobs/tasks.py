"""The indexing worker of seed 004 (``index_jobs``): one job per repository and ref. The
job row is the status (pending, running, completed or failed, with timestamps, error and
stats); nothing else needs updating by hand.

Run a worker for it from the repository root::

    jobtrack worker examples.index_jobs.tasks:app --queues index
"""

import asyncio
from typing import Any

from jobtrack import App, JobContext

QUEUE = "index"
TASK = "index_repository"
#: the repositories this toy indexer can "clone", with their number of files
REPOSITORIES = {"acme/api": 120, "acme/web": 80, "test/repo": 40}
SYMBOLS_PER_FILE = 7

app = App()  # the database comes from JOBTRACK_DATABASE_URL (or --database-url)


@app.task(name=TASK, queue=QUEUE, max_attempts=1)
async def index_repository(ctx: JobContext, repository: str, ref: str,
                           commit_sha: str | None = None) -> dict[str, Any]:
    """Index every file of ``repository`` at ``ref``; an unknown repository fails the job
    with its error message stored on it."""
    files = REPOSITORIES.get(repository)
    if files is None:
        raise LookupError(f"repository {repository!r} not found")
    for done in range(0, files + 1, 10):
        await ctx.progress(min(done, files), files)  # also a checkpoint (cancel)
        await asyncio.sleep(0.02)
    ctx.stats.update(files_indexed=files, symbols_extracted=files * SYMBOLS_PER_FILE)
    return {"repository": repository, "ref": ref, "commit_sha": commit_sha}
