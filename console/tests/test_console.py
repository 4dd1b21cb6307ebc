"""The console in a real browser (headless Chromium, driven by Playwright) against a dev server.

    python console/tests/test_console.py <base-url> <admin-key> <tenant> <screenshots-dir>

Sets up data through the public API, then signs in, sees a graph drawn, triggers a run and
watches its status and node counts appear, sees a failed run mark its node, edits a graph (drag,
add, connect, configure, preview, save with If-Match, a stale save refused), and checks that a
viewer key shows no write buttons. Screenshots go to <screenshots-dir> (the README shows them).
"""

import json
import sys
import time
import urllib.error
import urllib.request

from playwright.sync_api import expect, sync_playwright

BASE, KEY, TENANT, SHOTS = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3], sys.argv[4]


def api(method, path, body=None, key=KEY):
    req = urllib.request.Request(f"{BASE}/api/v1{path}", method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("Authorization", f"Bearer {key}")
    req.add_header("X-Tenant-Id", TENANT)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req) as r:
            text = r.read().decode()
            return json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{method} {path}: {e.code} {e.read().decode()}") from None


def wait_run(pid, rid, want):
    for _ in range(120):
        run = api("GET", f"/pipelines/{pid}/runs/{rid}")
        if run["status"] in want:
            return run
        time.sleep(0.25)
    raise AssertionError(f"run {rid} stayed {run['status']}")


# Data through the API: a branching pipeline (source → two filters → target), and one that fails
# at its target (a row without its required field, under errorHandling: fail).
records = [{"id": i, "kind": "a" if i % 2 else "b", "email": f"u{i}@x.io"} for i in range(1, 21)]
conn = api("POST", "/connectors", {"name": "Signups", "type": "inline", "config": {"records": records}})["id"]
fields = [{"name": "id", "type": "integer", "primaryKey": True}, {"name": "kind", "type": "text"}, {"name": "email", "type": "text", "required": True}]
schema = api("POST", "/schemas", {"name": "signups", "displayName": "Signups", "fields": fields})["id"]
branches_made = api("POST", "/pipelines", {
    "name": "Signups by kind", "connectorId": conn, "schemaId": schema,
    "nodes": [
        {"id": "read", "nodeType": "source", "label": "Signups API"},
        {"id": "a", "nodeType": "filter", "label": "kind = a", "config": {"condition": {"field": "kind", "op": "eq", "value": "a"}}},
        {"id": "b", "nodeType": "filter", "label": "kind = b", "config": {"condition": {"field": "kind", "op": "eq", "value": "b"}}},
        {"id": "mask", "nodeType": "transform", "label": "Mask e-mail", "config": {"type": "mask_pii", "fields": ["email"]}},
        {"id": "write", "nodeType": "target", "label": "Signups table"},
    ],
    "edges": [{"source": "read", "target": "a"}, {"source": "read", "target": "b"}, {"source": "a", "target": "mask"},
              {"source": "b", "target": "write"}, {"source": "mask", "target": "write"}],
})
branches = branches_made["id"]
# The server gives nodes permanent ids of its own: find them by label.
node = {n["label"]: n["id"] for n in branches_made["nodes"]}
bad_conn = api("POST", "/connectors", {"name": "Broken feed", "type": "inline", "config": {"records": [{"id": 1, "email": "a@x"}, {"id": 2}]}})["id"]
failing_made = api("POST", "/pipelines", {
    "name": "Strict import", "connectorId": bad_conn, "schemaId": schema, "executionConfig": {"errorHandling": "fail", "batchSize": 1},
    "nodes": [{"id": "in", "nodeType": "source", "label": "Broken feed"}, {"id": "out", "nodeType": "target", "label": "Signups table"}],
    "edges": [{"source": "in", "target": "out"}],
})
failing = failing_made["id"]
failing_target = next(n["id"] for n in failing_made["nodes"] if n["nodeType"] == "target")
failed_run = api("POST", f"/pipelines/{failing}/run")["id"]
wait_run(failing, failed_run, {"failed"})
viewer = api("POST", "/api-keys", {"name": "console viewer", "role": "viewer"})["key"]


