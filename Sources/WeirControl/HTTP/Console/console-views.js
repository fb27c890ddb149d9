// ---- Pure helpers (no DOM): rendering to HTML strings and building API requests. ----

const STATUSES = ["stopped", "operating", "running"];

function esc(v) {
  return String(v === null || v === undefined ? "" : v)
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Number(n), u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return (u === 0 ? String(v) : v.toFixed(1)) + " " + units[u];
}

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

/** The warning triangle: a button whose text (the error and the suggested fix) shows on hover, keyboard focus
    and click or tap; `id` names the text for aria-describedby, `open` keeps it shown after a click. */
function warningHTML(w, id, open) {
  if (!w) return "";
  const text = w.message + (w.suggestion ? "\nSuggestion: " + consoleWording(w.suggestion) : "");
  const tid = "warn-" + (id || "job");
  return `<button type="button" class="warning" title="${esc(text)}" aria-label="warning" aria-describedby="${esc(tid)}" ` +
    `aria-expanded="${open ? "true" : "false"}" data-warn="${esc(id || "job")}">&#9888;</button>` +
    `<span class="warn-text" id="${esc(tid)}" role="note">${esc(text)}</span>`;
}

function statusHTML(status) {
  const s = STATUSES.includes(status) ? status : "stopped";
  return `<span class="status ${s}">${esc(status)}</span>`;
}

/** Which actions a job allows in its status (the server enforces the same rules). */
function allowedActions(job) {
  const busy = job.status === "operating";
  const running = job.status === "running";
  return {
    publish: true,
    run: !busy && !running && job.latestVersion !== null,
    stop: running,
    savepoint: running,
    drill: !busy && job.latestVersion !== null,
    remove: !busy && !running,
  };
}

/** The version a job runs: none unless it is running or operating. */
function runningVersion(job) {
  return job.status === "stopped" ? null : job.version;
}

function jobRowHTML(job, selected, openWarnings) {
  const a = allowedActions(job), rv = runningVersion(job);
  const btn = (act, label, ok) => `<button data-act="${act}" data-job="${esc(job.name)}"${ok ? "" : " disabled"}>${label}</button>`;
  const run = job.run ? `<span class="mono">${esc(job.run.id)}</span><br><span class="muted">since ${esc(fmtTime(job.run.startedAt))}</span>` : "";
  return `<tr class="job${selected ? " selected" : ""}" data-job="${esc(job.name)}">` +
    `<td><b>${esc(job.name)}</b></td>` +
    `<td>${statusHTML(job.status)}${warningHTML(job.warning, "row-" + job.name, (openWarnings || []).includes("row-" + job.name))}</td>` +
    `<td>${rv === null || rv === undefined ? "<span class=\"muted\">–</span>" : "v" + esc(rv)}</td>` +
    `<td>${job.latestVersion === null ? "<span class=\"muted\">draft only</span>" : "v" + esc(job.latestVersion)}</td>` +
    `<td>${run}</td>` +
    `<td class="actions">${btn("publish", "Publish…", a.publish)}${btn("run", "Run…", a.run)}` +
    `${btn("stop", "Stop…", a.stop)}${btn("savepoint", "Savepoint", a.savepoint)}${btn("drill", "Drill…", a.drill)}` +
    `${btn("delete", "Delete", a.remove)}</td></tr>`;
}

function jobsHTML(jobs, selected, openWarnings, filter) {
  if (!jobs.length) return `<tr><td colspan="6" class="muted">No jobs yet: create one with “New job” or <span class="mono">weir job create</span>.</td></tr>`;
  const shown = jobs.filter(j => matchesFilter(j, filter));
  if (!shown.length) return `<tr><td colspan="6" class="muted">No job matches “${esc(filter)}” (of ${jobs.length}).</td></tr>`;
  return shown.map(j => jobRowHTML(j, j.name === selected, openWarnings)).join("");
}

/** The job list's filter: every word must occur in the job's name or be its status (case-insensitive). */
function matchesFilter(job, filter) {
  const words = String(filter || "").toLowerCase().split(/\s+/).filter(Boolean);
  const name = job.name.toLowerCase();
  return words.every(w => name.includes(w) || job.status === w);
}

function offsetsText(offsets) {
  const parts = [];
  for (const [node, parts0] of Object.entries(offsets || {})) {
    for (const [partition, offset] of Object.entries(parts0 || {})) parts.push(`${node} ${partition}: ${offset}`);
  }
  return parts.join("\n");
}

function snapshotsHTML(snapshots) {
  if (!snapshots.length) return `<p class="muted">No snapshots yet: they come from checkpoints, savepoints and stops with a snapshot.</p>`;
  return `<table><thead><tr><th>Id</th><th>Kind</th><th>Version</th><th>Created</th><th>Size</th><th>Offsets</th><th>Restore drill</th></tr></thead><tbody>` +
    snapshots.map(s => `<tr><td class="mono">${esc(s.id)}</td><td>${esc(s.kind)}</td>` +
      `<td>${s.version === null ? "" : "v" + esc(s.version)}</td><td>${esc(fmtTime(s.createdAt))}</td>` +
      `<td>${esc(fmtBytes(s.sizeBytes))}</td><td class="mono" style="white-space:pre">${esc(offsetsText(s.offsets))}</td>` +
      `<td><button data-drill="diff" data-snapshot="${esc(s.id)}">Preview restore</button> ` +
      `<button data-drill="verify" data-snapshot="${esc(s.id)}">Verify</button></td></tr>`).join("") +
    `</tbody></table>`;
}

