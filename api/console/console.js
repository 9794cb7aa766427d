// The CDR console: a page per concern, each reading the same JSON API a script would, with
// the token of the signed-in user (kept for this browser tab only). State lives in the URL
// (`#/kpis?source=…`), so a view can be shared.

const TOKEN_KEY = "cdr-console-token";
const main = document.getElementById("main");
const signout = document.getElementById("signout");
let timer = null;

// An element: h("td", {class: "x"}, "text", child…). Text is always text, never markup.
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// A call to the API; the JSON answer, or an ApiError with the shared error body.
async function api(path, options = {}) {
  const resp = await fetch(path, { ...options, headers: { authorization: `Bearer ${token()}`, ...(options.headers || {}) } });
  const text = await resp.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (resp.status === 401) {
    // The token stopped working (rotated, revoked): back to the sign-in.
    sessionStorage.removeItem(TOKEN_KEY);
    clearInterval(timer);
    signIn("The API refused the token; sign in again.");
    throw new ApiError(401, body);
  }
  if (!resp.ok) throw new ApiError(resp.status, body);
  return body;
}

function message(text, error = false) { return h("div", { class: error ? "message error" : "message", role: "status" }, text); }
function refusal(e) { return e.status === 403 ? `Refused: ${e.message}` : `Error: ${e.message}`; }

const fmt = {
  n: (v) => (v === null || v === undefined ? "—" : Number(v).toLocaleString("en-US")),
  pct: (v) => (v === null || v === undefined ? "—" : `${(v * 100).toFixed(1)} %`),
  s: (v) => (v === null || v === undefined ? "—" : `${Number(v).toFixed(1)} s`),
  t: (v) => (v ? new Date(v).toISOString().replace(".000Z", "Z") : "—"),
};

function card(id, label, value) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value", id }, value));
}

function table(columns, rows, onRow) {
  return h("table", {},
    h("thead", {}, h("tr", {}, columns.map(([, title]) => h("th", {}, title)))),
    h("tbody", {}, rows.map((row) => h("tr", onRow ? { class: "clickable", onclick: () => onRow(row) } : {},
      columns.map(([key, , render]) => h("td", {}, render ? render(row[key], row) : row[key] ?? "—"))))));
}

// The hash's page and parameters.
function location() {
  const [page, query] = (window.location.hash.slice(2) || "pipeline").split("?");
  return { page, params: new URLSearchParams(query || "") };
}

function go(page, params) {
  const q = new URLSearchParams([...params].filter(([, v]) => v !== ""));
  const hash = `#/${page}${q.toString() ? `?${q}` : ""}`;
  if (window.location.hash === hash) route(); else window.location.hash = hash;
}

// A filter form whose fields come from and go to the URL.
function filterForm(page, params, fields, extra = []) {
  const form = h("form", { class: "filters", id: `${page}-form` },
    fields.map(([name, label, type]) => h("label", {}, label,
      type === "checkbox"
        ? h("input", { name, type: "checkbox", checked: params.get(name) === "true" })
        : h("input", { name, value: params.get(name) || "", placeholder: type || "" }))),
    extra,
    h("button", { type: "submit", id: `${page}-apply` }, "Apply"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [name, , type] of fields) {
      const input = form.elements[name];
      if (type === "checkbox") { if (input.checked) q.set(name, "true"); } else if (input.value.trim()) q.set(name, input.value.trim());
    }
    go(page, q);
  });
  return form;
}

// --- Sign-in ------------------------------------------------------------------------------

function signIn(note) {
  signout.hidden = true;
  const input = h("input", { id: "token", type: "password", autocomplete: "off", placeholder: "API token" });
  const status = h("div");
  const form = h("form", { class: "panel signin", id: "signin" },
    h("h1", {}, "Sign in"),
    h("p", {}, "A token of the API (read or admin role); it is kept for this browser tab only."),
    note ? message(note, true) : null,
    h("label", {}, "Token", input), h("p"), h("button", { type: "submit", id: "signin-submit" }, "Sign in"), status);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const candidate = input.value.trim();
    const resp = await fetch("/sync-status", { headers: { authorization: `Bearer ${candidate}` } }).catch(() => null);
    if (resp && resp.ok) {
      sessionStorage.setItem(TOKEN_KEY, candidate);
      route();
      return;
    }
    const why = !resp ? "The API did not answer." : resp.status === 401 ? "This token is not one of this API's."
      : resp.status === 403 ? "This token may not read CDRs." : `The API answered ${resp.status}.`;
    status.replaceChildren(message(why, true));
  });
  main.replaceChildren(form);
}

