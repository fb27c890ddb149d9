"""The console's operator views in a real headless Chromium (Debian's `chromium`
via Playwright) against a live `weir server`, Tansu and MariaDB: the live job
view (figures per node and partition, watermarks, checkpoint history) checked
against the server's own `/metrics`, the job graph drawn as SVG, a version's
spec and the diff of two versions, the failures list, and saving a draft as an
explicit action. At 1,400 and 390 px; any page or console error fails the test."""
import re
import time

import pytest

from control_plane_support import create_tables, job_spec, produce, wait_exact, wait_until
from test_console_browser import (assert_dialog_fits, assert_no_page_overflow, banner_after, close_dialog, open_dialog,
                                  page, set_width, tab)  # noqa: F401 (page is a fixture)
from test_control_plane import server, spec_file  # noqa: F401 (server is a fixture)

SAMPLE = re.compile(r'^(weir_[a-z_]+)\{([^}]*)\} (\S+)$')


@pytest.fixture
def job(names):
    return "lv-" + names["topic"][2:]


def prometheus(server, job):
    """The job's samples from /metrics: {(family, node or partition or ""): value}."""
    out = {}
    for line in server.api("GET", "/metrics").text.splitlines():
        m = SAMPLE.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2)))
        if labels.get("job") != job:
            continue
        out[(m.group(1), labels.get("node") or labels.get("partition") or "")] = float(m.group(3))
    return out


def page_figures(page):
    """What the live tab shows, read from the cells' exact values."""
    return page.evaluate("""() => {
        const out = {};
        for (const row of document.querySelectorAll('table.live-nodes tr[data-node]'))
            for (const cell of row.querySelectorAll('td[data-fig]'))
                out[cell.dataset.fig + ' ' + row.dataset.node] = cell.dataset.value;
        for (const row of document.querySelectorAll('table.live-lag tr[data-partition]'))
            out['lag ' + row.dataset.partition] = row.querySelector('td[data-fig]').dataset.value;
        for (const f of document.querySelectorAll('.figure[data-total]')) out['total ' + f.dataset.total] = f.dataset.value;
        return out;
    }""")


def expected_from(metrics):
    """The same figures as /metrics gives them, keyed like `page_figures`."""
    names = {"weir_node_records_in_total": "recordsIn", "weir_node_records_out_total": "recordsOut",
             "weir_node_backpressure_ms_total": "backpressureMs", "weir_node_watermark_ms": "watermarkMs",
             "weir_partition_lag": "lag", "weir_records_in_total": "total recordsIn",
             "weir_records_out_total": "total recordsOut", "weir_rejected_records_total": "total rejectedRecords",
             "weir_late_records_total": "total lateRecords", "weir_checkpoints_total": "total checkpoints",
             "weir_restarts_total": "total restarts"}
    out = {}
    for (family, label), value in metrics.items():
        if family in names:
            out[f"{names[family]} {label}".strip()] = value
    return out


def same(shown, expected):
    """Every figure /metrics has for the job is on the page with the same value."""
    missing = [k for k in expected if k not in shown]
    wrong = [(k, shown[k], v) for k, v in expected.items() if k in shown and abs(float(shown[k] or "nan") - v) > 1e-6 * max(1, abs(v))]
    return not missing and not wrong, (missing, wrong)