/** Where each node's state goes (a StateMapping): restored, new, dropped or incompatible. */
function mappingHTML(mapping) {
  if (!mapping || !mapping.nodes) return "";
  const rows = mapping.nodes.map(n => {
    const bad = n.outcome === "incompatible" || n.outcome === "dropped";
    const detail = n.was ? `was ${n.was}, now ${n.now || "-"}` : (n.reason || "");
    return `<tr><td class="mono">${esc(n.node)}</td><td${bad ? ' class="refused"' : ""}>${esc(n.outcome)}</td><td class="mono">${esc(detail)}</td></tr>`;
  }).join("");
  const mp = mapping.maxParallelismChange;
  return `<table class="drill"><thead><tr><th>Node</th><th>State</th><th>Detail</th></tr></thead><tbody>${rows}</tbody></table>` +
    (mp ? `<p class="refused">maxParallelism ${esc(mp.from)} → ${esc(mp.to)}: keyed state cannot be restored</p>` : "");
}

/** A restore preview (GET …/snapshots/{id}/diff): offsets per partition, state per node, the verdict. */
function previewHTML(p) {
  const n = v => v === undefined || v === null ? "-" : esc(v);
  const rows = p.offsets.rows.map(r => `<tr><td class="mono">${esc(r.split)}</td><td>${n(r.snapshotOffset)}</td><td>${n(r.low)}</td>` +
    `<td>${n(r.high)}</td><td>${n(r.startsAt)}</td><td>${n(r.replay)}</td><td>${n(r.lost)}</td>` +
    `<td${r.action === "retention_loss" || r.action === "past_end" ? ' class="refused"' : ""}>${esc(r.action)}</td></tr>`).join("");
  const replay = p.offsets.rows.reduce((a, r) => a + (r.replay || 0), 0);
  const predicted = p.predicted ? `<p class="muted">Predicted time to restore: state in ~${Math.round(p.predicted.stateLoadedMillis)} ms, ` +
    `first record in ~${Math.round(p.predicted.firstRecordMillis)} ms (${esc(fmtBytes(p.predicted.stateBytes))} of keyed state).</p>` : "";
  return `<p>Snapshot <span class="mono">${esc(p.snapshot)}</span> (checkpoint ${esc(p.checkpointID)} of run ${esc(p.run)}): ${replay} records to replay.</p>` +
    `<table class="drill"><thead><tr><th>Partition</th><th>Snapshot</th><th>Low</th><th>High</th><th>Starts at</th><th>Replay</th><th>Lost</th><th>Action</th></tr></thead><tbody>${rows}</tbody></table>` +
    mappingHTML(p.mapping) + predicted +
    (p.problems.length ? `<p class="refused">The restore would be refused:</p><ul>${p.problems.map(x => `<li>${esc(x)}</li>`).join("")}</ul>`
      : `<p>The restore would go on.</p>`);
}

/** The sink transaction ledger (GET …/transactions). */
function ledgerHTML(ledger) {
  if (!ledger.entries.length) return `<p class="muted">No sink transaction of this job is in doubt.</p>`;
  return `<table class="drill"><thead><tr><th>XID</th><th>Node</th><th>Subtask</th><th>Run</th><th>Epoch</th><th>Covered by</th><th>Next run will</th></tr></thead><tbody>` +
    ledger.entries.map(e => `<tr><td class="mono">${esc(e.id)}</td><td>${esc(e.node)}</td><td>${esc(e.subtask)}</td>` +
      `<td class="mono">${esc(e.run)}${e.runKnown ? "" : " (no snapshot of this run)"}</td><td>${esc(e.epoch)}</td>` +
      `<td class="mono">${esc(e.snapshot || "-")}</td><td>${esc(e.decision)}</td></tr>`).join("") + `</tbody></table>`;
}

/** A dry-run restore's report (GET …/snapshots/{id}/verify). */
function verifyHTML(v) {
  const state = (v.state || []).map(s => `<tr><td class="mono">${esc(s.node)}</td><td>${esc(fmtBytes(s.bytes))}</td>` +
    `<td>${esc(s.decodeMillis.toFixed(1))} ms</td><td${s.error ? ' class="refused"' : ""}>${esc(s.error || "ok")}</td></tr>`).join("");
  return `<p class="${v.passed ? "" : "refused"}">${v.passed ? "Verify passed: a restore would go on." : "Verify FAILED."}</p>` +
    (v.problems.length ? `<ul>${v.problems.map(x => `<li>${esc(x)}</li>`).join("")}</ul>` : "") +
    (state ? `<table class="drill"><thead><tr><th>Node</th><th>State</th><th>Decode</th><th>Result</th></tr></thead><tbody>${state}</tbody></table>` : "") +
    (v.preview ? previewHTML(v.preview) : "") + (v.transactions ? ledgerHTML(v.transactions) : "");
}