// --- Pipeline -----------------------------------------------------------------------------

function metricValues(text, name) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = line.match(/^(\w+)(\{([^}]*)\})?\s+([-0-9.eE+]+)/);
    if (!m || m[1] !== name) continue;
    const labels = Object.fromEntries((m[3] || "").split(",").filter(Boolean).map((kv) => {
      const [k, v] = kv.split("=");
      return [k, v.replace(/^"|"$/g, "")];
    }));
    out[JSON.stringify(labels)] = { labels, value: Number(m[4]) };
  }
  return Object.values(out);
}

async function pipeline() {
  const cards = h("div", { class: "cards" });
  const queues = h("div", { class: "panel" });
  const failed = h("div", { class: "panel" });
  const notice = h("div");
  const rebuild = h("button", { type: "button", id: "start-reindex", class: "plain", onclick: async () => {
    try {
      const job = await api("/reindex", { method: "POST" });
      notice.replaceChildren(message(`Rebuild queued: job ${job.job_id}`));
    } catch (e) { notice.replaceChildren(message(refusal(e), true)); }
  } }, "Rebuild the search index");
  main.replaceChildren(h("h1", {}, "Pipeline"), cards, notice,
    h("h2", {}, "Queues"), queues, h("h2", {}, "Recent failures"), failed, h("p", {}, rebuild));
  let last = null;
  const refresh = async () => {
    const [sync, metrics, jobs, counts] = await Promise.all([
      api("/sync-status"),
      fetch("/metrics", { headers: { authorization: `Bearer ${token()}` } }).then((r) => (r.ok ? r.text() : "")),
      api("/jobs?status=failed&limit=20"),
      api("/jobs/counts"),
    ]);
    const now = performance.now();
    const rate = last ? Math.max(0, (sync.database_count - last.count) / ((now - last.at) / 1000)) : null;
    last = { count: sync.database_count, at: now };
    cards.replaceChildren(
      card("stat-in-sync", "Index in sync", sync.in_sync ? "yes" : "no"),
      card("stat-stored", "CDRs stored", fmt.n(sync.database_count)),
      card("stat-indexed", "CDRs indexed", fmt.n(sync.index_count)),
      card("stat-backlog", "Index backlog", fmt.n(sync.backlog)),
      card("stat-lag", "Oldest unindexed", sync.oldest_unindexed_age_seconds == null ? "—" : `${sync.oldest_unindexed_age_seconds} s`),
      card("stat-rate", "Ingest rate", rate === null ? "…" : `${Math.round(rate).toLocaleString("en-US")} CDRs/s`),
      card("stat-refused", "Refused by the index", fmt.n(sync.refused)));
    const consumers = Object.fromEntries(metricValues(metrics, "cdr_queue_consumers").map((m) => [m.labels.queue, m.value]));
    const depths = metricValues(metrics, "cdr_queue_depth").map((m) => ({ queue: m.labels.queue, depth: m.value, consumers: consumers[m.labels.queue] }));
    const ingest = depths.find((d) => d.queue.endsWith(".ingest"));
    const parked = depths.filter((d) => d.queue.endsWith(".dead"));
    const sum = (rows) => rows.reduce((total, d) => total + d.depth, 0);
    if (depths.length) {
      cards.append(card("stat-waiting", "Jobs waiting", fmt.n(sum(depths) - sum(parked))),
        card("stat-parked", "Jobs parked (failed)", fmt.n(sum(parked))));
    }
    const days = Math.round(counts.window_seconds / 86400);
    for (const [status, label] of [["enqueued", "Jobs enqueued"], ["processing", "Jobs processing"], ["retrying", "Jobs retrying"],
      ["succeeded", "Jobs succeeded"], ["failed", "Jobs failed"]]) {
      cards.append(card(`stat-jobs-${status}`, days > 0 ? `${label} (${days} d)` : label, fmt.n(counts[status])));
    }
    cards.append(card("stat-workers", "Workers taking ingest jobs", ingest && ingest.consumers !== undefined ? fmt.n(ingest.consumers) : "—"));
    queues.replaceChildren(depths.length
      ? table([["queue", "Queue"], ["depth", "Waiting", fmt.n], ["consumers", "Consumers", fmt.n]], depths)
      : message("No queue figures (the broker did not answer)."));
    const items = jobs.items || [];
    failed.replaceChildren(items.length
      ? table([["id", "Job"], ["kind", "Kind"], ["error_code", "Code"], ["error", "Error"], ["finished_at", "Failed at", fmt.t],
        ["retry", "", (_, job) => h("button", { type: "button", class: "plain retry", "data-job": job.id, onclick: async (ev) => {
          ev.stopPropagation();
          try {
            await api(`/jobs/${encodeURIComponent(job.id)}/retry`, { method: "POST" });
            notice.replaceChildren(message(`Job ${job.id} queued again.`));
          } catch (e) { notice.replaceChildren(message(refusal(e), true)); }
        } }, "Retry")]], items)
      : message("No failed jobs."));
  };
  await refresh();
  timer = setInterval(() => refresh().catch((e) => notice.replaceChildren(message(refusal(e), true))), 2000);
}

