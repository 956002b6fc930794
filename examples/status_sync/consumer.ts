// A TypeScript consumer of job statuses (seed 000's UI side): it polls jobtrack's HTTP API
// for the jobs of one queue and shows each status change with a UI label. It compiles
// against the generated contract (contract/jobtrack-status.ts), so it knows exactly the
// five canonical values: no upper-case variants, no dual-case checks. A value outside the
// contract is logged as unknown and makes the exit code 1.
//
//   tsc -p examples/status_sync        # writes examples/status_sync/build/
//   node examples/status_sync/build/examples/status_sync/consumer.js URL KEY [JOBS] [SECONDS]
//
// It stops once JOBS jobs of the queue (default 2) are terminal, or after SECONDS (30).

import {
  JOB_STATUS_VALUES,
  type JobStatusStatus,
  isTerminalJobStatus,
} from "../../contract/jobtrack-status";

// the few node globals used here (no @types/node needed)
declare const process: { argv: string[]; exitCode?: number };

const QUEUE = "kubegram";
const POLL_MS = 100;

/** What the UI shows for each canonical status; the compiler checks every one is here. */
const LABELS: Record<JobStatusStatus, string> = {
  pending: "Queued",
  running: "In progress",
  completed: "Done",
  failed: "Failed",
  cancelled: "Cancelled",
};

interface JobView {
  jobId: string;
  status: JobStatusStatus;
  step: string;
  error: string | null;
}

function isJobStatus(value: unknown): value is JobStatusStatus {
  return typeof value === "string" && (JOB_STATUS_VALUES as readonly string[]).includes(value);
}

const unknown: string[] = [];

/** One job of the API's JSON, or null (logged) when its status is not canonical. */
function toView(raw: unknown): JobView | null {
  if (typeof raw !== "object" || raw === null) return null;
  const job = raw as Record<string, unknown>;
  if (!isJobStatus(job["status"])) {
    unknown.push(String(job["status"]));
    console.error(`unknown status ${JSON.stringify(job["status"])} for job ${String(job["jobId"])}`);
    return null;
  }
  const error = job["error"] as { message?: unknown } | null;
  return {
    jobId: String(job["jobId"]),
    status: job["status"],
    step: String(job["step"]),
    error: error && typeof error.message === "string" ? error.message : null,
  };
}

async function poll(base: string, key: string): Promise<JobView[]> {
  const answer = await fetch(`${base}/jobs?queueName=${QUEUE}&limit=50`, {
    headers: { Authorization: `Bearer ${key}` },
  });
  if (!answer.ok) throw new Error(`GET /jobs answered ${answer.status}`);
  const body = (await answer.json()) as { items?: unknown[] };
  const views: JobView[] = [];
  for (const item of body.items ?? []) {
    const view = toView(item);
    if (view !== null) views.push(view);
  }
  return views;
}

async function main(): Promise<void> {
  const [base, key, expected = "2", seconds = "30"] = process.argv.slice(2);
  if (base === undefined || key === undefined) {
    throw new Error("usage: consumer.js URL KEY [JOBS] [SECONDS]");
  }
  const deadline = Date.now() + Number(seconds) * 1000;
  const shown = new Map<string, string>();
  const finished: Record<string, JobStatusStatus> = {};
  console.log(`watching queue ${QUEUE}`);
  while (Object.keys(finished).length < Number(expected) && Date.now() < deadline) {
    let jobs: JobView[] = [];
    try {
      jobs = await poll(base, key);
    } catch (err: unknown) {
      // the server may still be starting: try again until the deadline
      if (Date.now() >= deadline) throw err;
    }
    for (const job of jobs) {
      const line = `${LABELS[job.status]} (${job.status}, step ${job.step})` +
        (job.error === null ? "" : `: ${job.error}`);
      if (shown.get(job.jobId) !== line) {
        shown.set(job.jobId, line);
        console.log(`${job.jobId} ${line}`);
      }
      if (isTerminalJobStatus(job.status)) finished[job.jobId] = job.status;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  console.log(JSON.stringify({ finished, unknown }));
  process.exitCode = unknown.length > 0 ? 1 : 0;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exitCode = 2;
});
