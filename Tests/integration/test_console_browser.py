"""The web console in a real headless Chromium (Debian's `chromium`, driven by
Playwright from PyPI) against a live `weir server`, Tansu and MariaDB.

The restore drills a user rehearses from the console, clicked through as a user
would: the publish dialog's state mapping, the run dialog's offset diff and
predicted time to restore, a snapshot's restore preview and verify report, the
transactions tab, a drill with its report, and the runs tab with each restore's
measured time. Then the page an operator lives in: the layout at 1,400, 800 and
390 px (no horizontal overflow of the page, dialog buttons on screen), a text
selection that survives the 2 s refresh, the log following its tail, the bar
that follows each operation to its result or error, the keyboard-reachable
warning, the job-name pattern, the preselected stop snapshot and a server that
does not answer. Every page error or console error fails the test."""
import re

import pytest

from control_plane_support import create_tables, job_spec, produce, wait_exact, wait_until
from test_control_plane import server, spec_file  # noqa: F401 (server is a fixture)

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def job(names):
    return "br-" + names["topic"][2:]


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        pg = context.new_page()
        pg.errors = []
        pg.on("pageerror", lambda e: pg.errors.append(f"page error: {e}"))
        pg.on("console", lambda m: m.type == "error" and pg.errors.append(f"console error: {m.text}"))
        pg.set_default_timeout(30_000)
        pg.goto(server.url + "/")
        yield pg
        errors = list(pg.errors)
        browser.close()
        assert errors == [], errors


def open_dialog(page, job, action):
    page.click(f'#jobs button[data-act="{action}"][data-job="{job}"]')
    page.wait_for_selector("#dialog[open]")


def close_dialog(page):
    page.click('#dialog-form button[value="cancel"]')
    page.wait_for_selector("#dialog:not([open])", state="attached")


def tab(page, name):
    page.click(f'#tabs button[data-tab="{name}"]')