/** An operation's result in one line (a drill's report opens with its button). */
function resultText(result) {
  if (!result) return "";
  return Object.keys(result).filter(k => k !== "report").sort().map(k => `${k}=${typeof result[k] === "object" ? JSON.stringify(result[k]) : result[k]}`).join(" ");
}

function operationsHTML(ops) {
  if (!ops.length) return `<p class="muted">No operations yet.</p>`;
  return `<table><thead><tr><th>Operation</th><th>Type</th><th>Status</th><th>Requested</th><th>Finished</th><th>Result</th><th>Error</th></tr></thead><tbody>` +
    ops.map(o => `<tr><td class="mono">${esc(o.id)}</td><td>${esc(o.type)}</td><td>${esc(o.status)}</td>` +
      `<td>${esc(fmtTime(o.requestedAt))}</td><td>${esc(fmtTime(o.finishedAt))}</td>` +
      `<td class="mono">${esc(resultText(o.result))}` +
      `${o.result && o.result.report ? ` <button data-report="${esc(o.id)}">Drill report</button>` : ""}</td>` +
      `<td class="msg">${o.error ? esc(o.error.message) + (o.error.suggestion ? `<br><span class="muted">${esc(consoleWording(o.error.suggestion))}</span>` : "") : ""}</td></tr>`).join("") +
    `</tbody></table>`;
}

const ms = v => v === undefined || v === null ? "–" : `${Math.round(v)} ms`;

/** A job's run history (GET …/runs): how each run ended and its time to restore, predicted and measured. */
function runsHTML(runs) {
  if (!runs.length) return `<p class="muted">No runs yet.</p>`;
  return `<table><thead><tr><th>Run</th><th>Version</th><th>Started</th><th>Ended</th><th>Outcome</th><th>Restored from</th>` +
    `<th>Predicted first record</th><th>State loaded</th><th>Sources positioned</th><th>First record</th></tr></thead><tbody>` +
    runs.map(r => {
      const t = r.timeToRestore || {}, p = t.predicted || {}, m = t.measured || {};
      return `<tr><td class="mono">${esc(r.id)}</td><td>v${esc(r.version)}</td><td>${esc(fmtTime(r.startedAt))}</td>` +
        `<td>${esc(fmtTime(r.endedAt))}</td><td title="${esc(r.outcomeMessage || "")}">${esc(r.outcome || r.status)}</td>` +
        `<td class="mono">${esc(r.restoredFrom || "")}</td><td>${ms(p.firstRecordMs)}</td><td>${ms(m.stateLoadedMs)}</td>` +
        `<td>${ms(m.sourcesPositionedMs)}</td><td>${ms(m.firstRecordMs)}</td></tr>`;
    }).join("") + `</tbody></table>`;
}

/** A drill's report (a drill operation's result.report), as `weir drill` prints it. */
function drillReportHTML(r) {
  const v = r.verification || {};
  const p = (v.preview && v.preview.predicted) || null, s = r.startup || null;
  const times = `<p>Time to restore: predicted first record ${p ? ms(p.firstRecordMillis) : "–"}; measured state loaded ${s ? ms(s.stateLoadedMillis) : "–"}, ` +
    `sources positioned ${s ? ms(s.sourcesPositionedMillis) : "–"}, first record ${s ? ms(s.firstRecordMillis) : "–"}.</p>`;
  const rows = (list, cols) => `<table class="drill"><thead><tr>${cols.map(c => `<th>${esc(c)}</th>`).join("")}</tr></thead><tbody>` +
    list.slice(0, 20).map(row => `<tr>${row.map(x => `<td class="mono">${x === null ? "NULL" : esc(x)}</td>`).join("")}</tr>`).join("") + `</tbody></table>`;
  const tables = (r.tables || []).map(t => `<p><span class="mono">${esc(t.table)}</span>: ${esc(t.rowsLive)} rows, shadow ${esc(t.rowsShadow)} rows: ` +
    `${t.identical ? "identical" : `<span class="refused">DIFFERENT</span>`}</p>` +
    (t.onlyLive.length ? `<p>Only in the table (${t.onlyLive.length}):</p>` + rows(t.onlyLive, t.columns) : "") +
    (t.onlyShadow.length ? `<p>Only in the shadow (${t.onlyShadow.length}):</p>` + rows(t.onlyShadow, t.columns) : "")).join("");
  return `<p class="${r.passed ? "" : "refused"}">Drill of ${esc(r.job)} from snapshot <span class="mono">${esc(r.snapshot)}</span>: ` +
    `${r.passed ? "PASSED" : "FAILED"}</p>` +
    ((r.problems || []).length ? `<ul>${r.problems.map(x => `<li>${esc(x)}</li>`).join("")}</ul>` : "") +
    times + tables + (v.preview ? previewHTML(v.preview) : "");
}