def test_live_view_graph_history_and_draft(tmp_path, server, names, db, job, page):
    create_tables(db)
    topic = names["topic"]
    server.cli("create", job, "--file", spec_file(tmp_path, job_spec(job, topic, names["db"], event_time=True), "v1.yaml"))
    server.cli("publish", job, "--description", "first")
    row = f'#jobs tr.job[data-job="{job}"]'
    page.wait_for_selector(row)

    # A run that fails (no topic yet): it goes to the Failures tab, its suggestion in the console's words.
    server.cli("run", job, check=False)
    server.wait_status(job, "stopped")
    wait_until(lambda: any(o["status"] == "failed" for o in server.ok("GET", f"/api/v1/jobs/{job}/operations").json),
               60, "the failed run operation")

    produce(topic, 0, 3_000)
    server.cli("run", job)
    server.wait_status(job, "running")
    wait_exact(db, topic, 3_000)

    # The job list filters by name and status.
    page.fill("#job-filter", "no-such-job")
    page.wait_for_selector("#jobs >> text=No job matches")
    page.fill("#job-filter", f"{job[:6]} running")
    page.wait_for_selector(row)
    page.fill("#job-filter", "stopped")
    page.wait_for_selector("#jobs >> text=No job matches")
    page.fill("#job-filter", "")
    page.wait_for_selector(row)

    # The live view is the job's first tab.
    page.click(f"{row} td b")
    page.wait_for_selector('table.live-nodes tr[data-node="events"]')
    assert page.get_attribute('#tabs button[data-tab="live"]', "class") == "active"

    # Live figures match /metrics within one refresh: once the run's figures are steady, the page shows them exactly.
    def steady():
        a = prometheus(server, job)
        time.sleep(2.5)
        b = prometheus(server, job)
        return b if a == b and b.get(("weir_records_in_total", "")) == 3_000 else None
    metrics = wait_until(steady, 60, "steady figures in /metrics")
    expected = expected_from(metrics)
    for node in ("events", "per-user", "totals", "big", "slim", "out"):
        assert f"recordsIn {node}" in expected and f"watermarkMs {node}" in expected, (node, sorted(expected))
    assert sum(v for k, v in expected.items() if k.startswith("lag ")) == 0 and len([k for k in expected if k.startswith("lag ")]) == 4
    deadline = time.time() + 4.5  # the page refreshes every 2 s; the run writes figures every 2 s
    while True:
        ok, why = same(page_figures(page), expected)
        if ok or time.time() > deadline:
            break
        page.wait_for_timeout(250)
    assert ok, why
    # The watermark is the newest event time less the bound (and 1 ms), shown as a UTC time.
    wm = expected["watermarkMs events"]
    assert 1_000_000_000_000 < wm < 10_000_000_000_000
    cell = page.locator('tr[data-node="events"] td[data-fig="watermarkMs"]').inner_text()
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$", cell), cell

    # Checkpoint history: completed checkpoints with duration and size; a savepoint joins it.
    page.wait_for_selector('table.live-checkpoints tr[data-status="completed"]')
    first = page.locator('table.live-checkpoints tbody tr').first
    cells = [first.locator("td").nth(i).inner_text() for i in range(7)]
    assert cells[2] == "completed" and re.match(r"chk-\d+", cells[3]) and cells[5].endswith("ms") and cells[6] != "–", cells
    page.click(f'#jobs button[data-act="savepoint"][data-job="{job}"]')
    banner_after(page, ".info", "savepoint succeeded")
    page.wait_for_selector('table.live-checkpoints tr[data-status="completed"] >> text=savepoint')
    live = server.ok("GET", f"/api/v1/jobs/{job}/live").json
    assert live["checkpoints"][0]["kind"] in ("savepoint", "checkpoint") and any(c["kind"] == "savepoint" for c in live["checkpoints"])
    assert all(c["durationMs"] is not None and c["bytes"] is not None for c in live["checkpoints"] if c["status"] == "completed")
    page.screenshot(path=str(tmp_path / "console-live-1400.png"), full_page=True)

    # The job graph: every node with its kind and parallelism, an edge per input, live rates while it runs.
    tab(page, "graph")
    page.wait_for_selector('svg.graph g.node[data-node="out"]')
    nodes = page.eval_on_selector_all("svg.graph g.node", "gs => gs.map(g => g.dataset.node)")
    assert sorted(nodes) == sorted(["events", "per-user", "totals", "big", "slim", "out"]), nodes
    edges = page.eval_on_selector_all("svg.graph path.edge", "ps => ps.map(p => p.dataset.from + '>' + p.dataset.to)")
    assert sorted(edges) == sorted(["events>per-user", "per-user>totals", "events>big", "big>slim", "slim>out"]), edges
    assert "p=2" in page.text_content('svg.graph g.node[data-node="events"]')
    assert "/s" in page.text_content('svg.graph g.node[data-node="events"] text[data-fig="rates"]')
    assert "amount > 900" in page.inner_text("table.graph-nodes")
    # The edges go left to right: every reader's box lies right of its input's.
    xs = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('svg.graph g.node')].map(
        g => [g.dataset.node, g.getBoundingClientRect().x]))""")
    assert all(xs[b] > xs[a] for a, b in (e.split(">") for e in edges)), xs
    page.screenshot(path=str(tmp_path / "console-graph-1400.png"), full_page=True)

    # At 390 px the live view and the graph still fit the page (tables and the picture scroll or shrink in their boxes).
    set_width(page, 390)
    for name, ready in (("live", "table.live-nodes"), ("graph", "svg.graph"), ("failures", "table.failures")):
        tab(page, name)
        page.wait_for_selector(ready)
        assert_no_page_overflow(page, f"390 px, {name} tab")
    tab(page, "graph")
    page.wait_for_selector("svg.graph")
    box = page.locator("svg.graph").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    tab(page, "live")
    page.wait_for_selector("table.live-nodes")
    page.screenshot(path=str(tmp_path / "console-live-390.png"), full_page=True)
    set_width(page, 1400)

    # Failures: the failed run with its error, and a suggestion that speaks of the console, not of CLI commands or URLs.
    tab(page, "failures")
    page.wait_for_selector("table.failures")
    text = page.inner_text("table.failures")
    assert "failed" in text and topic in text, text
    assert "/api/v1" not in text and "weir job" not in text, text

    # Saving a draft is explicit: an edit leaves the saved draft alone and holds Publish back until it is saved.
    saved = server.ok("GET", f"/api/v1/jobs/{job}/draft").json["spec"]
    open_dialog(page, job, "publish")
    ok_button = '#dialog-form .buttons button[value="ok"]'
    assert page.is_enabled(ok_button)
    v2 = job_spec(job, topic, names["db"], event_time=True, valid_node=True)
    page.fill('#dialog-form textarea[name="spec"]', v2)
    assert page.is_disabled(ok_button) and "Unsaved changes" in page.inner_text("#draft-state")
    assert server.ok("GET", f"/api/v1/jobs/{job}/draft").json["spec"] == saved, "an edit alone saves nothing"
    assert_dialog_fits(page, "1400 px, publish dialog with a draft bar")
    page.click("#dialog-form button[data-save-draft]")
    page.wait_for_selector("#draft-state >> text=Draft saved at")
    assert page.is_enabled(ok_button)
    assert "id: valid" in server.ok("GET", f"/api/v1/jobs/{job}/draft").json["spec"]
    page.fill('#dialog-form input[name="description"]', "adds a filter")
    page.click(ok_button)
    page.wait_for_selector("#dialog:not([open])", state="attached")
    banner_after(page, ".info", "published")
    assert [v["version"] for v in server.ok("GET", f"/api/v1/jobs/{job}/versions").json] == [2, 1]

    # A publish that fails (an invalid draft, saved on purpose) publishes nothing and says why in the dialog.
    open_dialog(page, job, "publish")
    page.fill('#dialog-form textarea[name="spec"]', v2.replace('filter: "amount >= 1"', 'filter: "amount >>> 1"'))
    page.click("#dialog-form button[data-save-draft]")
    page.wait_for_selector("#draft-state >> text=Draft saved at")
    page.fill('#dialog-form input[name="description"]', "broken")
    page.click(ok_button)
    page.wait_for_function("document.getElementById('dialog-error').textContent.length > 0")
    assert "valid" in page.inner_text("#dialog-error") or "filter" in page.inner_text("#dialog-error")
    close_dialog(page)
    assert [v["version"] for v in server.ok("GET", f"/api/v1/jobs/{job}/versions").json] == [2, 1]
    # Chromium logs every 4xx answer to fetch as a console error: exactly the one refusal provoked here is expected.
    refusals = [e for e in page.errors if "status of 422" in e]
    assert len(refusals) == 1, page.errors
    page.errors.remove(refusals[0])

    # History: each version's spec can be read, and two versions compared line by line.
    tab(page, "versions")
    page.wait_for_selector('#tab-body button[data-spec="1"]')
    page.click('#tab-body button[data-spec="1"]')
    page.wait_for_selector("#dialog[open] pre.spec")
    assert "id: events" in page.inner_text("#dialog[open] pre.spec") and "id: valid" not in page.inner_text("#dialog[open] pre.spec")
    close_dialog(page)
    page.select_option("#diff-from", "1")
    page.select_option("#diff-to", "2")
    page.click('#tab-body button[data-diff]')
    page.wait_for_selector("#dialog[open] pre.diff")
    added = page.eval_on_selector_all("#dialog[open] pre.diff .add", "xs => xs.map(x => x.textContent)")
    removed = page.eval_on_selector_all("#dialog[open] pre.diff .del", "xs => xs.map(x => x.textContent)")
    assert any("id: valid" in a for a in added) and any("inputs: [valid]" in a for a in added), added
    assert any("inputs: [events]" in r for r in removed), removed
    set_width(page, 390)
    assert_dialog_fits(page, "390 px, diff dialog")
    close_dialog(page)
    set_width(page, 1400)

    # After a stop the live view keeps the run's last figures and says it ended.
    server.cli("stop", job)
    server.wait_status(job, "stopped")
    tab(page, "live")
    page.wait_for_selector("#tab-body >> text=ended")
    assert server.ok("GET", f"/api/v1/jobs/{job}/live").json["ended"] is True