def test_restore_drills_in_a_real_browser(tmp_path, server, names, db, job, page):
    topic = names["topic"]
    create_tables(db)
    produce(topic, 0, 2_000)
    spec = job_spec(job, topic, names["db"], restart_attempts=0)
    server.cli("create", job, "--file", spec_file(tmp_path, spec, "j.yaml"))
    server.cli("publish", job, "--description", "v1")
    server.cli("run", job, "--wait")
    wait_exact(db, topic, 2_000)
    page.wait_for_selector(f'#jobs tr.job[data-job="{job}"] .status.running')

    # 2. State mapping at publish: the publish dialog says where v1's state goes, before anything is published.
    open_dialog(page, job, "publish")
    page.wait_for_selector("#publish-mapping table")
    mapping = page.inner_text("#publish-mapping")
    assert re.search(r"per-user\s+restored", mapping), mapping
    close_dialog(page)
    assert server.job(job)["latestVersion"] == 1

    # Stop with a snapshot from the stop dialog.
    open_dialog(page, job, "stop")
    page.check('#dialog-form input[name="snapshot"]')
    page.click('#dialog-form button[value="ok"]')
    server.wait_status(job, "stopped")
    produce(topic, 2_000, 300)
    page.wait_for_selector(f'#jobs tr.job[data-job="{job}"] .status.stopped')

    # 1 and 4. The run dialog previews restoring the latest snapshot: offsets, replay, predicted time.
    open_dialog(page, job, "run")
    page.select_option('#dialog-form select[name="snapshot"]', "latest")
    page.wait_for_selector("#restore-preview table.drill")
    preview = page.inner_text("#restore-preview")
    assert "300 records to replay" in preview and "The restore would go on." in preview, preview
    assert "Predicted time to restore" in preview, preview
    for p in range(4):
        assert f"{topic}/{p}" in preview, preview
    close_dialog(page)
    assert server.job(job)["status"] == "stopped", "the preview started nothing"

    # 1 and 3. A snapshot's Preview restore and Verify buttons.
    page.click(f'#jobs tr.job[data-job="{job}"] td b')
    tab(page, "snapshots")
    page.wait_for_selector('#tab-body button[data-drill="verify"]')
    page.click('#tab-body button[data-drill="diff"] >> nth=0')
    page.wait_for_selector("#dialog[open] table.drill")
    assert "records to replay" in page.inner_text("#dialog")
    page.click('#dialog-form button[value="ok"]')
    page.click('#tab-body button[data-drill="verify"] >> nth=0')
    page.wait_for_selector("#dialog[open] >> text=Verify passed")
    assert "per-user" in page.inner_text("#dialog")
    page.click('#dialog-form button[value="ok"]')

    # 5. The transactions tab: nothing in doubt after a clean stop.
    tab(page, "transactions")
    page.wait_for_selector("#tab-body >> text=No sink transaction of this job is in doubt")

    # 6. A drill from the Drill… dialog; its report opens from the operations tab.
    open_dialog(page, job, "drill")
    assert page.is_visible('#dialog-form select[name="snapshot"]'), "a stopped job is drilled from a chosen snapshot"
    page.click('#dialog-form button[value="ok"]')
    page.wait_for_selector("#dialog:not([open])", state="attached")
    drill = wait_until(lambda: next((o for o in server.api("GET", f"/api/v1/jobs/{job}/operations").json
                                     if o["type"] == "drill" and o["status"] in ("succeeded", "failed")), None),
                       180, "the drill to finish")
    assert drill["status"] == "succeeded", drill
    tab(page, "operations")
    page.click(f'#tab-body button[data-report="{drill["id"]}"]')
    page.wait_for_selector("#dialog[open] >> text=PASSED")
    report = page.inner_text("#dialog")
    assert "identical" in report and "DIFFERENT" not in report and "Time to restore" in report, report
    page.click('#dialog-form button[value="ok"]')

    # 4. Run from the latest snapshot through the run dialog; the runs tab shows its measured time to restore.
    open_dialog(page, job, "run")
    page.select_option('#dialog-form select[name="snapshot"]', "latest")
    page.wait_for_selector("#restore-preview table.drill")
    page.click('#dialog-form button[value="ok"]')
    server.wait_status(job, "running")
    wait_exact(db, topic, 2_300)
    tab(page, "runs")
    restored = server.api("GET", f"/api/v1/jobs/{job}/runs").json[0]
    assert restored["restoredFrom"], restored
    page.wait_for_selector(f'#tab-body >> text={restored["id"]}')
    row = page.inner_text(f'#tab-body tr:has-text("{restored["id"]}")')
    assert restored["restoredFrom"] in row and re.search(r"\d+ ms", row), row
    server.cli("stop", job, "--wait")


# --- Layout, in-place refresh, operation feedback, access -----------------------------------------------------

WIDTHS = (1400, 800, 390)


def set_width(page, width):
    page.set_viewport_size({"width": width, "height": 900 if width > 500 else 844})


def assert_no_page_overflow(page, where):
    wide, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert wide <= inner, f"{where}: the page is {wide} px wide in a {inner} px viewport"


def assert_dialog_fits(page, where):
    assert_no_page_overflow(page, where)
    buttons = page.locator("#dialog[open] .buttons button")
    assert buttons.count() == 2, where
    inner_w, inner_h = page.evaluate("[window.innerWidth, window.innerHeight]")
    for i in range(buttons.count()):
        b = buttons.nth(i)
        b.scroll_into_view_if_needed()
        box = b.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= inner_w, (where, b.inner_text(), box, inner_w)
        assert box["y"] >= 0 and box["y"] + box["height"] <= inner_h, (where, b.inner_text(), box, inner_h)


