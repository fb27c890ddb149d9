// Drives the web console's page logic (startConsole) in Node with a minimal
// stand-in for the browser's DOM, against a real `weir server`: the page's own
// fetch calls go to the server, and clicks and dialog submits are dispatched
// to the handlers the page registered.
//
//   node console_dom_driver.js CONSOLE_JS SERVER_URL JOB
//
// Prints one JSON object: what the page showed at each step.
"use strict";
const [script, base, job] = process.argv.slice(2);
const c = require(script);

class El {
  constructor(id) {
    this.id = id; this.innerHTML = ""; this.textContent = ""; this.hidden = false; this.className = "";
    this.style = {}; this.handlers = {}; this.dataset = {}; this.elements = [];
    this.classList = { toggle() {} };
  }
  addEventListener(type, fn) { this.handlers[type] = fn; }
  querySelectorAll() { return []; }
  remove() { delete elements[this.id]; }
  append(text) { this.textContent += text; }
  showModal() { this.open = true; }
  close() { this.open = false; }
}
const elements = {};
const document = { getElementById: id => (elements[id] = elements[id] || new El(id)) };
const storage = {};
let confirmAnswer = true;
const window = {
  fetch: (path, opts) => fetch(base + path, opts),
  sessionStorage: { getItem: k => storage[k] || null, setItem: (k, v) => { storage[k] = v; }, removeItem: k => { delete storage[k]; } },
  setInterval: () => 0,  // the test refreshes by clicking instead
  confirm: () => confirmAnswer,
};
const $ = id => document.getElementById(id);
const sleep = ms => new Promise(r => setTimeout(r, ms));
async function until(what, check) {
  for (let i = 0; i < 600; i++) { if (check()) return; await sleep(50); }
  throw new Error("timed out waiting for " + what + "; jobs=" + $("jobs").innerHTML + " tab=" + $("tab-body").innerHTML +
                  " banner=" + $("banner").textContent);
}
// A click target: `closest(selector)` answers like the real row or button would.
const rowTarget = name => ({ closest: s => (s.startsWith("tr.job") ? { dataset: { job: name } } : null) });
const buttonTarget = (act, name) => ({ closest: s => (s.startsWith("button[data-act]") ? { dataset: { act, job: name } } : null) });
const tabTarget = tab => ({ closest: () => ({ dataset: { tab } }) });
const click = (id, target) => $(id).handlers.click({ target, stopPropagation() {} });
async function submitDialog(fields) {
  await until("the dialog to open", () => $("dialog").open);
  const form = $("dialog-form");
  form.elements = fields;
  await form.onsubmit({ submitter: { value: "ok" }, preventDefault() {} });
}

(async () => {
  const shown = {};
  c.startConsole(document, window);
  await until("the job list", () => $("jobs").innerHTML.includes(`data-job="${job}"`));
  shown.jobs = $("jobs").innerHTML;
  shown.serverState = $("server-state").textContent;

  click("jobs", rowTarget(job));  // select the job: its live view shows
  await until("the live view", () => $("tab-body").innerHTML.includes("run") || $("tab-body").innerHTML.includes("Run"));
  shown.live = $("tab-body").innerHTML;
  click("tabs", tabTarget("versions"));
  await until("the versions tab", () => $("tab-body").innerHTML.includes("<table>"));
  shown.versions = $("tab-body").innerHTML;
  shown.detailTitle = $("detail-title").innerHTML;

  click("tabs", tabTarget("snapshots"));
  await until("the snapshots tab", () => $("tab-body").innerHTML.includes("Kind") || $("tab-body").innerHTML.includes("No snapshots"));
  shown.snapshots = $("tab-body").innerHTML;

  click("tabs", tabTarget("logs"));
  await until("the log", () => $("log").textContent.length > 0);
  shown.log = $("log").textContent;

  // Stop with "create snapshot on stop" ticked, through the stop dialog.
  click("jobs", buttonTarget("stop", job));
  await submitDialog([{ name: "snapshot", type: "checkbox", checked: true }]);
  shown.stopDialogError = $("dialog-error").textContent;
  shown.stopBanner = $("banner").textContent;
  shown.dialogOpenAfterStop = !!$("dialog").open;

  // A refused operation keeps the dialog open with the server's message and suggestion.
  click("jobs", buttonTarget("delete", "no-such-job-" + job));
  await until("the refusal", () => $("banner").textContent.includes("Suggestion"));
  shown.refusal = $("banner").textContent;
  process.stdout.write(JSON.stringify(shown));
  process.exit(0);
})().catch(e => { console.error(String(e && e.stack || e)); process.exit(1); });
