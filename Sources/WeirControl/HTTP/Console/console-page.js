// ---- The page: state, API calls, event wiring. ----

function startConsole(document, window) {
  const $ = id => document.getElementById(id);
  const state = { jobs: [], selected: null, tab: "live", graphs: new Map(), versions: [], logOffset: 0, logRun: null, logLoading: false, refreshFailed: false,
                  openWarnings: [], following: null };
  const rendered = new Map();  // region element → the HTML last rendered into it

  /** Renders `html` into a region, skipping it when unchanged and otherwise changing only the nodes that differ. */
  function region(el, html) {
    if (rendered.get(el) === html) return;
    rendered.set(el, html);
    if (typeof document.createElement !== "function") { el.innerHTML = html; return; }  // a DOM without templates
    const t = document.createElement("template");
    t.innerHTML = html;
    morphChildren(el, t.content);
  }

  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    const token = window.sessionStorage.getItem("weir-token");
    if (token) headers["Authorization"] = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let r;
    try { r = await window.fetch("/api/v1" + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }); }
    catch (e) { const err = new Error(unreachableText()); err.unreachable = true; throw err; }  // no answer at all
    if (r.status === 204) return null;
    const ct = r.headers.get("Content-Type") || "";
    const data = ct.includes("json") ? await r.json() : await r.text();
    if (!r.ok) {
      const e = (data && data.error) || { message: `HTTP ${r.status}` };
      const err = new Error(e.message); err.api = e; err.status = r.status; throw err;
    }
    return { data, headers: r.headers };
  }

  const messageOf = e => e.api ? errorText(e.api) : (e.message || String(e));

  function banner(text, info) {
    const b = $("banner");
    b.textContent = text || "";
    b.className = info ? "info" : "";
    b.style.display = text ? "block" : "none";
  }

  function fail(e) {
    if (e.status === 401) { banner(errorText(e.api) + "\nUse “Token…” to enter the server's token."); return; }
    banner(messageOf(e));
  }

  /** The bar follows the operation the console started last: green with its result, or red with the error. */
  function accepted(op, what) {
    state.following = { id: op.id, what };
    banner(`${what}: operation ${op.id} ${op.status}… (this bar shows its result when it ends)`, true);
  }

  async function followOperation() {
    const f = state.following;
    if (!f) return;
    let op;
    try { op = (await api("GET", `/operations/${encodeURIComponent(f.id)}`)).data; }
    catch (e) { if (e.unreachable) throw e; state.following = null; return; }
    if (state.following !== f || (op.status !== "succeeded" && op.status !== "failed")) return;
    state.following = null;
    banner(operationDoneText(f.what, op), op.status === "succeeded");
  }

  function renderJobs() {
    region($("jobs"), jobsHTML(state.jobs, state.selected, state.openWarnings, $("job-filter").value));
  }

  function renderTitle(job) {
    const key = "title-" + job.name;
    region($("detail-title"), esc(job.name) + " " + statusHTML(job.status) + warningHTML(job.warning, key, state.openWarnings.includes(key)));
  }

  function toggleWarning(key) {
    const i = state.openWarnings.indexOf(key);
    if (i >= 0) state.openWarnings.splice(i, 1); else state.openWarnings.push(key);
    renderJobs();
    const job = state.jobs.find(j => j.name === state.selected);
    if (job) renderTitle(job);
  }

  async function refresh() {
    try {
      await followOperation();
      const { data } = await api("GET", "/jobs");
      state.jobs = data;
      if (state.refreshFailed) { state.refreshFailed = false; banner(""); }  // the server answers again
      $("server-state").textContent = "connected · " + fmtTime(new Date().toISOString());
      renderJobs();
      if (state.selected && !state.jobs.some(j => j.name === state.selected)) { state.selected = null; $("detail").hidden = true; }
      if (state.selected) await renderDetail();
    } catch (e) {
      $("server-state").textContent = "not connected";
      state.refreshFailed = true;
      fail(e);
    }
  }

  /** Appends a chunk of log; a log scrolled to its bottom follows the new lines, one scrolled up stays put. */
  function appendLog(log, text) {
    if (!text) return;
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    log.append(text);
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  async function renderLog(name, current) {
    if (!$("log")) { region($("tab-body"), `<pre class="log" id="log" tabindex="0"></pre>`); state.logOffset = 0; state.logRun = null; }
    state.logLoading = true;  // one request at a time, so no chunk is appended twice
    let r;
    try { r = await api("GET", `/jobs/${name}/logs?offset=${state.logOffset}`); }
    catch (e) { if (e.status === 404 && current()) { $("log").textContent = errorText(e.api); return; } throw e; }
    finally { state.logLoading = false; }
    if (!current() || !$("log")) return;
    const run = r.headers.get("X-Run-Id");
    if (run !== state.logRun) {  // a new run: its log starts from the beginning
      $("log").textContent = ""; state.logRun = run;
      if (state.logOffset) { state.logOffset = 0; return renderDetail(); }
    }
    appendLog($("log"), r.data);
    state.logOffset = Number(r.headers.get("X-Next-Offset") || state.logOffset);
  }

  async function renderDetail() {
    const job = state.jobs.find(j => j.name === state.selected);
    if (!job) return;
    $("detail").hidden = false;
    renderTitle(job);
    for (const b of $("tabs").querySelectorAll("button")) b.classList.toggle("active", b.dataset.tab === state.tab);
    const name = encodeURIComponent(job.name), tab = state.tab;
    // An answer that arrives after the user moved to another job or tab is dropped.
    const current = () => state.tab === tab && state.selected === job.name;
    const show = html => { if (current()) region($("tab-body"), html); };
    if (tab === "live") show(liveHTML((await api("GET", `/jobs/${name}/live`)).data));
    if (tab === "graph") {
      const version = runningVersion(job) || job.latestVersion;
      if (!version) { show(`<p class="muted">No version yet: publish the draft to see its graph.</p>`); return; }
      const key = job.name + "\u0000" + version;
      if (!state.graphs.has(key)) state.graphs.set(key, (await api("GET", `/jobs/${name}/versions/${version}/graph`)).data);
      show(graphHTML(state.graphs.get(key), (await api("GET", `/jobs/${name}/live`)).data));
    }
    if (tab === "failures") {
      const [runs, ops, live] = await Promise.all([api("GET", `/jobs/${name}/runs`), api("GET", `/jobs/${name}/operations`),
                                                   api("GET", `/jobs/${name}/live`)]);
      show(failuresHTML(runs.data, ops.data, live.data));
    }
    if (tab === "versions") {
      const versions = (await api("GET", `/jobs/${name}/versions`)).data;
      state.versions = versions;
      show(versionsHTML(versions, runningVersion(job)));
    }
    if (tab === "snapshots") show(snapshotsHTML((await api("GET", `/jobs/${name}/snapshots`)).data));
    if (tab === "operations") { const ops = (await api("GET", `/jobs/${name}/operations`)).data; state.ops = ops; show(operationsHTML(ops)); }
    if (tab === "runs") show(runsHTML((await api("GET", `/jobs/${name}/runs`)).data));
    if (tab === "transactions" && !state.ledgerShown) {  // asks MySQL: once per visit of the tab, not every refresh
      state.ledgerShown = true;
      show(ledgerHTML((await api("GET", `/jobs/${name}/transactions`)).data));
    }
    if (tab === "logs" && !state.logLoading) await renderLog(name, current);
  }

  function formValues(form) {
    const v = {};
    for (const el of form.elements) {
      if (!el.name) continue;
      v[el.name] = el.type === "checkbox" ? el.checked : el.value;
    }
    return v;
  }

  /** Shows a dialog; `submit` gets the form's values and may throw to keep it open. */
  function dialog(html, okLabel, submit, onInput) {
    const d = $("dialog"), f = $("dialog-form");
    f.onchange = onInput ? () => onInput(formValues(f)) : null;
    f.oninput = null;
    f.innerHTML = html + `<div class="buttons"><button value="cancel" formnovalidate>Cancel</button>` +
      `<button class="primary" value="ok">${esc(okLabel)}</button></div><div class="muted" id="dialog-error"></div>`;
    f.onsubmit = async ev => {
      if (ev.submitter && ev.submitter.value === "cancel") return;
      ev.preventDefault();
      try { await submit(formValues(f)); d.close(); refresh(); }
      catch (e) { $("dialog-error").textContent = messageOf(e); }
    };
    d.showModal();
    if (onInput) onInput(formValues(f));
  }

  /** A report in a dialog with one button. */
  function report(title, html) {
    dialog(`<h3>${esc(title)}</h3>${html}`, "Close", async () => {});
  }

  async function act(action, name) {
    const job = state.jobs.find(j => j.name === name);
    const path = "/jobs/" + encodeURIComponent(name);
    try {
      if (action === "run") {
        const [vs, ss] = await Promise.all([api("GET", path + "/versions"), api("GET", path + "/snapshots")]);
        // Before anything runs: what restoring the chosen snapshot into the chosen version will do.
        const preview = async v => {
          const box = $("restore-preview");
          if (!box) return;
          if (!v.snapshot) { box.innerHTML = "No snapshot: the version starts from its start offsets."; return; }
          box.textContent = "Asking the broker…";
          try {
            const q = `?version=${encodeURIComponent(v.version)}` + (v.allowNonRestoredState ? "&allowNonRestoredState=true" : "");
            box.innerHTML = previewHTML((await api("GET", `${path}/snapshots/${encodeURIComponent(v.snapshot)}/diff${q}`)).data);
          } catch (e) { box.textContent = messageOf(e); }
        };
        dialog(runFormHTML(job, vs.data, ss.data), "Run", async v => accepted((await api("POST", path + "/run", runRequest(v))).data, "run"),
               preview);
      } else if (action === "stop") {
        dialog(stopFormHTML(job), "Stop", async v => accepted((await api("POST", path + "/stop", stopRequest(v))).data, "stop"));
      } else if (action === "publish") {
        let saved = (await api("GET", path + "/draft")).data.spec;
        dialog(publishFormHTML(job, saved), "Publish", async v => {
          if (v.spec !== saved) throw new Error(draftStateText(true));  // never published without saying so
          const r = (await api("POST", path + "/versions", publishRequest(v))).data;
          banner(publishedText(name, r), true);
          if (r.operation) state.following = { id: r.operation.id, what: "publish and run" };
        });
        // Saving the draft is its own action: Publish is off while the text differs from the saved draft.
        const f = $("dialog-form"), ok = f.querySelector('.buttons button[value="ok"]');
        const dirty = () => { const d = f.elements.spec.value !== saved; ok.disabled = d; $("draft-state").textContent = draftStateText(d); };
        f.oninput = dirty;
        f.querySelector("button[data-save-draft]").onclick = async () => {
          try {
            const d = (await api("PUT", path + "/draft", { spec: f.elements.spec.value })).data;
            saved = f.elements.spec.value;
            dirty();
            $("draft-state").textContent = draftStateText(false, d.updatedAt);
            $("dialog-error").textContent = "";
          } catch (e) { $("dialog-error").textContent = messageOf(e); }
        };
        if (job.latestVersion) {  // before anything is published or stopped: where the latest version's state goes
          api("GET", `${path}/diff?from=latest&to=draft`).then(r => {
            const box = $("publish-mapping");
            if (box) box.innerHTML = `<p>State of v${esc(job.latestVersion)} in the new version:</p>` + mappingHTML(r.data.mapping);
          }).catch(e => { const box = $("publish-mapping"); if (box) box.textContent = messageOf(e); });
        }
      } else if (action === "drill") {
        const [vs, ss] = await Promise.all([api("GET", path + "/versions"), api("GET", path + "/snapshots")]);
        dialog(drillFormHTML(job, vs.data, ss.data), "Drill",
               async v => accepted((await api("POST", path + "/drill", drillRequest(v))).data, "drill (its report shows in Operations)"));
      } else if (action === "savepoint") {
        accepted((await api("POST", path + "/savepoint", {})).data, "savepoint");
        refresh();
      } else if (action === "delete") {
        if (window.confirm(`Delete job ${name} with its versions and snapshot records?`)) {
          await api("DELETE", path);
          if (state.selected === name) state.selected = null;
          refresh();
        }
      }
    } catch (e) { fail(e); }
  }

  $("banner").addEventListener("click", () => banner(""));
  $("job-filter").addEventListener("input", renderJobs);  // a message stays until clicked or replaced
  $("jobs").addEventListener("click", ev => {
    const w = ev.target.closest("button[data-warn]");
    if (w) { ev.stopPropagation(); toggleWarning(w.dataset.warn); return; }
    const b = ev.target.closest("button[data-act]");
    if (b) { ev.stopPropagation(); act(b.dataset.act, b.dataset.job); return; }
    const row = ev.target.closest("tr.job");
    if (row) { state.selected = row.dataset.job; state.tab = state.tab || "live"; region($("tab-body"), ""); refresh(); }
  });
  $("detail-title").addEventListener("click", ev => {
    const w = ev.target.closest("button[data-warn]");
    if (w) toggleWarning(w.dataset.warn);
  });
  $("tab-body").addEventListener("click", async ev => {
    const sb = ev.target.closest("button[data-spec]");
    if (sb) {
      const v = state.versions.find(x => String(x.version) === sb.dataset.spec);
      if (v) report(`${state.selected} v${v.version}`, specHTML(v));
      return;
    }
    if (ev.target.closest("button[data-diff]")) {
      const pick = id => state.versions.find(x => String(x.version) === $(id).value);
      const from = pick("diff-from"), to = pick("diff-to");
      if (from && to) report(`${state.selected}: v${from.version} → v${to.version}`, diffHTML(from, to));
      return;
    }
    const rb = ev.target.closest("button[data-report]");
    if (rb) {
      const op = (state.ops || []).find(o => o.id === rb.dataset.report);
      if (op && op.result && op.result.report) report(`Drill ${op.id}`, drillReportHTML(op.result.report));
      return;
    }
    const b = ev.target.closest("button[data-drill]");
    if (!b || !state.selected) return;
    const path = `/jobs/${encodeURIComponent(state.selected)}/snapshots/${encodeURIComponent(b.dataset.snapshot)}/${b.dataset.drill}`;
    try {
      const r = (await api("GET", path)).data;
      report(`${b.dataset.drill === "diff" ? "Restore preview of" : "Verify"} ${b.dataset.snapshot}`,
             b.dataset.drill === "diff" ? previewHTML(r) : verifyHTML(r));
    } catch (e) { fail(e); }
  });
  $("tabs").addEventListener("click", ev => {
    const b = ev.target.closest("button[data-tab]");
    if (b) { state.tab = b.dataset.tab; state.ledgerShown = false; region($("tab-body"), ""); renderDetail().catch(fail); }
  });
  $("new-job").addEventListener("click", () => dialog(createFormHTML(), "Create", async v => {
    await api("POST", "/jobs", { name: v.name, spec: v.spec });
    state.selected = v.name;
  }));
  $("set-token").addEventListener("click", () => dialog(
    `<h3>Server token</h3><p class="muted">Needed when the server listens beyond loopback (its --token-file). Kept for this tab only.</p>` +
    `<label>Token<input type="password" name="token" autocomplete="off"></label>`, "Save", async v => {
      if (v.token) window.sessionStorage.setItem("weir-token", v.token); else window.sessionStorage.removeItem("weir-token");
      banner("");
    }));
  refresh();
  window.setInterval(refresh, 2000);
}

if (typeof module !== "undefined") {
  module.exports = { esc, fmtBytes, fmtTime, warningHTML, statusHTML, allowedActions, runningVersion, jobRowHTML, jobsHTML, versionsHTML,
    snapshotsHTML, operationsHTML, resultText, runsHTML, drillReportHTML, drillFormHTML, drillRequest, offsetsText, mappingHTML, previewHTML, ledgerHTML, verifyHTML, runFormHTML, runRequest, stopFormHTML, stopRequest, publishFormHTML,
    publishRequest, publishedText, createFormHTML, errorText, operationDoneText, unreachableText, defaultSnapshot, startConsole,
    consoleWording, matchesFilter, fmtWatermark, liveHTML, checkpointsHTML, graphLayout, graphSVG, graphHTML, lineDiff, diffHTML, specHTML, failuresHTML,
    draftStateText };
} else {
  startConsole(document, window);
}