/** The drill dialog: a running job is drilled from its stop snapshot, a stopped one from a chosen snapshot. */
function drillFormHTML(job, versions, snapshots) {
  const running = job.status === "running";
  const vs = versions.map(v => `<option value="${esc(v.version)}"${v.version === (running ? job.version : job.latestVersion) ? " selected" : ""}>` +
    `v${esc(v.version)} — ${esc(v.description)}</option>`).join("");
  const ss = running ? "" : `<label>Snapshot<select name="snapshot"><option value="latest">latest snapshot` +
    `${snapshots.length ? ` (${esc(snapshots[0].id)})` : ""}</option>` +
    snapshots.map(s => `<option value="${esc(s.id)}">${esc(s.id)} — ${esc(s.kind)}, ${esc(fmtTime(s.createdAt))}</option>`).join("") + `</select></label>`;
  return `<h3>Drill ${esc(job.name)}</h3>` +
    `<p class="muted">${running ? "The job is stopped with a snapshot and stays stopped; the drill restores that snapshot."
      : "The drill restores the chosen snapshot."} It catches up to the broker's current offsets, replays the job from its start into ` +
    `shadow tables up to the same offsets, and compares the tables row by row.</p>` +
    `<label>Restore into version<select name="version">${vs}</select></label>${ss}` +
    `<label>Shadow database<input name="shadowDatabase" placeholder="the sink's database + _shadow" pattern="[A-Za-z0-9_]{1,64}"></label>`;
}

/** Body of POST /jobs/{name}/drill from the drill dialog's values. */
function drillRequest(values) {
  const body = {};
  if (values.version) body.version = Number(values.version);
  if (values.snapshot) body.snapshot = values.snapshot;
  if (values.shadowDatabase) body.shadowDatabase = values.shadowDatabase;
  return body;
}

/** The snapshot a run should restore by default: the stop snapshot, when the newest snapshot is one. */
function defaultSnapshot(job, snapshots) {
  return job.status === "stopped" && snapshots.length && snapshots[0].kind === "stop" ? snapshots[0].id : "";
}

/** The run dialog's choices: versions (newest first) and snapshots to restore (the last stop's, if any, preselected). */
function runFormHTML(job, versions, snapshots) {
  const vs = versions.map(v => `<option value="${esc(v.version)}"${v.version === job.latestVersion ? " selected" : ""}>` +
    `v${esc(v.version)} — ${esc(v.description)}</option>`).join("");
  const chosen = defaultSnapshot(job, snapshots);
  const ss = [`<option value="">no snapshot (start from the spec's start offsets)</option>`]
    .concat(snapshots.length ? [`<option value="latest">latest snapshot (${esc(snapshots[0].id)})</option>`] : [])
    .concat(snapshots.map(s => `<option value="${esc(s.id)}"${s.id === chosen ? " selected" : ""}>${esc(s.id)} — ${esc(s.kind)}` +
      `${s.version === null ? "" : ", v" + esc(s.version)}, ${esc(fmtTime(s.createdAt))}</option>`)).join("");
  return `<h3>Run ${esc(job.name)}</h3>` +
    `<label>Version<select name="version">${vs}</select></label>` +
    `<label>Restore from snapshot<select name="snapshot">${ss}</select></label>` +
    `<label class="check"><input type="checkbox" name="allowNonRestoredState"> allow non-restored state (drop state of nodes the version no longer has)</label>` +
    `<div id="restore-preview" class="muted">Pick a snapshot to see what the restore will do.</div>`;
}

/** Body of POST /jobs/{name}/run from the run dialog's values. */
function runRequest(values) {
  const body = { allowNonRestoredState: !!values.allowNonRestoredState };
  if (values.version) body.version = Number(values.version);
  if (values.snapshot) body.snapshot = values.snapshot;
  return body;
}

function stopFormHTML(job) {
  return `<h3>Stop ${esc(job.name)}</h3>` +
    `<p class="muted">Without a snapshot, MySQL keeps what was committed up to the last completed checkpoint.</p>` +
    `<label class="check"><input type="checkbox" name="snapshot"> create snapshot on stop</label>`;
}

function stopRequest(values) { return { snapshot: !!values.snapshot }; }

function publishFormHTML(job, draftSpec) {
  const running = job.status === "running";
  return `<h3>Publish ${esc(job.name)} v${esc((job.latestVersion || 0) + 1)}</h3>` +
    `<label>Description (required)<input type="text" name="description" required></label>` +
    `<label>Draft<textarea name="spec" spellcheck="false">${esc(draftSpec)}</textarea></label>` +
    `<div class="draft-bar"><button type="button" data-save-draft="1">Save draft</button>` +
    `<span id="draft-state" class="muted" role="status">${esc(draftStateText(false))}</span></div>` +
    `<label class="check"><input type="checkbox" name="run"> run the new version</label>` +
    (running ? `<label class="check"><input type="checkbox" name="stopCurrent" checked> stop the running version first</label>` +
      `<label class="check"><input type="checkbox" name="snapshot" checked> with a snapshot</label>` +
      `<label class="check"><input type="checkbox" name="restoreFromStop" checked> restore the new version from that snapshot</label>` : "") +
    (job.latestVersion ? `<div id="publish-mapping" class="muted">Checking where the state of v${esc(job.latestVersion)} goes…</div>` : "");
}

/** What the publish dialog says about the draft: publishing takes the saved draft, so edits are saved first, explicitly. */
function draftStateText(dirty, savedAt) {
  return dirty ? "Unsaved changes: “Save draft” keeps them (Publish publishes the saved draft)."
    : (savedAt ? `Draft saved at ${fmtTime(savedAt)}; Publish publishes it.` : "The saved draft; Publish publishes it.");
}