def check_layout(page, job, width, shots):
    """The job list, each tab and each dialog at one viewport width: nothing widens the page."""
    set_width(page, width)
    assert_no_page_overflow(page, f"{width} px, job list")
    page.click(f'#jobs tr.job[data-job="{job}"] td b')
    for name in ("live", "graph", "versions", "snapshots", "operations", "runs", "failures", "logs", "transactions"):
        tab(page, name)
        page.wait_for_function("document.querySelector('#tab-body').textContent.trim().length > 0")
        if name == "logs":
            longest = page.evaluate("Math.max(...document.getElementById('log').textContent.split('\\n').map(l => l.length))")
            assert longest > 200, "the log has a long line"
        if name == "operations":
            assert "failed" in page.inner_text("#tab-body"), "the failed run's long error is in the table"
        assert_no_page_overflow(page, f"{width} px, {name} tab")
    tab(page, "operations")
    page.wait_for_selector("#tab-body table")
    if shots is not None:
        page.screenshot(path=str(shots / f"console-{width}.png"), full_page=True)
    for action, ready in (("publish", "#publish-mapping table"), ("run", "#restore-preview table.drill"), ("stop", None),
                          ("drill", None)):
        if page.is_enabled(f'#jobs button[data-act="{action}"][data-job="{job}"]'):  # Run… only when stopped
            check_dialog(page, job, action, ready, f"{width} px")
    for opener in ("#new-job", "#set-token"):
        page.click(opener)
        page.wait_for_selector("#dialog[open]")
        assert_dialog_fits(page, f"{width} px, {opener} dialog")
        close_dialog(page)


def check_dialog(page, job, action, ready, where):
    open_dialog(page, job, action)
    if ready:
        page.wait_for_selector(ready)
    assert_dialog_fits(page, f"{where}, {action} dialog")
    close_dialog(page)


def banner_after(page, css, text):
    page.wait_for_selector(f"#banner{css} >> text={text}", timeout=120_000)
    return page.inner_text("#banner")