// --- KPIs ---------------------------------------------------------------------------------

const STATS_FIELDS = [["from", "From", "2026-03-01"], ["to", "To (exclusive)", "2026-03-02"], ["source", "Source"],
  ["account_code", "Account"], ["direction", "Direction"], ["disposition", "Disposition"], ["dest_country", "Country"],
  ["interval", "Interval", "hour"], ["top", "Top N", "10"], ["peak", "Peak concurrency", "checkbox"]];

function chart(target, title, times, series) {
  const width = Math.max(280, target.clientWidth - 24);
  const opts = { title, width, height: 220, scales: { x: { time: true } },
    series: [{}, ...series.map(([label, stroke]) => ({ label, stroke, width: 2 }))] };
  return new uPlot(opts, [times, ...series.map(([, , data]) => data)], target);
}

async function kpis(params) {
  const out = h("div");
  main.replaceChildren(h("h1", {}, "KPIs"), filterForm("kpis", params, STATS_FIELDS), out);
  // The figures and charts come first, from a request the rollups answer from their
  // coarsest buckets; countries (hourly rollups) and per-number rankings (computed by the
  // index from every CDR) follow in their own request.
  const top = params.get("top");
  const q = new URLSearchParams(params);
  q.delete("top");
  let stats;
  try { stats = await api(`/stats?${q}`); } catch (e) { out.replaceChildren(message(refusal(e), true)); return; }
  const peak = stats.peak_concurrent_calls && stats.peak_concurrent_calls.calls;
  out.replaceChildren(
    h("div", { class: "cards" },
      card("kpi-total_calls", "Attempts", fmt.n(stats.total_calls)),
      card("kpi-answered_calls", "Answered", fmt.n(stats.answered_calls)),
      card("kpi-asr", "ASR", fmt.pct(stats.asr)),
      card("kpi-acd", "ACD", fmt.s(stats.acd)),
      card("kpi-ner", "NER", fmt.pct(stats.ner)),
      card("kpi-total_minutes", "Minutes", fmt.n(Math.round(stats.total_minutes))),
      card("kpi-peak", "Peak concurrent calls", peak === undefined ? "—" : fmt.n(peak)),
      card("kpi-revenue", "Revenue", stats.revenue), card("kpi-cost", "Cost", stats.cost), card("kpi-margin", "Margin", stats.margin),
      card("kpi-answered_by", "Answered by", stats.answered_by)));
  const times = stats.histogram.map((b) => Date.parse(b.start) / 1000);
  const calls = h("div", { class: "panel", id: "chart-calls" });
  const ratio = h("div", { class: "panel", id: "chart-asr" });
  const acd = h("div", { class: "panel", id: "chart-acd" });
  const minutes = h("div", { class: "panel", id: "chart-minutes" });
  out.append(calls, ratio, acd, minutes);
  chart(calls, "Attempts and answered", times, [["attempts", "#1f6feb", stats.histogram.map((b) => b.calls)],
    ["answered", "#2e7d32", stats.histogram.map((b) => b.answered)]]);
  chart(ratio, "ASR", times, [["ASR", "#b26a00", stats.histogram.map((b) => b.asr)]]);
  chart(acd, "ACD (seconds)", times, [["ACD", "#6a3fb5", stats.histogram.map((b) => b.acd)]]);
  chart(minutes, "Billable minutes", times, [["minutes", "#00838f", stats.histogram.map((b) => b.total_billsec / 60)]]);
  const bars = (title, rows, key) => {
    if (!rows || !rows.length) return null;
    const max = Math.max(...rows.map((r) => r.calls));
    return h("div", { class: "panel bars" }, h("h2", {}, title), table([[key, title], ["calls", "Calls", fmt.n],
      ["bar", "", (_, r) => h("div", { class: "fill", style: `width:${Math.round((100 * r.calls) / max)}%` })]], rows));
  };
  const rankings = h("div", { id: "kpi-rankings", "aria-busy": "true" }, message(top ? "Ranking numbers…" : "Counting countries…"));
  out.append(rankings);
  const ranked = new URLSearchParams(params);
  ranked.set("breakdown", "dest_country");
  const asked = performance.now();
  api(`/stats?${ranked}`).then((r) => {
    rankings.replaceChildren(...[bars("Top destinations", r.top_destinations, "number"),
      bars("Top sources", r.top_sources, "number"), bars("Countries", r.by_dest_country, "key")].filter(Boolean));
    if (!rankings.children.length) rankings.append(message("No calls to rank."));
  }).catch((e) => rankings.replaceChildren(message(refusal(e), true))).finally(() => {
    // How long the rankings took after the figures (the benchmark reads it).
    rankings.dataset.loadedMs = String(Math.round(performance.now() - asked));
    rankings.setAttribute("aria-busy", "false");
  });
}