/** Body of POST /jobs/{name}/versions from the publish dialog's values. */
function publishRequest(values) {
  const body = { description: values.description || "" };
  if (values.run) {
    body.run = { stopCurrent: !!values.stopCurrent, snapshot: !!values.snapshot, restoreFromStop: !!values.restoreFromStop };
  }
  return body;
}

/** What the console says after a publish (the answer of POST /jobs/{name}/versions). */
function publishedText(name, answer) {
  const moved = ((answer.stateMapping || {}).nodes || []).filter(n => n.outcome !== "restored").map(n => `${n.node}: ${n.outcome}`);
  return `published ${name} v${answer.version.version}` +
    (answer.operation ? `; operation ${answer.operation.id} (${answer.operation.type}) ${answer.operation.status}` : "") +
    (moved.length ? `; state from the previous version: ${moved.join(", ")}` : "");
}

function createFormHTML() {
  return `<h3>New job</h3>` +
    `<label>Name<input type="text" name="name" required pattern="[A-Za-z0-9][A-Za-z0-9_.\\-]*"></label>` +
    `<label>Job spec (YAML or JSON; it becomes the draft)<textarea name="spec" spellcheck="false" required></textarea></label>`;
}

/** What a finished operation did, in one line: its snapshot, run and where the run restored from. */
function operationDoneText(what, op) {
  if (op.status === "failed") return `${what} failed (operation ${op.id}): ` + errorText(op.error);
  const r = op.result || {}, parts = [];
  if (r.version !== undefined && r.version !== null) parts.push(`version v${r.version}`);
  if (r.stoppedRun) parts.push(`stopped run ${r.stoppedRun}`);
  if (op.type === "stop" && r.run) parts.push(`stopped run ${r.run}`);
  if (r.snapshot) parts.push(`snapshot ${r.snapshot}`);
  if (op.type !== "stop" && r.run) parts.push(`run ${r.run}`);
  if (r.run && (op.type === "run" || op.type === "publish_and_run")) {
    parts.push(r.restoredFrom ? `restored from ${r.restoredFrom}` : "started without a snapshot");
  }
  if (op.type === "drill") parts.push(r.passed ? "drill PASSED (report in Operations)" : "drill FAILED (report in Operations)");
  return `${what} succeeded (operation ${op.id})` + (parts.length ? ": " + parts.join(", ") : "");
}

/** A request the server never answered (it is down or unreachable), said plainly. */
function unreachableText() {
  return "The weir server does not answer; retrying every 2 seconds…";
}

/** One line for an API error: message, then the suggested fix in the console's words. */
function errorText(err) {
  if (!err) return "request failed";
  return err.message + (err.suggestion ? "\nSuggestion: " + consoleWording(err.suggestion) : "");
}

/** The server words its suggestions for every client (CLI commands, REST paths); the console says
    where the same thing is on this page instead. */
const CONSOLE_WORDS = [
  [/(?:see |list them with )?GET \/api\/v1\/jobs\/[^/\s)]+\/snapshots/g, "see the Snapshots tab"],
  [/(?:see )?GET \/api\/v1\/jobs\/[^/\s)]+\/versions/g, "see the Versions tab"],
  [/POST \/api\/v1\/jobs\/[^/\s)]+\/versions/g, "Publish…"],
  [/PUT \/api\/v1\/jobs\/[^/\s)]+\/draft/g, "Publish… → Save draft"],
  [/GET \/api\/v1\/operations\/[^\s)]+/g, "see the Operations tab"],
  [/GET \/api\/v1\/jobs\b/g, "the job list"],
  [/see weir job snapshots/g, "see the Snapshots tab"],
  [/weir job logs/g, "see the Logs tab"],
  [/weir snapshot delete/g, "weir snapshot delete on the server's host"],
  [/\ballowNonRestoredState\b|allow-non-restored-state/g, "“allow non-restored state” (Run…)"],
  [/\brun\.stopCurrent\b( true)?/g, "“stop the running version first” (Publish…)"],
  [/\brun\.snapshot\b( to true)?/g, "“with a snapshot”"],
  [/\brestoreFromStop\b( to false)?/g, "“restore the new version from that snapshot”"],
];

function consoleWording(text) {
  return CONSOLE_WORDS.reduce((t, [re, words]) => t.replace(re, words), String(text || ""));
}

// ---- The live job view, the job graph, version specs and failures. ----

const fmtInt = n => n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US");
const fmtRate = r => r === null || r === undefined ? "–" : (r >= 100 ? Math.round(r).toLocaleString("en-US") : r.toFixed(1)) + "/s";

/** A watermark (epoch ms) as a UTC time; the end-of-input watermark and none said in words. */
function fmtWatermark(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms >= 9223372036854775000) return "end of input";
  const d = new Date(ms);
  return isNaN(d) ? String(ms) : d.toISOString().replace("T", " ").replace("Z", "");
}

/** A figure cell carrying its raw value, so tests and scripts can read it exactly. */
function figCell(fig, value, text) {
  return `<td data-fig="${esc(fig)}" data-value="${esc(value === null || value === undefined ? "" : value)}">${esc(text)}</td>`;
}