def test_layout_refresh_feedback_and_access(tmp_path, server, names, db, job, page):
    # A topic name of 140 characters: long unbreakable words in errors, the log and the tables.
    topic = names["topic"] + "_" + "l" * 129
    create_tables(db)
    spec = job_spec(job, topic, names["db"], restart_attempts=0)
    server.cli("create", job, "--file", spec_file(tmp_path, spec, "j.yaml"))
    server.cli("publish", job, "--description", "v1")
    page.wait_for_selector(f'#jobs tr.job[data-job="{job}"]')
    row = f'#jobs tr.job[data-job="{job}"]'

    # 3. A failed operation: the bar turns red with the error and the suggestion (the topic does not exist yet).
    open_dialog(page, job, "run")
    page.click('#dialog-form button[value="ok"]')
    page.wait_for_selector("#banner.info >> text=operation")
    text = banner_after(page, ":not(.info)", "run failed")
    assert topic in text and "Suggestion: " in text, text
    server.wait_status(job, "stopped")
    page.wait_for_selector(f"{row} .status.stopped")
    # 4. "Running version" shows nothing for a stopped job.
    assert page.inner_text(f"{row} td:nth-child(3)").strip() == "–"

    # 4. The warning is reachable by keyboard: Tab reaches it, its text shows on focus, Enter keeps it open.
    warn, text_box = f"{row} button.warning", f'[id="warn-row-{job}"]'
    assert not page.is_visible(text_box)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate(f"document.activeElement && document.activeElement.dataset.warn === 'row-{job}'"):
            break
    else:
        pytest.fail("Tab never reaches the warning")
    assert page.is_visible(text_box) and topic in page.inner_text(text_box)
    assert page.get_attribute(warn, "aria-describedby") == f"warn-row-{job}"
    page.keyboard.press("Enter")
    assert page.get_attribute(warn, "aria-expanded") == "true"
    page.click("header h1")  # focus leaves: a clicked (tapped) warning stays open
    assert page.is_visible(text_box)
    page.click(warn)
    page.click("header h1")
    assert page.get_attribute(warn, "aria-expanded") == "false" and not page.is_visible(text_box)

    # 4. The job-name pattern is a valid expression under Chrome's `v` flag.
    page.click("#new-job")
    name = page.locator('#dialog-form input[name="name"]')
    name.fill("bad name!")
    assert name.evaluate("i => i.checkValidity()") is False
    name.fill("good-name.1")
    assert name.evaluate("i => i.checkValidity()") is True
    close_dialog(page)

    # 3. A run that succeeds: the bar says so, and that it started without a snapshot.
    produce(topic, 0, 2_000)
    open_dialog(page, job, "run")
    assert page.input_value('#dialog-form select[name="snapshot"]') == "", "no stop snapshot yet"
    page.click('#dialog-form button[value="ok"]')
    text = banner_after(page, ".info", "run succeeded")
    assert "started without a snapshot" in text, text
    server.wait_status(job, "running")
    wait_exact(db, topic, 2_000)
    page.wait_for_selector(f"{row} .status.running")

    # 1 and 5. The layout holds at each width; screenshots of the job view at 1,400 and 390 px (not committed).
    for width in WIDTHS:
        check_layout(page, job, width, tmp_path if width in (1400, 390) else None)
    assert (tmp_path / "console-1400.png").stat().st_size > 0 and (tmp_path / "console-390.png").stat().st_size > 0
    set_width(page, 1400)

    # 2. The log follows new lines at its bottom and stays put when scrolled up.
    tab(page, "logs")
    page.wait_for_function("document.getElementById('log') && document.getElementById('log').textContent.length > 0")
    page.evaluate("const l = document.getElementById('log'); l.scrollTop = l.scrollHeight")
    height = page.evaluate("document.getElementById('log').scrollHeight")
    page.wait_for_function(f"document.getElementById('log').scrollHeight > {height}", timeout=60_000)
    page.wait_for_timeout(300)
    assert page.evaluate("(l => l.scrollTop + l.clientHeight >= l.scrollHeight - 8)(document.getElementById('log'))")
    page.evaluate("document.getElementById('log').scrollTop = 0")
    height = page.evaluate("document.getElementById('log').scrollHeight")
    page.wait_for_function(f"document.getElementById('log').scrollHeight > {height}", timeout=60_000)
    assert page.evaluate("document.getElementById('log').scrollTop") == 0

    # 3. Stop with a snapshot: the bar names the snapshot.
    open_dialog(page, job, "stop")
    page.check('#dialog-form input[name="snapshot"]')
    page.click('#dialog-form button[value="ok"]')
    text = banner_after(page, ".info", "stop succeeded")
    stop = next(s for s in server.api("GET", f"/api/v1/jobs/{job}/snapshots").json if s["kind"] == "stop")
    assert f"snapshot {stop['id']}" in text, text
    page.wait_for_selector(f"{row} .status.stopped")

    # 2. A selection in a table survives the refreshes.
    tab(page, "snapshots")
    page.wait_for_selector(f'#tab-body td.mono >> text="{stop["id"]}"')
    page.evaluate("""id => {
        const cell = [...document.querySelectorAll('#tab-body td.mono')].find(td => td.textContent === id);
        const range = document.createRange(); range.selectNodeContents(cell);
        const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
    }""", stop["id"])
    before = page.inner_text("#server-state")
    page.wait_for_timeout(4_500)
    assert page.inner_text("#server-state") != before, "the page refreshed meanwhile"
    assert page.evaluate("window.getSelection().toString()") == stop["id"]

    # 1. The run dialog with its restore preview fits each width too (Run… is enabled only now, while stopped).
    for width in WIDTHS:
        set_width(page, width)
        check_dialog(page, job, "run", "#restore-preview table.drill", f"{width} px")
    set_width(page, 1400)

    # 4. The run dialog preselects the stop snapshot; 3. the bar says where the run restored from.
    open_dialog(page, job, "run")
    assert page.input_value('#dialog-form select[name="snapshot"]') == stop["id"]
    page.wait_for_selector("#restore-preview table.drill")
    page.click('#dialog-form button[value="ok"]')
    text = banner_after(page, ".info", "run succeeded")
    assert f"restored from {stop['id']}" in text, text
    server.wait_status(job, "running")

    # 4. A server that does not answer is said plainly, and the page recovers when it answers again.
    page.route("**/api/v1/**", lambda route: route.abort())
    page.wait_for_selector("#banner >> text=does not answer")
    assert "TypeError" not in page.inner_text("#banner") and page.inner_text("#server-state") == "not connected"
    page.unroute("**/api/v1/**")
    page.wait_for_selector("#banner", state="hidden")
    # The browser itself logs each aborted request; those are the test's doing, not the page's.
    page.errors[:] = [e for e in page.errors if "net::ERR_FAILED" not in e]
    server.cli("stop", job, "--wait")