// --- Search -------------------------------------------------------------------------------

const SEARCH_FIELDS = [["from", "From", "2026-03-01"], ["to", "To (exclusive)"], ["source", "Source"], ["src_number", "Caller (prefix*)"],
  ["dest_number", "Callee (prefix*)"], ["disposition", "Disposition"], ["account_code", "Account"], ["dest_country", "Country"],
  ["min_billsec", "Min billsec"], ["sort", "Sort", "start_time:desc"]];

async function search(params) {
  const out = h("div");
  const record = h("div");
  const notice = h("div");
  const filters = new URLSearchParams([...params].filter(([k]) => k !== "cursor" && k !== "back"));
  const exportIt = h("button", { type: "button", class: "plain", id: "export-this", onclick: async () => {
    try {
      const job = await api(`/exports?${filters}&format=csv`, { method: "POST" });
      notice.replaceChildren(message("Export queued: "), h("a", { href: `#/jobs?id=${job.job_id}`, id: "export-job" }, job.job_id));
    } catch (e) { notice.replaceChildren(message(refusal(e), true)); }
  } }, "Export this");
  main.replaceChildren(h("h1", {}, "Search"), filterForm("search", filters, SEARCH_FIELDS), h("p", {}, exportIt), notice, out, record);
  const q = new URLSearchParams(filters);
  q.set("limit", "25");
  if (params.get("cursor")) q.set("cursor", params.get("cursor"));
  let page;
  try { page = await api(`/search?${q}`); } catch (e) { out.replaceChildren(message(refusal(e), true)); return; }
  const back = (params.get("back") || "").split(",").filter(Boolean);
  const pager = h("div", { class: "pager" },
    h("span", { id: "search-total" }, `${fmt.n(page.total)} CDRs`),
    back.length || params.get("cursor") ? h("button", { type: "button", class: "plain", id: "search-prev", onclick: () => {
      const p = new URLSearchParams(filters);
      const prev = back.slice(0, -1);
      if (back.length && back[back.length - 1] !== "-") p.set("cursor", back[back.length - 1]);
      if (prev.length) p.set("back", prev.join(","));
      go("search", p);
    } }, "Previous") : null,
    page.next_cursor ? h("button", { type: "button", class: "plain", id: "search-next", onclick: () => {
      const p = new URLSearchParams(filters);
      p.set("cursor", page.next_cursor);
      p.set("back", [...back, params.get("cursor") || "-"].join(","));
      go("search", p);
    } }, "Next") : null);
  out.replaceChildren(pager, h("div", { class: "panel", id: "search-results" }, table([["start_time", "Start", fmt.t], ["source", "Source"],
    ["src_number", "Caller"], ["dest_number", "Callee"], ["duration", "Duration"], ["billsec", "Billsec"], ["disposition", "Disposition"],
    ["call_id", "Call id"]], page.items, (row) => record.replaceChildren(h("h2", {}, `CDR ${row.call_id}`),
    h("pre", { id: "search-record" }, JSON.stringify(row, null, 2))))));
}