/** The live job view (GET …/live): totals, per node, per partition, checkpoint history and restarts. */
function liveHTML(v) {
  if (!v.run) return `<p class="muted">No run of this job since the server started: run it to see its live figures.</p>`;
  const t = v.totals;
  const head = `<p>${v.ended ? "Last run" : "Run"} <span class="mono">${esc(v.run.id)}</span> of v${esc(v.run.version)}` +
    (v.run.restoredFrom ? `, restored from <span class="mono">${esc(v.run.restoredFrom)}</span>` : "") +
    (v.ended ? ` — <b>ended</b>; these are its last figures.` : "") +
    ` <span class="muted">Sampled ${esc(fmtTime(v.sampledAt) || "not yet")}` +
    (v.intervalMs ? `, rates over ${esc((v.intervalMs / 1000).toFixed(1))} s` : "") + `.</span></p>`;
  const totals = !t ? `<p class="muted">Waiting for the run's first figures (every 2 s).</p>` :
    `<div class="figures">` + [["recordsIn", "Records in", t.recordsIn], ["recordsOut", "Rows written", t.recordsOut],
      ["rejectedRecords", "Rejected", t.rejectedRecords], ["lateRecords", "Late", t.lateRecords],
      ["restarts", "Restarts", t.restarts], ["checkpoints", "Checkpoints", t.checkpoints],
      ["lastCheckpointMs", "Last checkpoint", t.checkpoints ? ms(t.lastCheckpointMs) : "–"],
      ["lastCheckpointBytes", "Last checkpoint size", t.checkpoints ? fmtBytes(t.lastCheckpointBytes) : "–"]]
      .map(([k, label, x]) => `<div class="figure" data-total="${esc(k)}" data-value="${esc(t[k])}"><span class="muted">${esc(label)}</span>` +
        `<b>${esc(typeof x === "number" ? fmtInt(x) : x)}</b></div>`).join("") + `</div>`;
  const nodes = !v.nodes.length ? "" : `<h3>Nodes</h3><div class="scroll"><table class="live-nodes"><thead><tr><th>Node</th><th>In</th><th>In/s</th>` +
    `<th>Out</th><th>Out/s</th><th>Backpressure</th><th>Watermark (UTC)</th><th>Rejected</th></tr></thead><tbody>` +
    v.nodes.map(n => {
      const rej = Object.entries(n.rejected || {}).map(([r, c]) => `${r}: ${c}`).join(", ");
      const bp = n.backpressureMsPerSecond === null ? ms(n.backpressureMs) :
        `${Math.round(n.backpressureMsPerSecond)} ms/s` + (n.backpressureMsPerSecond >= 500 ? " ⚠" : "");
      return `<tr data-node="${esc(n.id)}"><td class="mono">${esc(n.id)}</td>` + figCell("recordsIn", n.recordsIn, fmtInt(n.recordsIn)) +
        figCell("inPerSecond", n.inPerSecond, fmtRate(n.inPerSecond)) + figCell("recordsOut", n.recordsOut, fmtInt(n.recordsOut)) +
        figCell("outPerSecond", n.outPerSecond, fmtRate(n.outPerSecond)) + figCell("backpressureMs", n.backpressureMs, bp) +
        figCell("watermarkMs", n.watermarkMs, fmtWatermark(n.watermarkMs)) + `<td class="msg">${esc(rej || "–")}</td></tr>`;
    }).join("") + `</tbody></table></div>`;
  const lag = !v.partitions.length ? "" : `<h3>Lag per partition</h3><div class="scroll"><table class="live-lag"><thead><tr><th>Partition</th>` +
    `<th>Records behind</th></tr></thead><tbody>` + v.partitions.map(p => `<tr data-partition="${esc(p.partition)}">` +
      `<td class="mono">${esc(p.partition)}</td>` + figCell("lag", p.lag, fmtInt(p.lag)) + `</tr>`).join("") + `</tbody></table></div>`;
  return head + totals + nodes + lag + checkpointsHTML(v.checkpoints) + restartsHTML(v.restarts);
}

/** The run's checkpoint history: completed with duration and size, failed or aborted with the reason. */
function checkpointsHTML(list) {
  if (!list.length) return `<h3>Checkpoints</h3><p class="muted">No checkpoint yet in this run.</p>`;
  return `<h3>Checkpoints</h3><div class="scroll"><table class="live-checkpoints"><thead><tr><th>Id</th><th>Kind</th><th>Status</th>` +
    `<th>Snapshot</th><th>At</th><th>Duration</th><th>Size</th><th>Reason</th></tr></thead><tbody>` +
    list.map(c => `<tr data-status="${esc(c.status)}"><td>${esc(c.checkpoint === null ? "–" : c.checkpoint)}</td><td>${esc(c.kind)}</td>` +
      `<td${c.status === "failed" ? ' class="refused"' : ""}>${esc(c.status)}</td><td class="mono">${esc(c.snapshot || "")}</td>` +
      `<td>${esc(fmtTime(c.at))}</td><td>${c.durationMs === null ? "–" : ms(c.durationMs)}</td>` +
      `<td>${c.bytes === null ? "–" : esc(fmtBytes(c.bytes))}</td><td class="msg">${esc(c.reason || "")}</td></tr>`).join("") +
    `</tbody></table></div>`;
}

