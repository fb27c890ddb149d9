"""The web console in a real headless Chromium (Debian's `chromium`, driven by
Playwright from PyPI) against a live `weir server`, Tansu and MariaDB.

The restore drills a user rehearses from the console, clicked through as a user
would: the publish dialog's state mapping, the run dialog's offset diff and
predicted time to restore, a snapshot's restore preview and verify report, the
transactions tab, a drill with its report, and the runs tab with each restore's
measured time. Every page error or console error fails the test."""
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