def sign_in(page, key):
    page.goto(f"{BASE}/")
    page.fill("#tenant", TENANT)
    page.fill("#key", key)
    page.click("button[type=submit]")
    expect(page.locator("#pipelines")).to_be_visible()


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    # A wrong key is refused on the sign-in form, and nothing is kept.
    page.goto(f"{BASE}/")
    page.fill("#tenant", TENANT)
    page.fill("#key", "pl.nope")
    page.click("button[type=submit]")
    expect(page.locator("#signin-error")).to_contain_text("API key")
    assert page.evaluate("sessionStorage.getItem('pipelines')") is None

    sign_in(page, KEY)
    assert KEY not in page.url, "the key is never in a URL"
    expect(page.locator("#who")).to_contain_text("admin")
    expect(page.locator("#pipelines tr[data-id]")).to_have_count(2)
    page.screenshot(path=f"{SHOTS}/console-pipelines.png")

    # The graph, drawn by layers (no positions), every node type its own shape.
    page.click(f"a[href='#/pipelines/{branches}']")
    expect(page.locator("svg#graph g.node")).to_have_count(5)
    for kind, shape in [("source", "ellipse"), ("filter", "polygon"), ("transform", "rect"), ("target", "rect")]:
        assert page.locator(f"svg#graph g.node.{kind} {shape}").count() >= 1, kind
    def x(label):
        transform = page.locator(f"g.node[data-node='{node[label]}']").get_attribute("transform")
        return float(transform.split("(")[1].split(",")[0])
    assert x("Signups API") < x("kind = a") < x("Mask e-mail") < x("Signups table"), "left to right by layer"
    assert x("kind = a") == x("kind = b"), "the two branches share a layer"

    # Trigger: the run appears, goes on to completed, and the nodes show their counts.
    page.click("#trigger")
    expect(page.locator("#runs tr[data-run]")).to_have_count(1)
    expect(page.locator("#runs tr[data-run] .status").first).to_have_attribute("data-status", "completed", timeout=30_000)
    expect(page.locator(f"g.node[data-node='{node['Signups table']}'] .counts")).to_have_attribute("data-counts", "20/20")
    expect(page.locator(f"g.node[data-node='{node['kind = a']}'] .counts")).to_have_attribute("data-counts", "20/10")
    page.screenshot(path=f"{SHOTS}/console-pipeline.png")

    # The run page: its report and log.
    page.click("#runs tr[data-run] a")
    expect(page.locator("#report")).to_contain_text("completed")
    expect(page.locator("#log")).to_contain_text("finish")

    # A failed run marks the node it failed at; its page shows the error.
    page.goto(f"{BASE}/#/pipelines/{failing}")
    expect(page.locator("g.node.failed")).to_have_attribute("data-node", failing_target)
    page.click("#runs tr[data-run] a")
    expect(page.locator("#report")).to_contain_text("VALIDATION_FAILED")
    page.screenshot(path=f"{SHOTS}/console-failed-run.png")

    # The schema page: fields and records (the e-mails masked by the branch that masks them).
    page.goto(f"{BASE}/#/schemas/{schema}")
    expect(page.locator("#fields tr")).to_have_count(4)
    expect(page.locator("#records tr")).to_have_count(21)

    # Re-run from the page: a second run of the same pipeline.
    page.goto(f"{BASE}/#/pipelines/{branches}")
    page.locator("button.rerun").first.click()
    expect(page.locator("#runs tr[data-run]")).to_have_count(2)

    # The editor: drag a node, put a new filter between the two, edit its config, preview the
    # draft (nothing saved yet), then save it with If-Match; a save over a newer version is refused.
    page.goto(f"{BASE}/#/pipelines/{failing}")
    # The page shown must be this pipeline's before its Edit link is used (the last one had one too).
    expect(page.locator("main h2")).to_contain_text("Strict import")
    page.click("#edit")
    expect(page.locator("main h2")).to_contain_text("Edit Strict import")
    expect(page.locator("#edit-version")).to_have_attribute("data-version", "1")
    expect(page.locator("svg#graph g.node")).to_have_count(2)
    target = page.locator(f"g.node[data-node='{failing_target}']")
    before = target.bounding_box()
    page.mouse.move(before["x"] + 30, before["y"] + 20)
    page.mouse.down()
    page.mouse.move(before["x"] + 230, before["y"] + 80, steps=8)
    page.mouse.up()
    assert target.bounding_box()["x"] > before["x"] + 100, "the node moved with the pointer"
    page.click("#add-filter")
    page.fill("#node-label", "has e-mail")
    page.fill("#node-config", json.dumps({"condition": {"field": "email", "op": "exists"}}))
    page.click("#apply-node")
    page.locator("button.drop-edge").first.click()
    source_node = next(n["id"] for n in failing_made["nodes"] if n["nodeType"] == "source")
    for a, b in [(source_node, "new-1"), ("new-1", failing_target)]:
        page.click("#connect")
        page.click(f"g.node[data-node='{a}']")
        page.click(f"g.node[data-node='{b}']")
    expect(page.locator("#edges li")).to_have_count(2)
    page.click("#preview")
    expect(page.locator("#preview-out")).to_contain_text("2 records read")
    expect(page.locator("g.node[data-node='new-1'] .counts")).to_have_attribute("data-counts", "2/1")
    assert api("GET", f"/pipelines/{failing}")["version"] == 1, "a preview saves nothing"
    page.screenshot(path=f"{SHOTS}/console-editor.png")
    page.click("#save")
    expect(page.locator("#edit-note")).to_contain_text("Saved as version 2")
    saved = api("GET", f"/pipelines/{failing}")
    assert (saved["version"], len(saved["nodes"]), len(saved["edges"])) == (2, 3, 2), saved
    moved = next(n for n in saved["nodes"] if n["id"] == failing_target)["position"]
    assert moved["x"] > 100, moved
    api("PUT", "/pipelines", {"id": failing, "description": "changed elsewhere"})
    box = target.bounding_box()
    page.mouse.move(box["x"] + 30, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + 30, box["y"] + 120, steps=5)
    page.mouse.up()
    page.click("#save")
    expect(page.locator("#edit-error")).to_contain_text("changed this pipeline")
    assert len(api("GET", f"/pipelines/{failing}")["nodes"]) == 3, "the stale save wrote nothing"

    # A viewer sees everything and no button that writes.
    page.click("#signout")
    sign_in(page, viewer)
    expect(page.locator("#who")).to_contain_text("viewer")
    page.goto(f"{BASE}/#/pipelines/{branches}")
    expect(page.locator("svg#graph g.node")).to_have_count(5)
    expect(page.locator("#runs tr[data-run]")).to_have_count(2)
    assert page.locator("#trigger, #edit, button.cancel, button.rerun").count() == 0, "no write buttons for a viewer"
    page.screenshot(path=f"{SHOTS}/console-viewer.png")

    assert not errors, errors
    browser.close()
print("console: every check passed")
