"""The shipped workflows in ComfyUI's real frontend: served by the template browser, loaded without a
missing-nodes dialog, every node of ours drawn with its widgets, the page's own prompt equal to the
host tier's converter, and every demo workflow queued from the page of a ComfyUI that has never seen
the pack (a fresh base folder: nothing copied by hand) until it succeeds and shows its images."""
import json
import time
import urllib.request

import pytest

from browser_env import PACK_NAME, REPO, get_json
from tools.workflow_api import to_api, widget_inputs

WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
DEMO = [p for p in WORKFLOWS if not p.stem.startswith(("sd15_", "wan21_"))]  # those need real weights


def load_template(page, name: str) -> dict:
    """What the template browser does on a click (useTemplateWorkflows.loadWorkflowTemplate): fetch
    /api/workflow_templates/<module>/<name>.json and app.loadGraphData(json, true, true, name).
    Returns the dialogs open afterwards and the graph as the page sees it."""
    return page.evaluate("""async ([module, name]) => {
        const json = await (await fetch(app.api.apiURL(`/workflow_templates/${module}/${name}.json`))).json();
        await app.loadGraphData(json, true, true, name);
        await new Promise(r => setTimeout(r, 400));
        const dialogs = [...document.querySelectorAll('.p-dialog')].map(d => d.innerText);
        const nodes = app.graph._nodes.map(n => ({
            id: n.id, type: n.type, registered: n.type in LiteGraph.registered_node_types,
            has_errors: !!n.has_errors, widgets: (n.widgets || []).map(w => w.name),
            size: [n.size[0], n.size[1]]}));
        return {dialogs, nodes};
    }""", [PACK_NAME, name])


def close_dialogs(page):
    page.evaluate("() => document.querySelectorAll('.p-dialog-close-button').forEach(b => b.click())")
    page.wait_for_timeout(200)


def missing_nodes_dialog(dialogs: list[str]) -> list[str]:
    return [d for d in dialogs if "not found" in d.lower() or "missing" in d.lower()]


def pack_types(object_info: dict) -> set[str]:
    return {name for name, info in object_info.items() if info.get("python_module", "").endswith(PACK_NAME)}


def test_template_browser_lists_every_workflow_with_its_thumbnail(server):
    listed = get_json(server + "/api/workflow_templates")
    assert sorted(listed.get(PACK_NAME, [])) == [p.stem for p in WORKFLOWS]
    for path in WORKFLOWS:
        assert get_json(f"{server}/api/workflow_templates/{PACK_NAME}/{path.name}") == json.loads(path.read_text())
        with urllib.request.urlopen(f"{server}/api/workflow_templates/{PACK_NAME}/{path.stem}.jpg") as r:
            assert r.headers["Content-Type"] == "image/jpeg" and r.read(3) == b"\xff\xd8\xff"


def test_help_page_served_for_every_pack_node(server, object_info):
    ours = pack_types(object_info)
    assert len(ours) >= 4
    for name in sorted(ours):
        with urllib.request.urlopen(f"{server}/extensions/{PACK_NAME}/docs/{name}.md") as r:
            assert r.status == 200 and r.read().startswith(b"# ")


def test_template_dialog_shows_the_pack(page, artifacts):
    page.evaluate("() => app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(artifacts / "template_browser.png"))
    category = page.get_by_text(PACK_NAME, exact=False).first
    category.click()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(artifacts / "template_browser_pack.png"))
    search = page.get_by_placeholder("Search templates", exact=False).first
    missing = []
    for path in WORKFLOWS:  # the card list shows what fits; the dialog's search finds each workflow by name
        search.fill(path.stem)
        page.wait_for_timeout(400)
        text = page.evaluate("() => [...document.querySelectorAll('.p-dialog')].map(d => d.innerText).join(' ')")
        if path.stem not in text:
            missing.append(path.stem)
    search.fill("")
    page.wait_for_timeout(400)
    assert not missing, f"workflows of the pack not found in the template dialog: {missing}"
    # a user's click on a card loads that workflow
    page.get_by_text("concept_insertion_demo", exact=True).first.click()
    page.wait_for_function("() => app.graph._nodes.some(n => n.type === 'ConceptInsertionSampler')", timeout=30_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts / "template_clicked_concept_insertion_demo.png"))
    close_dialogs(page)