function restartsHTML(list) {
  if (!list.length) return "";
  return `<h3>Restarts</h3><div class="scroll"><table><thead><tr><th>At</th><th>Attempt</th><th>Error</th></tr></thead><tbody>` +
    list.map(r => `<tr><td>${esc(fmtTime(r.at))}</td><td>${esc(r.attempt)} of ${esc(r.of)}</td><td class="msg">${esc(r.error)}</td></tr>`).join("") +
    `</tbody></table></div>`;
}

/** Columns of the graph: a node's column is the longest path to it from a source. */
function graphLayout(nodes) {
  const depth = {}, byId = {};
  for (const n of nodes) byId[n.id] = n;
  const d = id => {
    if (depth[id] !== undefined) return depth[id];
    depth[id] = 0;  // guards a cycle (the server refuses those)
    const n = byId[id];
    depth[id] = n && n.inputs.length ? 1 + Math.max(...n.inputs.map(d)) : 0;
    return depth[id];
  };
  const columns = [];
  for (const n of nodes) { const c = d(n.id); (columns[c] = columns[c] || []).push(n.id); }
  return columns.map(c => c || []);
}

/** The job graph as SVG, drawn here (no library): each node with its kind, parallelism and, when a run
    of this version reports them, its live rates and watermark; edges from inputs to readers. */
function graphSVG(graph, live) {
  const W = 200, H = 78, GX = 56, GY = 22, PAD = 12;
  const columns = graphLayout(graph.nodes);
  const pos = {};
  columns.forEach((ids, c) => ids.forEach((id, r) => { pos[id] = { x: PAD + c * (W + GX), y: PAD + r * (H + GY) }; }));
  const width = PAD * 2 + columns.length * W + Math.max(0, columns.length - 1) * GX;
  const height = PAD * 2 + Math.max(1, ...columns.map(c => c.length)) * (H + GY) - GY;
  const figures = {};
  if (live && !live.ended && live.run && live.run.version === graph.version) for (const n of live.nodes) figures[n.id] = n;
  const edges = graph.nodes.flatMap(n => n.inputs.map(i => {
    const a = pos[i], b = pos[n.id];
    if (!a || !b) return "";
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
    return `<path class="edge" data-from="${esc(i)}" data-to="${esc(n.id)}" d="M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 - 4},${y2}" marker-end="url(#arrow)"/>`;
  })).join("");
  const boxes = graph.nodes.map(n => {
    const p = pos[n.id], f = figures[n.id];
    const cut = (s, k) => s.length > k ? s.slice(0, k - 1) + "…" : s;
    const line3 = f ? `in ${fmtRate(f.inPerSecond)} · out ${fmtRate(f.outPerSecond)}` : "not running";
    const line4 = f && f.watermarkMs !== null ? `wm ${fmtWatermark(f.watermarkMs).slice(11, 23)}` :
      (f && f.backpressureMsPerSecond ? `backpressure ${Math.round(f.backpressureMsPerSecond)} ms/s` : "");
    return `<g class="node ${esc(n.kind)}" data-node="${esc(n.id)}" transform="translate(${p.x},${p.y})" tabindex="0">` +
      `<title>${esc(n.id)} (${esc(n.kind)}${n.connector ? " · " + esc(n.connector) : ""}, parallelism ${esc(n.parallelism)}): ${esc(n.detail)}</title>` +
      `<rect width="${W}" height="${H}" rx="6"/>` +
      `<text x="10" y="18" class="id">${esc(cut(n.id, 24))}</text>` +
      `<text x="10" y="35" class="kind">${esc(n.kind)}${n.connector ? " · " + esc(n.connector) : ""} · p=${esc(n.parallelism)}</text>` +
      `<text x="10" y="52" class="fig" data-fig="rates">${esc(line3)}</text>` +
      `<text x="10" y="68" class="fig">${esc(line4)}</text></g>`;
  }).join("");
  return `<svg class="graph" role="img" aria-label="job graph of v${esc(graph.version)}" xmlns="http://www.w3.org/2000/svg" ` +
    `viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" style="max-width:100%;height:auto">` +
    `<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto">` +
    `<path d="M0,0 L8,4 L0,8 z"/></marker></defs>${edges}${boxes}</svg>`;
}

/** The graph tab: the picture, then each node's description (what the picture cannot hold). */
function graphHTML(graph, live) {
  return `<p class="muted">v${esc(graph.version)}: parallelism ${esc(graph.parallelism)}, maxParallelism ${esc(graph.maxParallelism)}.` +
    ` Live figures show while this version runs.</p><div class="scroll graph-box">${graphSVG(graph, live)}</div>` +
    `<div class="scroll"><table class="graph-nodes"><thead><tr><th>Node</th><th>Kind</th><th>Inputs</th><th>What it does</th></tr></thead><tbody>` +
    graph.nodes.map(n => `<tr><td class="mono">${esc(n.id)}</td><td>${esc(n.kind)}${n.connector ? " (" + esc(n.connector) + ")" : ""}</td>` +
      `<td class="mono">${esc(n.inputs.join(", "))}</td><td class="msg mono">${esc(n.detail)}</td></tr>`).join("") + `</tbody></table></div>`;
}

