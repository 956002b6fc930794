// The jobtrack dashboard: plain JavaScript, no build step, no third-party code.
//
// - Every call to the API carries the key the user typed as `Authorization: Bearer`; the key
//   stays in sessionStorage (localStorage when "remember" is ticked).
// - Status values, event types and colours come from the status contract the server embeds
//   (#jobtrack-contract, rendered from jobtrack/domain/status.py): no status is spelled here.
// - Live updates read GET /events as Server-Sent Events through fetch() (EventSource cannot
//   send the Authorization header), apply each event to what is shown, and reconnect with
//   Last-Event-ID, so nothing is missed across a reconnect.
// - All text goes into the page as text nodes (textContent): data never becomes markup.
(() => {
  "use strict";

  const C = JSON.parse(document.getElementById("jobtrack-contract").textContent);
  const JOB = C.JobStatus;
  const PHASE = C.PhaseStatus;
  const EV = C.EventType;
  const JOB_STATUSES = Object.values(JOB);
  const TERMINAL = new Set(C.terminal);
  const RETRYABLE = new Set(C.retryable);
  const FLOW_TERMINAL = new Set(C.flowTerminal);
  const JOB_EVENTS = new Set(Object.entries(EV).filter(([k]) => k.startsWith("JOB_")).map(([, v]) => v));
  const FLOW_EVENTS = new Set(Object.entries(EV).filter(([k]) => k.startsWith("FLOW_")).map(([, v]) => v));

  const KEY_NAME = "jobtrack.apiKey";
  const PAGE_SIZE = 50;
  const MAX_CACHED = 5000;       // jobs remembered from events beyond those shown
  const STALL_MS = 45000;        // no byte (not even a keep-alive) for this long: reconnect
  const QUEUES_EVERY_MS = 30000; // counts also change by time (oldest pending age)

  const $ = (id) => document.getElementById(id);

  const state = {
    key: null,
    jobs: new Map(),            // jobId -> newest known job (full, or a delta from an event)
    list: [],                   // jobIds of the jobs list, newest first
    nextCursor: null,
    jobsSeq: 0,
    flows: new Map(),           // flowId -> flow summary
    flowList: [],
    flowCursor: null,
    flowsSeq: 0,
    queues: [],
    workers: [],                // GET /workers (admin keys only); null: not allowed
    tasks: [],                  // GET /tasks: the task declarations workers recorded
    selectedJob: null,
    history: [],
    selectedFlow: null,
    tree: null,                 // {id, children: [...]}: the selected flow's job tree
    busy: false,
    open: new Set(),            // <details> the user opened in the job panel
    fetching: new Set(),
    lastEventId: null,
    retryMs: 1000,
    streamGen: 0,
    streamCtrl: null,
    loaded: false,
    timers: {},
  };

  // --- DOM helpers ---------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "disabled" || k === "open") el[k] = Boolean(v);
      else el.setAttribute(k, String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : String(c)); // a string becomes a text node
    }
    return el;
  }

  /** Replace `el`'s content by `build()` only when `sig` changed since the last time. */
  function patch(el, sig, build) {
    if (el.__sig === sig) return;
    el.__sig = sig;
    el.replaceChildren(...[build()].flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  }

  /**
   * Keep one <tr> per key, in order, rebuilding a cell only when its signature changed: a
   * live update never replaces the row under the pointer. `rowFor(key)` answers
   * `{cells: [[sig, build], ...], selected, onclick, data}`.
   */
  function syncRows(tbody, keys, rowFor) {
    const old = new Map(Array.from(tbody.children, (tr) => [tr.__key, tr]));
    let prev = null;
    for (const key of keys) {
      const spec = rowFor(key);
      let tr = old.get(key);
      if (tr) {
        old.delete(key);
      } else {
        tr = h("tr", {dataset: spec.data || {}, tabindex: spec.onclick ? 0 : null});
        tr.__key = key;
        if (spec.onclick) {
          tr.addEventListener("click", (e) => { if (!e.target.closest("button")) spec.onclick(); });
          tr.addEventListener("keydown", (e) => { if (e.key === "Enter" && e.target === tr) spec.onclick(); });
        }
      }
      tr.classList.toggle("selected", Boolean(spec.selected));
      spec.cells.forEach(([sig, build, cls], i) => {
        const td = tr.children[i] || tr.appendChild(document.createElement("td"));
        if (cls) td.className = cls;
        patch(td, sig, build);
      });
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== tr) tbody.insertBefore(tr, want);
      prev = tr;
    }
    for (const tr of old.values()) tr.remove();
  }

  const sig = (...parts) => JSON.stringify(parts);

  function badge(kind, status) {
    if (status === null || status === undefined) return h("span", {class: "muted"}, "—");
    return h("span", {class: "badge", dataset: {[kind + "Status"]: status}}, status);
  }

  function pct(progress) {
    if (!progress || progress.percentage === null || progress.percentage === undefined) return null;
    return Math.max(0, Math.min(100, Number(progress.percentage)));
  }

  function fmtPct(p) {
    return (Number.isInteger(p) ? String(p) : p.toFixed(1)) + "%";
  }

  /** A progress bar: `progress` is `{done, total, percentage}` or null. */
  function bar(progress, kind, status) {
    const p = pct(progress);
    const fill = h("div", {class: "fill", dataset: status ? {[kind + "Status"]: status} : {}});
    fill.style.width = (p === null ? 0 : p) + "%";
    const done = progress ? progress.done : null;
    const total = progress && progress.total !== null && progress.total !== undefined ? progress.total : "?";
    let label;
    if (p !== null) label = fmtPct(p) + (done !== null && done !== undefined ? ` (${done}/${total})` : "");
    else label = done ? `${done} done` : "—";
    return h("div", {class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100,
                     "aria-valuenow": p === null ? null : p},
             h("div", {class: "track"}, fill), h("span", {class: "label"}, label));
  }

  function fmtTime(iso) {
    if (!iso) return h("span", {class: "muted"}, "—");
    const d = new Date(iso);
    return h("time", {datetime: iso, title: iso}, Number.isNaN(d.getTime()) ? iso : d.toLocaleString());
  }

  function shortId(id) {
    return id ? "…" + String(id).slice(-8) : "";
  }

  function fmtAge(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.round(seconds);
    if (s < 120) return `${s} s`;
    if (s < 7200) return `${Math.round(s / 60)} min`;
    return `${(s / 3600).toFixed(1)} h`;
  }

  function json(value) {
    return h("pre", {class: "json"}, JSON.stringify(value, null, 2));
  }

  // --- errors and the API ----------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message, details, retryAfter) {
      super(message);
      this.status = status;
      this.code = code;
      this.details = details;
      this.retryAfter = retryAfter;
    }
  }

  async function errorOf(res) {
    let body = null;
    try { body = await res.json(); } catch (_) { body = null; }
    const e = body && body.error;
    const message = e && e.message ? e.message : `HTTP ${res.status} ${res.statusText}`.trim();
    return new ApiError(res.status, e ? e.code : null, message, e ? e.details : null,
                        Number(res.headers.get("Retry-After")) || null);
  }

  function showError(err) {
    let text = err && err.message ? err.message : String(err);
    if (err instanceof ApiError && err.status) text += ` (${err.status}${err.code ? " " + err.code : ""})`;
    $("error-text").textContent = text;
    $("error").hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error-text").textContent = "";
  }

  /** Call the API with the key; answers the parsed JSON, throws an ApiError. */
  async function api(path, {method = "GET", body} = {}) {
    const key = state.key;
    const headers = {Authorization: "Bearer " + key, Accept: "application/json"};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(path, {method, headers, cache: "no-store",
                               body: body === undefined ? undefined : JSON.stringify(body)});
    } catch (err) {
      throw new ApiError(0, "network_error", `cannot reach the server: ${err.message}`);
    }
    if (!res.ok) {
      const err = await errorOf(res);
      if (err.status === 401 && key === state.key) { // a wrong or revoked key: drop it
        forgetKey();
        disconnect();
      }
      throw err;
    }
    return res.status === 204 ? null : res.json();
  }

  function report(promise) {
    return promise.catch((err) => { showError(err); });
  }

  // --- the model: jobs, flows, queues ------------------------------------------------------

  /** Merge a job (full, or an event's delta) into what is known; the newer write wins. */
  function storeJob(incoming) {
    const id = incoming.jobId;
    const cur = state.jobs.get(id);
    let next;
    if (!cur) next = {...incoming};
    else if ((incoming.updatedAt || "") >= (cur.updatedAt || "")) next = {...cur, ...incoming};
    else next = {...incoming, ...cur}; // an older snapshot only fills fields we lack
    delete next.children;
    state.jobs.set(id, next);
    return next;
  }

  function storeFlow(incoming) {
    const id = incoming.flowId;
    const cur = state.flows.get(id);
    const next = cur && (cur.updatedAt || "") > (incoming.updatedAt || "") ? {...incoming, ...cur}
                                                                           : {...cur, ...incoming};
    delete next.jobs;
    state.flows.set(id, next);
    return next;
  }

  function treeIds(node, into) {
    if (!node) return into;
    into.add(node.id);
    node.children.forEach((c) => treeIds(c, into));
    return into;
  }

  /** Forget jobs that are shown nowhere once too many were remembered from events. */
  function prune() {
    if (state.jobs.size <= MAX_CACHED) return;
    const keep = treeIds(state.tree, new Set(state.list));
    keep.add(state.selectedJob);
    for (const id of state.jobs.keys()) {
      if (state.jobs.size <= MAX_CACHED * 0.8) break;
      if (!keep.has(id)) state.jobs.delete(id);
    }
  }

  function jobMatches(job) {
    const f = currentJobFilter();
    return (!f.status || job.status === f.status) && (!f.queueName || job.queueName === f.queueName);
  }

  function flowMatches(flow) {
    const status = $("filter-flow-status").value;
    return !status || flow.status === status;
  }

  function currentJobFilter() {
    return {status: $("filter-status").value, queueName: $("filter-queue").value};
  }

  /** Insert an id into a newest-first list of ids (ids are time-ordered) if it belongs to
   * the pages loaded so far. */
  function insertSorted(list, id, morePages) {
    if (list.includes(id)) return;
    if (morePages && list.length && id < list[list.length - 1]) return;
    let i = 0;
    while (i < list.length && list[i] > id) i += 1;
    list.splice(i, 0, id);
  }

  async function loadQueues() {
    state.queues = await api("/queues");
    renderQueues();
    renderQueueFilter();
  }

  /** Workers (an admin key's view; a tenant key gets a 403: said, not an error) and tasks. */
  async function loadRegistry() {
    const [workers, tasks] = await Promise.all([
      api("/workers").catch((err) => { if (err.status === 403) return null; throw err; }),
      api("/tasks"),
    ]);
    state.workers = workers;
    state.tasks = tasks;
    renderRegistry();
  }

  async function loadJobs(more) {
    const seq = ++state.jobsSeq;
    const f = currentJobFilter();
    const q = new URLSearchParams({limit: String(PAGE_SIZE)});
    if (f.status) q.set("status", f.status);
    if (f.queueName) q.set("queueName", f.queueName);
    if (more && state.nextCursor) q.set("cursor", state.nextCursor);
    const page = await api("/jobs?" + q);
    if (seq !== state.jobsSeq) return; // the filter changed meanwhile
    const ids = page.items.map((j) => storeJob(j).jobId);
    state.list = more ? state.list.concat(ids.filter((id) => !state.list.includes(id))) : ids;
    state.nextCursor = page.nextCursor;
    renderJobs();
  }

  async function loadFlows(more) {
    const seq = ++state.flowsSeq;
    const q = new URLSearchParams({limit: String(PAGE_SIZE)});
    const status = $("filter-flow-status").value;
    if (status) q.set("status", status);
    if (more && state.flowCursor) q.set("cursor", state.flowCursor);
    const page = await api("/flows?" + q);
    if (seq !== state.flowsSeq) return;
    const ids = page.items.map((f) => storeFlow(f).flowId);
    state.flowList = more ? state.flowList.concat(ids.filter((id) => !state.flowList.includes(id))) : ids;
    state.flowCursor = page.nextCursor;
    renderFlows();
  }

  async function loadHistory(id) {
    const history = await api(`/jobs/${encodeURIComponent(id)}/history`);
    if (state.selectedJob === id) {
      state.history = history;
      renderJob();
    }
  }

  async function selectJob(id) {
    state.selectedJob = id;
    state.history = [];
    renderAll();
    const [job] = await Promise.all([api(`/jobs/${encodeURIComponent(id)}`), loadHistory(id)]);
    storeJob(job);
    renderAll();
  }

  function toTree(node) {
    storeJob(node);
    return {id: node.jobId, children: (node.children || []).map(toTree)};
  }

  async function loadFlow(id) {
    const flow = await api(`/flows/${encodeURIComponent(id)}?include=jobs`);
    if (state.selectedFlow !== id) return;
    storeFlow(flow);
    state.tree = flow.jobs ? toTree(flow.jobs) : null;
    renderFlow();
    renderFlows();
  }

  function selectFlow(id) {
    state.selectedFlow = id;
    state.tree = null;
    renderFlow();
    renderFlows();
    return loadFlow(id);
  }

  async function loadAll() {
    state.loaded = true;
    await Promise.all([loadQueues(), loadJobs(false), loadFlows(false), loadRegistry()]);
    clearError();
  }

  /** Run `fn` at most once per `ms`, later rather than now. */
  function soon(name, ms, fn) {
    if (state.timers[name]) return;
    state.timers[name] = setTimeout(() => {
      state.timers[name] = null;
      if (state.key) report(fn());
    }, ms);
  }

  async function fetchIntoList(id) {
    if (state.fetching.has(id)) return;
    state.fetching.add(id);
    try {
      const job = storeJob(await api(`/jobs/${encodeURIComponent(id)}`));
      if (jobMatches(job)) insertSorted(state.list, id, state.nextCursor !== null);
      scheduleRender();
    } finally {
      state.fetching.delete(id);
    }
  }

  // --- live updates ------------------------------------------------------------------------

  function onJobEvent(type, data) {
    const before = state.jobs.get(data.jobId);
    const job = storeJob(data);
    const id = job.jobId;
    const shown = state.list.includes(id);
    const filtered = Boolean(currentJobFilter().status || currentJobFilter().queueName);
    if (type === EV.JOB_CREATED) {
      if (jobMatches(job)) insertSorted(state.list, id, state.nextCursor !== null);
    } else if (shown && !jobMatches(job)) {
      state.list = state.list.filter((x) => x !== id);
    } else if (!shown && filtered && jobMatches(job)) {
      report(fetchIntoList(id)); // it moved into the filter: its delta lacks fields to show
    }
    const statusChanged = !before || before.status !== job.status;
    if (id === state.selectedJob && statusChanged) {
      soon("history", 100, () => loadHistory(id));
    }
    if (state.selectedFlow && job.flowId === state.selectedFlow && !treeIds(state.tree, new Set()).has(id)) {
      soon("tree", 300, () => loadFlow(state.selectedFlow));
    }
    if (type === EV.JOB_CREATED || statusChanged) soon("queues", 500, loadQueues);
    prune();
  }

  function onFlowEvent(type, data) {
    const flow = storeFlow(data);
    const shown = state.flowList.includes(flow.flowId);
    if (type === EV.FLOW_CREATED) {
      if (flowMatches(flow)) insertSorted(state.flowList, flow.flowId, state.flowCursor !== null);
    } else if (shown && !flowMatches(flow)) {
      state.flowList = state.flowList.filter((x) => x !== flow.flowId);
    } else if (!shown && flowMatches(flow) && $("filter-flow-status").value) {
      insertSorted(state.flowList, flow.flowId, state.flowCursor !== null);
    }
  }

  function onEnvelope(envelope) {
    if (!envelope || typeof envelope !== "object" || !envelope.data) return;
    if (JOB_EVENTS.has(envelope.type) && envelope.data.jobId) onJobEvent(envelope.type, envelope.data);
    else if (FLOW_EVENTS.has(envelope.type) && envelope.data.flowId) onFlowEvent(envelope.type, envelope.data);
    scheduleRender();
  }

  /** An SSE parser (the WHATWG event-stream format): feed it text, it calls `dispatch`. */
  function sseParser(dispatch) {
    let buffer = "";
    let data = [];
    let type = "";
    let id = null;
    return (text) => {
      buffer += text;
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          dispatch({id, type: type || "message", data: data.join("\n"), hasData: data.length > 0});
          data = [];
          type = "";
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") data.push(value);
        else if (field === "event") type = value;
        else if (field === "id" && !value.includes("\0")) id = value;
        else if (field === "retry" && /^\d+$/.test(value)) state.retryMs = Number(value);
      }
    };
  }

  function onFrame(frame) {
    if (frame.id !== null) state.lastEventId = frame.id; // the resume point, even without data
    if (!frame.hasData) return;
    let envelope;
    try { envelope = JSON.parse(frame.data); } catch (_) { return; }
    onEnvelope(envelope);
  }

  function setLive(mode, text) {
    const el = $("live");
    el.dataset.state = mode;
    el.textContent = text;
  }

  async function stream(gen) {
    let failures = 0;
    while (gen === state.streamGen) {
      setLive("connecting", "connecting…");
      const ctrl = new AbortController();
      state.streamCtrl = ctrl;
      let stall = null;
      const watch = () => { clearTimeout(stall); stall = setTimeout(() => ctrl.abort(), STALL_MS); };
      let wait = state.retryMs;
      try {
        const headers = {Authorization: "Bearer " + state.key, Accept: "text/event-stream"};
        if (state.lastEventId !== null) headers["Last-Event-ID"] = state.lastEventId;
        watch();
        const res = await fetch("/events", {headers, signal: ctrl.signal, cache: "no-store"});
        if (!res.ok) throw await errorOf(res);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        const feed = sseParser(onFrame);
        for (;;) {
          const {value, done} = await reader.read();
          if (done) break;
          watch();
          feed(value);
          if (failures >= 0) { // the stream is open: only now load, so no change falls between
            failures = -1;
            setLive("live", "live");
            if (!state.loaded) report(loadAll());
          }
        }
      } catch (err) {
        if (gen !== state.streamGen) return;
        if (err instanceof ApiError) {
          if (err.status === 401) {
            showError(err);
            forgetKey();
            disconnect();
            return;
          }
          if (err.retryAfter) wait = Math.max(wait, err.retryAfter * 1000);
        }
      } finally {
        clearTimeout(stall);
      }
      if (gen !== state.streamGen) return;
      failures = Math.max(failures, 0) + 1;
      setLive("connecting", "reconnecting…");
      await new Promise((r) => setTimeout(r, Math.min(wait * failures, 5000)));
    }
  }

  // --- rendering ------------------------------------------------------------------------

  let renderPending = false;
  function scheduleRender() {
    if (renderPending) return;
    renderPending = true;
    setTimeout(() => { renderPending = false; renderAll(); }, 30);
  }

  function renderAll() {
    renderQueues();
    renderJobs();
    renderFlows();
    renderJob();
    renderFlow();
    renderRegistry();
  }

  function renderQueues() {
    const head = $("queues-head");
    if (!head.__built) {
      head.__built = true;
      head.append(...JOB_STATUSES.map((s) => h("th", {class: "num"}, badge("job", s))),
                  h("th", {class: "num"}, "stuck"), h("th", {class: "num"}, "oldest pending"));
    }
    const byName = new Map(state.queues.map((q) => [q.queueName, q]));
    syncRows($("queues-body"), state.queues.map((q) => q.queueName), (name) => {
      const q = byName.get(name);
      const counts = q.counts || {};
      return {
        data: {queue: name},
        selected: currentJobFilter().queueName === name,
        onclick: () => { $("filter-queue").value = name; report(loadJobs(false)); renderQueues(); },
        cells: [
          [sig(name), () => h("strong", {}, name)],
          ...JOB_STATUSES.map((s) => [sig(counts[s]), () => String(counts[s] ?? 0), "num"]),
          [sig(q.stuck), () => String(q.stuck ?? 0), "num"],
          [sig(q.oldestPendingAge), () => fmtAge(q.oldestPendingAge), "num"],
        ],
      };
    });
    $("queues-empty").hidden = state.queues.length > 0;
  }

  function renderRegistry() {
    const workers = state.workers || [];
    const byId = new Map(workers.map((w) => [w.workerId, w]));
    syncRows($("workers-body"), workers.map((w) => w.workerId), (id) => {
      const w = byId.get(id);
      return {
        data: {workerId: id},
        cells: [
          [sig(id, w.host, w.pid), () => [h("span", {class: "mono", title: id}, w.host),
                                          h("span", {class: "sub mono"}, "pid " + w.pid)]],
          [sig(w.queues), () => w.queues.join(", ")],
          [sig(w.runningJobs), () => String(w.runningJobs), "num"],
          [sig(w.concurrency), () => String(w.concurrency), "num"],
          [sig(w.heartbeatAt, w.stale), () => [fmtTime(w.heartbeatAt),
                                               w.stale ? h("span", {class: "flag"}, "stale") : null]],
        ],
      };
    });
    $("workers-denied").hidden = state.workers !== null;
    $("workers-empty").hidden = state.workers === null || workers.length > 0;
    const key = (t) => t.name + "\u0000" + t.queueName;
    const byKey = new Map(state.tasks.map((t) => [key(t), t]));
    syncRows($("tasks-body"), state.tasks.map(key), (k) => {
      const t = byKey.get(k);
      const params = t.parameters.map((p) => (t.requiredParameters.includes(p) ? p : p + "?"));
      if (t.acceptsAnyData) params.push("**");
      return {
        data: {task: t.name, queue: t.queueName},
        cells: [
          [sig(t.name), () => h("strong", {}, t.name)],
          [sig(t.queueName), () => t.queueName],
          [sig(t.phases), () => t.phases.join(" → ") || "—"],
          [sig(t.maxAttempts), () => (t.maxAttempts === null ? "—" : String(t.maxAttempts)), "num"],
          [sig(params), () => h("span", {class: "mono"}, params.join(", ") || "—")],
        ],
      };
    });
    $("tasks-empty").hidden = state.tasks.length > 0;
  }

  function renderQueueFilter() {
    const select = $("filter-queue");
    const current = select.value;
    const names = state.queues.map((q) => q.queueName);
    if (current && !names.includes(current)) names.push(current);
    const s = sig(names);
    if (select.__sig === s) return;
    select.__sig = s;
    select.replaceChildren(h("option", {value: ""}, "all"), ...names.map((n) => h("option", {value: n}, n)));
    select.value = current;
  }

  function jobCells(job) {
    return [
      [sig(job.name, job.jobId), () => [
        h("button", {type: "button", class: "link", onclick: () => report(selectJob(job.jobId))}, job.name),
        h("span", {class: "sub mono", title: job.jobId}, shortId(job.jobId)),
      ]],
      [sig(job.queueName), () => job.queueName],
      [sig(job.status, job.cancelRequested), () => [
        badge("job", job.status), job.cancelRequested ? h("span", {class: "flag"}, "cancel requested") : null,
      ], "status"],
      [sig(job.step), () => job.step ?? ""],
      [sig(job.progress, job.status), () => bar(job.progress, "job", job.status)],
      [sig(job.updatedAt), () => fmtTime(job.updatedAt)],
    ];
  }

  function renderJobs() {
    syncRows($("jobs-body"), state.list, (id) => {
      const job = state.jobs.get(id) || {jobId: id};
      return {
        data: {jobId: id},
        selected: id === state.selectedJob,
        onclick: () => report(selectJob(id)),
        cells: jobCells(job),
      };
    });
    $("jobs-empty").hidden = state.list.length > 0;
    $("jobs-more").hidden = !state.nextCursor;
  }

  function flowCounts(progress) {
    if (!progress) return null;
    return h("div", {class: "counts"},
             h("span", {}, `total ${progress.total}`),
             ...JOB_STATUSES.map((s) => h("span", {}, badge("job", s), " ", String(progress[s] ?? 0))));
  }

  function flowBarProgress(flow) {
    const p = flow.progress;
    return p ? {done: p[JOB.COMPLETED] ?? null, total: p.total, percentage: p.percentage} : null;
  }

  function renderFlows() {
    syncRows($("flows-body"), state.flowList, (id) => {
      const flow = state.flows.get(id) || {flowId: id};
      return {
        data: {flowId: id},
        selected: id === state.selectedFlow,
        onclick: () => report(selectFlow(id)),
        cells: [
          [sig(flow.flowname, flow.name, id), () => [
            h("button", {type: "button", class: "link", onclick: () => report(selectFlow(id))}, flow.flowname ?? id),
            h("span", {class: "sub"}, flow.name ?? "", " · ", h("span", {class: "mono", title: id}, shortId(id))),
          ]],
          [sig(flow.status), () => badge("flow", flow.status), "status"],
          [sig(flow.progress, flow.status), () => bar(flowBarProgress(flow), "flow", flow.status)],
          [sig(flow.updatedAt), () => fmtTime(flow.updatedAt)],
        ],
      };
    });
    $("flows-empty").hidden = state.flowList.length > 0;
    $("flows-more").hidden = !state.flowCursor;
  }

  // the job panel ---------------------------------------------------------------------------

  const PARTS = ["head", "actions", "info", "progress", "phases", "error", "payloads", "history"];

  function jobPanel() {
    const body = $("job-detail-body");
    if (body.__job !== state.selectedJob) {
      body.__job = state.selectedJob;
      body.replaceChildren(...PARTS.map((p) => h("div", {class: "part-" + p + (p === "actions" ? " actions" : "")})));
      body.parts = Object.fromEntries(PARTS.map((p, i) => [p, body.children[i]]));
    }
    return body.parts;
  }

  function act(path) {
    state.busy = true;
    renderJob();
    return report((async () => {
      try {
        const job = storeJob(await api(path, {method: "POST"}));
        clearError();
        await loadHistory(job.jobId);
      } finally {
        state.busy = false;
        scheduleRender();
      }
    })());
  }

  function actionButtons(job) {
    const id = encodeURIComponent(job.jobId);
    const phases = job.phases || [];
    const running = job.status === JOB.RUNNING;
    const can = {
      cancel: !TERMINAL.has(job.status) && !job.cancelRequested,
      retry: RETRYABLE.has(job.status),
      pause: running && phases.some((p) => p.status === PHASE.RUNNING),
      resume: running && phases.some((p) => p.status === PHASE.PAUSED),
    };
    const button = (name, label, cls) => h("button", {
      type: "button", class: cls, "data-action": name, disabled: state.busy || !can[name],
      onclick: () => act(`/jobs/${id}/${name}`),
    }, label);
    return [sig(can, state.busy), () => [
      button("cancel", "Cancel", "danger"), button("retry", "Retry"),
      button("pause", "Pause"), button("resume", "Resume"),
      job.flowId ? h("button", {type: "button", onclick: () => report(selectFlow(job.flowId))}, "Open flow") : null,
    ]];
  }

  function phaseTable() {
    return h("table", {class: "grid phases"},
             h("thead", {}, h("tr", {}, h("th", {}, "phase"), h("th", {}, "status"),
                              h("th", {}, "progress"), h("th", {}, ""))), h("tbody"));
  }

  function syncPhases(tbody, job) {
    const phases = job.phases || [];
    const id = encodeURIComponent(job.jobId);
    const byName = new Map(phases.map((p) => [p.name, p]));
    const running = job.status === JOB.RUNNING;
    syncRows(tbody, phases.map((p) => p.name), (name) => {
      const p = byName.get(name);
      const action = !running ? null : p.status === PHASE.RUNNING ? "pause" : p.status === PHASE.PAUSED ? "resume" : null;
      return {
        data: {phase: name},
        cells: [
          [sig(name), () => name],
          [sig(p.status), () => badge("phase", p.status), "status"],
          [sig(p.progress, p.status), () => bar(p.progress, "phase", p.status)],
          [sig(action, state.busy), () => action && h("button", {
            type: "button", disabled: state.busy, "data-action": action,
            onclick: () => act(`/jobs/${id}/phases/${encodeURIComponent(name)}/${action}`),
          }, action === "pause" ? "Pause" : "Resume")],
        ],
      };
    });
  }

  function details(label, value) {
    if (value === null || value === undefined) return null;
    const el = h("details", {open: state.open.has(label)}, h("summary", {}, label), json(value));
    el.addEventListener("toggle", () => { if (el.open) state.open.add(label); else state.open.delete(label); });
    return el;
  }

  function renderJob() {
    const id = state.selectedJob;
    $("job-detail-empty").hidden = Boolean(id);
    if (!id) { $("job-detail-body").replaceChildren(); $("job-detail-body").__job = null; return; }
    const job = state.jobs.get(id);
    const parts = jobPanel();
    if (!job || !job.createdAt) { patch(parts.head, "loading", () => h("p", {class: "muted"}, "Loading…")); return; }
    patch(parts.head, sig(job.name, job.status, job.cancelRequested), () => h("h3", {class: "title"},
      job.name, " ", badge("job", job.status),
      job.cancelRequested ? h("span", {class: "flag"}, "cancel requested") : null));
    patch(parts.actions, ...actionButtons(job));
    patch(parts.info, sig(job.jobId, job.queueName, job.step, job.attempt, job.maxAttempts, job.priority,
                          job.flowId, job.parentJobId, job.createdAt, job.startedAt, job.completedAt, job.runAt),
          () => h("dl", {class: "kv"},
                  h("dt", {}, "id"), h("dd", {class: "mono"}, job.jobId),
                  h("dt", {}, "queue"), h("dd", {}, job.queueName),
                  h("dt", {}, "step"), h("dd", {class: "step"}, job.step ?? "—"),
                  h("dt", {}, "attempt"), h("dd", {}, `${job.attempt ?? "?"} of ${job.maxAttempts ?? "?"}`),
                  h("dt", {}, "priority"), h("dd", {}, String(job.priority ?? 0)),
                  job.flowId ? [h("dt", {}, "flow"), h("dd", {class: "mono"}, job.flowId)] : null,
                  job.parentJobId ? [h("dt", {}, "parent"), h("dd", {class: "mono"}, job.parentJobId)] : null,
                  h("dt", {}, "created"), h("dd", {}, fmtTime(job.createdAt)),
                  h("dt", {}, "run at"), h("dd", {}, fmtTime(job.runAt)),
                  h("dt", {}, "started"), h("dd", {}, fmtTime(job.startedAt)),
                  h("dt", {}, "finished"), h("dd", {}, fmtTime(job.completedAt))));
    patch(parts.progress, sig(job.progress, job.status), () => [h("h3", {}, "Progress"), bar(job.progress, "job", job.status)]);
    const phases = job.phases || [];
    patch(parts.phases, sig(phases.map((p) => p.name)),
          () => phases.length ? [h("h3", {}, "Phases"), phaseTable()] : null);
    const tbody = parts.phases.querySelector("tbody");
    if (tbody) syncPhases(tbody, job); // rows updated in place: their buttons stay put
    patch(parts.error, sig(job.error), () => job.error && [
      h("h3", {}, "Error"),
      h("div", {class: "job-error"}, job.error.message ?? JSON.stringify(job.error),
        job.error.type || job.error.code
          ? h("span", {class: "sub"}, [job.error.type, job.error.code].filter(Boolean).join(" · ")) : null),
    ]);
    patch(parts.payloads, sig(job.result, job.stats, job.data), () => [
      details("result", job.result), details("stats", job.stats), details("data", job.data),
    ]);
    patch(parts.history, sig(state.history), () => [h("h3", {}, "History"), historyTable(state.history)]);
  }

  function historyTable(history) {
    if (!history || !history.length) return h("p", {class: "muted"}, "No transitions yet.");
    return h("table", {class: "grid history"},
      h("thead", {}, h("tr", {}, h("th", {}, "at"), h("th", {}, "from → to"), h("th", {}, "step"),
                       h("th", {}, "attempt"), h("th", {}, "by"))),
      h("tbody", {}, history.map((t) => h("tr", {},
        h("td", {}, fmtTime(t.at)),
        h("td", {}, t.from ? badge("job", t.from) : h("span", {class: "muted"}, "—"), " → ", badge("job", t.to)),
        h("td", {}, t.step ?? ""), h("td", {}, String(t.attempt ?? "")), h("td", {class: "mono"}, t.by ?? "")))));
  }

  // the flow panel ---------------------------------------------------------------------------

  function syncTree(ul, nodes) {
    const old = new Map(Array.from(ul.children, (li) => [li.__key, li]));
    let prev = null;
    for (const node of nodes) {
      const job = state.jobs.get(node.id) || {jobId: node.id};
      let li = old.get(node.id);
      if (li) old.delete(node.id);
      else {
        li = h("li", {dataset: {jobId: node.id}}, h("div", {class: "node"}), h("ul"));
        li.__key = node.id;
      }
      const [line, children] = li.children;
      line.classList.toggle("selected", node.id === state.selectedJob);
      patch(line, sig(job.name, job.status, job.queueName, job.step, job.progress, job.cancelRequested), () => [
        h("button", {type: "button", class: "link", onclick: () => report(selectJob(node.id))}, job.name ?? node.id),
        badge("job", job.status),
        h("span", {class: "muted"}, job.queueName ?? ""),
        h("span", {class: "muted step"}, job.step ?? ""),
        bar(job.progress, "job", job.status),
      ]);
      syncTree(children, node.children);
      const want = prev ? prev.nextSibling : ul.firstChild;
      if (want !== li) ul.insertBefore(li, want);
      prev = li;
    }
    for (const li of old.values()) li.remove();
  }

  function renderFlow() {
    const id = state.selectedFlow;
    const body = $("flow-detail-body");
    $("flow-detail-empty").hidden = Boolean(id);
    if (!id) { body.replaceChildren(); body.__flow = null; return; }
    if (body.__flow !== id) {
      body.__flow = id;
      body.replaceChildren(h("div", {class: "flow-head"}), h("div", {class: "actions"}), h("ul", {class: "tree"}));
    }
    const [head, actions, tree] = body.children;
    const flow = state.flows.get(id);
    if (!flow) { patch(head, "loading", () => h("p", {class: "muted"}, "Loading…")); return; }
    patch(head, sig(flow), () => [
      h("h3", {class: "title"}, flow.flowname, " ", badge("flow", flow.status)),
      h("dl", {class: "kv"},
        h("dt", {}, "id"), h("dd", {class: "mono"}, flow.flowId),
        h("dt", {}, "root"), h("dd", {}, flow.name ?? "", " on ", flow.queueName ?? ""),
        h("dt", {}, "created"), h("dd", {}, fmtTime(flow.createdAt)),
        h("dt", {}, "finished"), h("dd", {}, fmtTime(flow.completedAt))),
      h("h3", {}, "Progress"), bar(flowBarProgress(flow), "flow", flow.status), flowCounts(flow.progress),
      flow.error ? h("div", {class: "job-error"}, typeof flow.error === "string" ? flow.error
                                                  : flow.error.message ?? JSON.stringify(flow.error)) : null,
    ]);
    const cancellable = !FLOW_TERMINAL.has(flow.status);
    patch(actions, sig(cancellable, state.busy), () => h("button", {
      type: "button", class: "danger", "data-action": "cancel-flow", disabled: state.busy || !cancellable,
      onclick: () => {
        state.busy = true;
        renderFlow();
        report((async () => {
          try {
            storeFlow(await api(`/flows/${encodeURIComponent(id)}/cancel`, {method: "POST"}));
            clearError();
            await loadFlow(id);
          } finally {
            state.busy = false;
            scheduleRender();
          }
        })());
      },
    }, "Cancel flow"));
    syncTree(tree, state.tree ? [state.tree] : []);
  }

  // --- the key and the connection ------------------------------------------------------------

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_NAME) || localStorage.getItem(KEY_NAME);
    } catch (_) {
      return null;
    }
  }

  function saveKey(key, remember) {
    try {
      sessionStorage.setItem(KEY_NAME, key);
      if (remember) localStorage.setItem(KEY_NAME, key);
      else localStorage.removeItem(KEY_NAME);
    } catch (_) { /* storage refused (private mode): the key lives in this page only */ }
  }

  function forgetKey() {
    try {
      sessionStorage.removeItem(KEY_NAME);
      localStorage.removeItem(KEY_NAME);
    } catch (_) { /* nothing stored */ }
  }

  /** Stop talking to the API (a bad key, or "forget"); what is shown stays until a reconnect. */
  function disconnect() {
    state.streamGen += 1;
    if (state.streamCtrl) state.streamCtrl.abort();
    state.streamCtrl = null;
    state.key = null;
    setLive("off", "not connected");
  }

  function reset() {
    Object.assign(state, {
      jobs: new Map(), list: [], nextCursor: null, flows: new Map(), flowList: [], flowCursor: null,
      queues: [], workers: [], tasks: [], selectedJob: null, history: [], selectedFlow: null, tree: null, lastEventId: null,
      loaded: false, busy: false,
    });
  }

  async function connect(key) {
    disconnect();
    reset();
    clearError();
    renderAll();
    state.key = key;
    try {
      await loadQueues(); // checks the key before anything else
    } catch (err) {
      showError(err);
      if (err.status === 401) { // a wrong key (api() dropped it): show no empty board
        $("app").hidden = true;
        $("intro").hidden = false;
      }
      return;
    }
    $("app").hidden = false;
    $("intro").hidden = true;
    const gen = ++state.streamGen;
    stream(gen);
    // if the stream cannot open (a proxy that buffers it, say), show the lists anyway
    setTimeout(() => { if (gen === state.streamGen && !state.loaded) report(loadAll()); }, 3000);
  }

  function init() {
    const statuses = $("filter-status");
    statuses.append(...JOB_STATUSES.map((s) => h("option", {value: s}, s)));
    $("filter-flow-status").append(...Object.values(C.FlowStatus).map((s) => h("option", {value: s}, s)));

    $("key-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const key = $("api-key").value.trim();
      if (!key) return;
      saveKey(key, $("remember").checked);
      $("api-key").value = "";
      connect(key);
    });
    $("forget").addEventListener("click", () => {
      forgetKey();
      disconnect();
      reset();
      renderAll();
      $("app").hidden = true;
      $("intro").hidden = false;
    });
    $("error-close").addEventListener("click", clearError);
    $("filter-status").addEventListener("change", () => report(loadJobs(false)));
    $("filter-queue").addEventListener("change", () => { report(loadJobs(false)); renderQueues(); });
    $("jobs-refresh").addEventListener("click", () => report(Promise.all([loadJobs(false), loadQueues()])));
    $("jobs-more").addEventListener("click", () => report(loadJobs(true)));
    $("filter-flow-status").addEventListener("change", () => report(loadFlows(false)));
    $("flows-refresh").addEventListener("click", () => report(loadFlows(false)));
    $("flows-more").addEventListener("click", () => report(loadFlows(true)));
    $("registry-refresh").addEventListener("click", () => report(loadRegistry()));
    setInterval(() => { if (state.key && state.loaded) report(loadQueues()); }, QUEUES_EVERY_MS);
    setInterval(() => { if (state.key && state.loaded) report(loadRegistry()); }, QUEUES_EVERY_MS);

    const key = storedKey();
    if (key) {
      try { $("remember").checked = Boolean(localStorage.getItem(KEY_NAME)); } catch (_) { /* none */ }
      connect(key);
    }
  }

  init();
})();
