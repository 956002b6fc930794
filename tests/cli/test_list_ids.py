"""Listing commands print whole ids when stdout is no terminal (a pipe, a file, CI): an
id shown can always be passed back (``keys revoke <id shown>``)."""

import asyncio
import os
import subprocess

from jobtrack.queue.app import App
from jobtrack.queue.flows import FlowJob
from jobtrack.webhooks import registry
from support.cli import command


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run(command(*args, url=url), env=env, capture_output=True, text=True,
                          timeout=60)


def test_keys_ls_without_a_terminal_shows_ids_that_revoke_accepts(db_url: str) -> None:
    made = _cli(db_url, "keys", "create", "--tenant", "a-rather-long-tenant-name",
                "--label", "a label long enough to crowd the table out of its width")
    assert made.returncode == 0, made.stderr
    listed = _cli(db_url, "keys", "ls")
    assert listed.returncode == 0, listed.stderr
    assert "…" not in listed.stdout, listed.stdout
    [row] = [line for line in listed.stdout.splitlines() if "a-rather-long-tenant-name" in line]
    key_id = row.split("│")[1].strip() if "│" in row else row.split()[0]
    revoked = _cli(db_url, "keys", "revoke", key_id)
    assert revoked.returncode == 0, (key_id, listed.stdout, revoked.stderr)


def test_other_lists_show_whole_ids_without_a_terminal(db_url: str) -> None:
    async def make() -> tuple[str, str, str]:
        app = App(db_url)
        try:
            job = await app.enqueue("a-task-with-a-long-name", _queue="a-long-queue-name")
            flow = await app.enqueue_flow("a-flow-with-a-long-name", FlowJob(
                "root-with-a-long-name", _queue="a-long-queue-name"))
            hook = await registry.create_webhook(
                app.db, app.settings, tenant="a-rather-long-tenant-name",
                url="http://127.0.0.1:9/a/rather/long/path/for/a/webhook/receiver",
                events=["all"], secret="s" * 20)
            return job.id, flow.id, hook.id
        finally:
            await app.close()

    job_id, flow_id, hook_id = asyncio.run(make())
    for args, wanted in ((("jobs", "ls"), job_id), (("flows", "ls"), flow_id),
                         (("webhooks", "ls"), hook_id)):
        listed = _cli(db_url, *args)
        assert listed.returncode == 0, listed.stderr
        assert wanted in listed.stdout and "…" not in listed.stdout, listed.stdout