/** A line diff (longest common subsequence): [{op: "=", "-" or "+", text}] turning `a` into `b`. */
function lineDiff(a, b) {
  const x = String(a).split("\n"), y = String(b).split("\n");
  if (x.length * y.length > 4000000) return [{ op: "-", text: "(too long to compare here)" }];
  const n = x.length, m = y.length, L = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push({ op: "=", text: x[i] }); i++; j++; }
    else if (L[i + 1][j] >= L[i][j + 1]) out.push({ op: "-", text: x[i++] });
    else out.push({ op: "+", text: y[j++] });
  }
  while (i < n) out.push({ op: "-", text: x[i++] });
  while (j < m) out.push({ op: "+", text: y[j++] });
  return out;
}

function diffHTML(from, to) {
  const d = lineDiff(from.spec, to.spec);
  const changed = d.filter(l => l.op !== "=").length;
  return `<p>v${esc(from.version)} → v${esc(to.version)}: ${changed ? `${changed} changed line${changed === 1 ? "" : "s"}` : "the specs are identical"}.</p>` +
    `<pre class="spec diff">` + d.map(l => `<span class="${l.op === "+" ? "add" : l.op === "-" ? "del" : "same"}">` +
      `${l.op === "=" ? " " : l.op} ${esc(l.text)}</span>`).join("\n") + `</pre>`;
}

function specHTML(v) {
  return `<p class="muted">Published ${esc(fmtTime(v.createdAt))}: ${esc(v.description)}</p><pre class="spec">${esc(v.spec)}</pre>`;
}

/** The versions tab: each version with its spec, and a comparison of any two. */
function versionsHTML(versions, running) {
  if (!versions.length) return `<p class="muted">No versions: publish the draft to create version 1.</p>`;
  const opts = sel => versions.map(v => `<option value="${esc(v.version)}"${v.version === sel ? " selected" : ""}>v${esc(v.version)}</option>`).join("");
  const compare = versions.length < 2 ? "" : `<p class="compare">Compare <select id="diff-from" aria-label="from version">${opts(versions[1].version)}</select>` +
    ` with <select id="diff-to" aria-label="to version">${opts(versions[0].version)}</select> <button data-diff="1">Compare</button></p>`;
  return compare + `<table><thead><tr><th>Version</th><th>Description</th><th>Published</th><th>Spec</th></tr></thead><tbody>` +
    versions.map(v => `<tr><td>v${esc(v.version)}${v.version === running ? " <span class=\"status running\">running</span>" : ""}</td>` +
      `<td class="msg">${esc(v.description)}</td><td>${esc(fmtTime(v.createdAt))}</td>` +
      `<td><button data-spec="${esc(v.version)}">View spec</button></td></tr>`).join("") + `</tbody></table>`;
}

/** Everything that went wrong, newest first: runs that failed or were lost, failed operations, in-process restarts. */
function failuresHTML(runs, ops, live) {
  const items = [];
  for (const r of runs) {
    if (["failed", "killed", "lost", "exited"].includes(r.outcome)) {
      items.push({ at: r.endedAt || r.startedAt, what: `run ${r.id} (v${r.version}) ${r.outcome}`, message: r.outcomeMessage || "", suggestion: "" });
    }
  }
  for (const o of ops) {
    if (o.status === "failed" && o.error) {
      items.push({ at: o.finishedAt || o.requestedAt, what: `${o.type} ${o.id} failed`, message: o.error.message, suggestion: o.error.suggestion || "" });
    }
  }
  for (const r of (live && live.restarts) || []) {
    items.push({ at: r.at, what: `restart ${r.attempt} of ${r.of} in run ${live.run.id}`, message: r.error, suggestion: "" });
  }
  if (!items.length) return `<p class="muted">No failures: no run failed, no operation failed, no restart.</p>`;
  items.sort((a, b) => String(b.at).localeCompare(String(a.at)));
  return `<table class="failures"><thead><tr><th>When</th><th>What</th><th>Error</th><th>Suggestion</th></tr></thead><tbody>` +
    items.map(i => `<tr><td>${esc(fmtTime(i.at))}</td><td>${esc(i.what)}</td><td class="msg">${esc(i.message)}</td>` +
      `<td class="msg">${esc(consoleWording(i.suggestion))}</td></tr>`).join("") + `</tbody></table>`;
}

// ---- In-place rendering: a refresh changes only the nodes whose rendered HTML changed. ----

/** Makes `target`'s children like `source`'s, touching only the nodes that differ, so a text
    selection, the focus or a scroll position in an unchanged part of the page survives a refresh. */
function morphChildren(target, source) {
  const olds = Array.from(target.childNodes), news = Array.from(source.childNodes);
  news.forEach((n, i) => {
    const o = olds[i];
    if (!o) target.appendChild(n);
    else if (o.nodeType !== n.nodeType || o.nodeName !== n.nodeName) target.replaceChild(n, o);
    else morphNode(o, n);
  });
  olds.slice(news.length).forEach(o => o.remove());
}

function morphNode(o, n) {
  if (o.nodeType !== 1) { if (o.nodeValue !== n.nodeValue) o.nodeValue = n.nodeValue; return; }
  for (const a of Array.from(o.attributes)) if (!n.hasAttribute(a.name)) o.removeAttribute(a.name);
  for (const a of Array.from(n.attributes)) if (o.getAttribute(a.name) !== a.value) o.setAttribute(a.name, a.value);
  morphChildren(o, n);
}

