"""Browser tier: real ComfyUI (its own process, on loopback) and its real frontend in headless
Chromium, driven by Playwright with the system browser (nothing downloaded at run time).

Needs COMFYUI_PATH (and COMFYUI_PYTHON, default <COMFYUI_PATH>/../venv/bin/python), /usr/bin/chromium
(or PCI_CHROMIUM) and the playwright package; without them every test skips with a loud banner.
Screenshots go to PCI_BROWSER_ARTIFACTS (default /tmp/pci_browser_artifacts), printed at the end."""
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from browser_env import (ARTIFACTS, BANNER, CHROMIUM, CHROMIUM_ARGS, PACK_NAME, REPO, comfy_python, free_port,
                         get_json, why_skipped)


def pytest_collection_modifyitems(config, items):
    reason = why_skipped()
    if reason:
        write = config.pluginmanager.get_plugin("terminalreporter").write_line
        for line in ("", BANNER, f"BROWSER TIER SKIPPED: {reason}.",
                     "The shipped workflows were NOT opened in ComfyUI's frontend in this run.", BANNER):
            write(line)
        for item in items:
            item.add_marker(pytest.mark.skip(reason=f"BROWSER TIER SKIPPED: {reason}"))


def pytest_terminal_summary(terminalreporter):
    if why_skipped() is None and ARTIFACTS.exists() and any(ARTIFACTS.iterdir()):
        terminalreporter.write_line(f"browser tier: screenshots and logs in {ARTIFACTS}")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    (ARTIFACTS / "graphs").mkdir(parents=True)  # the canvas alone, fitted: the SD1.5 variants' thumbnails
    return ARTIFACTS


@pytest.fixture(scope="session")
def server(artifacts):
    """ComfyUI on 127.0.0.1:<free port>, CPU, a fresh base directory with this pack linked into
    custom_nodes, an empty input/, and the first-run template dialog turned off."""
    base = Path(tempfile.mkdtemp(prefix="pci_browser_base_"))
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / PACK_NAME).symlink_to(REPO, target_is_directory=True)
    (base / "input").mkdir()  # empty: the pack puts its example pictures there when it loads
    (base / "user" / "default").mkdir(parents=True)
    (base / "user" / "default" / "comfy.settings.json").write_text(json.dumps({"Comfy.TutorialCompleted": True}))
    port = free_port()
    log = open(artifacts / "comfyui_server.log", "w")
    proc = subprocess.Popen([comfy_python(), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
                             "--base-directory", str(base), "--disable-auto-launch"],
                            cwd=os.environ["COMFYUI_PATH"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while True:
        try:
            get_json(url + "/api/system_stats", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"ComfyUI did not start; see {artifacts / 'comfyui_server.log'}")
            time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def page(server, artifacts):
    """The ComfyUI frontend, loaded and ready (window.app.graph exists); console errors are logged."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 2200, "height": 1300})  # fits a workflow above zoom 0.6 (LiteGraph draws less below)
        pg = context.new_page()
        console = open(artifacts / "browser_console.log", "w")
        pg.on("console", lambda m: console.write(f"{m.type}: {m.text}\n"))
        pg.on("pageerror", lambda e: console.write(f"pageerror: {e}\n"))
        pg.goto(server + "/", wait_until="domcontentloaded")
        pg.wait_for_function("() => window.app && window.app.graph && window.app.vueAppReady === true "
                             "&& window.LiteGraph && Object.keys(LiteGraph.registered_node_types).length > 100",
                             timeout=120_000)
        pg.wait_for_timeout(1500)  # let the first (default) graph and the settings settle
        # screenshots of the graph alone: no minimap, no canvas statistics
        pg.evaluate("async () => { for (const c of ['Comfy.Canvas.ToggleMinimap', 'Comfy.ToggleCanvasInfo']) "
                    "await app.extensionManager.command.execute(c); }")
        yield pg
        console.close()
        browser.close()


@pytest.fixture(scope="session")
def object_info(server):
    return get_json(server + "/api/object_info", timeout=60)