// --- Jobs ---------------------------------------------------------------------------------

async function jobs(params) {
  const input = h("input", { name: "id", id: "job-id", value: params.get("id") || "", placeholder: "job id (the Location of an import)" });
  const form = h("form", { class: "filters", id: "jobs-form" }, h("label", {}, "Job", input), h("button", { type: "submit" }, "Look up"));
  form.addEventListener("submit", (ev) => { ev.preventDefault(); go("jobs", new URLSearchParams({ id: input.value.trim() })); });
  const out = h("div");
  main.replaceChildren(h("h1", {}, "Jobs"), form, out);
  const id = params.get("id");
  if (!id) return;
  try {
    const job = await api(`/jobs/${encodeURIComponent(id)}`);
    out.replaceChildren(h("div", { class: "cards" },
      card("job-status", "Status", job.status), card("job-kind", "Kind", job.kind), card("job-attempts", "Attempts", job.attempts),
      card("job-enqueued", "Queued", fmt.t(job.enqueued_at)), card("job-finished", "Finished", fmt.t(job.finished_at)),
      ...Object.entries(job.counts).map(([k, v]) => card(`job-count-${k}`, k, fmt.n(v)))),
      job.error ? message(`${job.error_code}: ${job.error}`, true) : null,
      job.detail && job.detail.download && job.status === "succeeded"
        ? h("p", {}, h("button", { type: "button", id: "job-download", onclick: () => download(job) }, "Download")) : null,
      h("pre", { id: "job-json" }, JSON.stringify(job, null, 2)));
  } catch (e) { out.replaceChildren(message(e.status === 404 ? `No job ${id}` : refusal(e), true)); }
}

async function download(job) {
  const resp = await fetch(job.detail.download, { headers: { authorization: `Bearer ${token()}` } });
  const url = URL.createObjectURL(await resp.blob());
  const a = h("a", { href: url, download: `cdrs-${job.id}.${job.detail.format}` });
  document.body.append(a);
  a.click();
  a.remove();
}

// --- Alerts -------------------------------------------------------------------------------

async function alerts() {
  const out = h("div");
  main.replaceChildren(h("h1", {}, "Alerts"), out);
  try {
    const [rules, events] = await Promise.all([api("/alerts/rules"), api("/alerts?limit=50")]);
    out.replaceChildren(h("h2", {}, "Rules"), h("div", { class: "panel", id: "alert-rules" }, rules.items.length
      ? table([["name", "Rule"], ["metric", "Metric"], ["condition", "Condition"], ["threshold", "Threshold"],
        ["firing", "State", (v) => h("span", { class: v ? "bad" : "ok" }, v ? "firing" : "ok")], ["last_value", "Last reading"],
        ["last_evaluated_at", "Read at", fmt.t]], rules.items)
      : message("No rules.")),
    h("h2", {}, "History"), h("div", { class: "panel", id: "alert-events" }, events.items.length
      ? table([["at", "At", fmt.t], ["rule_name", "Rule"], ["state", "State"], ["value", "Value"], ["attempts", "Attempts"],
        ["delivered_at", "Notified", fmt.t]], events.items)
      : message("Nothing fired yet.")));
  } catch (e) { out.replaceChildren(message(refusal(e), true)); }
}

// --- Routing ------------------------------------------------------------------------------

const PAGES = { pipeline, kpis, search, jobs, alerts };

async function route() {
  clearInterval(timer);
  if (!token()) { signIn(); return; }
  signout.hidden = false;
  const { page, params } = location();
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("current", a.getAttribute("href") === `#/${page}`);
  const render = PAGES[page] || pipeline;
  const started = performance.now();
  main.setAttribute("aria-busy", "true");
  try { await render(params); } catch (e) { if (e.status !== 401) main.append(message(refusal(e), true)); }
  // How long the page took, its API calls included (the tests read it).
  main.dataset.renderMs = String(Math.round(performance.now() - started));
  main.setAttribute("aria-busy", "false");
  main.dataset.page = page;
}

signout.addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); route(); });
window.addEventListener("hashchange", route);
route();