def test_the_missing_nodes_check_sees_a_missing_node(page):
    """The check below is not vacuous: a workflow with an unknown node type raises the dialog."""
    workflow = json.loads((REPO / "workflows" / "concept_insertion_demo.json").read_text())
    workflow["nodes"][0]["type"] = "PCINoSuchNode"
    dialogs = page.evaluate("""async (json) => {
        await app.loadGraphData(json, true, true, 'missing');
        await new Promise(r => setTimeout(r, 400));
        return [...document.querySelectorAll('.p-dialog')].map(d => d.innerText);
    }""", workflow)
    close_dialogs(page)
    assert missing_nodes_dialog(dialogs) and "PCINoSuchNode" in " ".join(dialogs)


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_workflow_loads_and_draws_our_nodes_with_their_widgets(page, object_info, artifacts, path):
    seen = load_template(page, path.stem)
    page.screenshot(path=str(artifacts / f"{path.stem}.png"))
    page.evaluate("() => app.extensionManager.command.execute('Comfy.Canvas.FitView')")
    page.wait_for_timeout(300)
    page.locator("#graph-canvas").screenshot(path=str(artifacts / "graphs" / f"{path.stem}.png"))
    close_dialogs(page)
    assert not missing_nodes_dialog(seen["dialogs"]), seen["dialogs"]
    workflow = json.loads(path.read_text())
    assert len(seen["nodes"]) == len(workflow["nodes"])
    ours = pack_types(object_info)
    for node in seen["nodes"]:
        assert node["registered"] and not node["has_errors"], node
        if node["type"] in ours:
            expected = [name for name, _ in widget_inputs(object_info[node["type"]])]
            assert [w for w in node["widgets"] if w in expected] == expected, node
            assert node["size"][0] > 100 and node["size"][1] > 40, node


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_pages_prompt_equals_the_host_tiers_conversion(page, object_info, path):
    """graphToPrompt (what the Queue button sends) is what tests/host converts and runs."""
    load_template(page, path.stem)
    close_dialogs(page)
    from_page = page.evaluate("async () => (await app.graphToPrompt()).output")
    ours = to_api(json.loads(path.read_text()), object_info)
    assert strip(from_page, object_info) == strip(ours, object_info)


def strip(prompt: dict, object_info: dict) -> dict:
    """class_type and the declared inputs; frontend-only widgets (PreviewAny's 'preview' text box, which
    the server ignores) are dropped."""
    def declared(kind):
        return {n for section in ("required", "optional") for n in object_info[kind]["input"].get(section, {})}
    return {k: {"class_type": v["class_type"],
                "inputs": {n: x for n, x in v["inputs"].items() if n in declared(v["class_type"])}}
            for k, v in prompt.items()}


@pytest.mark.parametrize("path", DEMO, ids=[p.stem for p in DEMO])
def test_demo_workflow_queued_from_the_page_succeeds_and_shows_its_images(page, server, artifacts, path):
    seen = load_template(page, path.stem)
    close_dialogs(page)
    assert not missing_nodes_dialog(seen["dialogs"])
    before = set(get_json(server + "/api/history"))
    page.evaluate("() => app.queuePrompt(0, 1)")
    deadline, entry = time.time() + 600, None
    while time.time() < deadline:
        refused = page.evaluate("() => app.lastNodeErrors")  # the server's validation errors, as the page shows them
        assert not refused, f"the server refused the queued prompt: {refused}"
        new = {k: v for k, v in get_json(server + "/api/history").items() if k not in before}
        entry = next(iter(new.values()), None)
        if entry and entry.get("status", {}).get("completed") is not None:
            break
        time.sleep(1)
    assert entry, "the queued prompt never reached the history"
    assert entry["status"]["status_str"] == "success", entry["status"]
    images = [i for out in entry["outputs"].values() for i in out.get("images", [])]
    assert images, entry["outputs"]
    page.wait_for_function("() => app.graph._nodes.some(n => n.imgs && n.imgs.length)", timeout=30_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(artifacts / f"queued_{path.stem}.png"))
