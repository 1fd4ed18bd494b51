"""Browser tests: headless Chromium drives the series in JupyterLab, and the built book with no kernel at all.

`make test-browser` runs them (and `make test`, after the nbval passes and `make book`); everywhere else they are
deselected (marker `browser`). What they check, at a 1280x800 window:

- JupyterLab: each notebook runs from top to bottom with no error; every explorer (`.sdlab-explorer`, see
  sdlab/explorer.py) has run its script, moving its first dial changes the frame, and it fits the window; each
  GeneratePanel draws a new picture when its Generate button is clicked, and fits the window.
- the book (build/book/, served over http and opened as file://): it lists the series; on every page every explorer
  has run its script, each of its dials changes the frame, its play button plays, and it fits the window.

Screenshots of every explorer, panel and page go to build/screenshots/lab/ and build/screenshots/book/.

Environment:
    SDLAB_CHROMIUM           the browser (default /usr/bin/chromium: `apt-get update && apt-get install -y chromium`);
                             Playwright never downloads one
    SDLAB_BROWSER_DIR        the notebooks (default notebooks/); JupyterLab runs a temporary copy of them
    SDLAB_BROWSER_NOTEBOOKS  which of them JupyterLab runs: "all" or a comma list (default 00, 02 and 05)
    SDLAB_BROWSER_TIMEOUT    seconds one notebook may take to run in JupyterLab (default 900)
    SDLAB_BOOK_DIR           the built book (default build/book)
    SDLAB_REQUIRE_BOOK=1     a missing book fails instead of skipping (make test-browser sets it)
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
NB_DIR = Path(os.environ.get("SDLAB_BROWSER_DIR", REPO / "notebooks")).resolve()
BOOK_DIR = Path(os.environ.get("SDLAB_BOOK_DIR", REPO / "build" / "book")).resolve()
SHOTS = REPO / "build" / "screenshots"
CHROMIUM = os.environ.get("SDLAB_CHROMIUM", "/usr/bin/chromium")
SCREEN = {"width": 1280, "height": 800}
RUN_TIMEOUT_S = float(os.environ.get("SDLAB_BROWSER_TIMEOUT", "900"))
DEFAULT_NOTEBOOKS = ["00_tour.ipynb", "02_forward_diffusion.ipynb", "05_full_pipeline.ipynb"]  # both Generate panels
NOT_PAGES = {"genindex.html", "search.html", "py-modindex.html"}


def _lab_notebooks() -> list[str]:
    wanted = os.environ.get("SDLAB_BROWSER_NOTEBOOKS", "").strip()
    if wanted == "all":
        return sorted(p.name for p in NB_DIR.glob("[0-9]*.ipynb"))
    return [n.strip() for n in wanted.split(",") if n.strip()] if wanted else DEFAULT_NOTEBOOKS


LAB_NOTEBOOKS = _lab_notebooks()
BOOK_PAGES = sorted(p.name for p in BOOK_DIR.glob("*.html") if p.name not in NOT_PAGES)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _digest(text: str | None) -> str:
    return hashlib.sha1((text or "").encode()).hexdigest()[:10]


# -- the browser ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chromium():
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's (`apt-get update && apt-get install -y chromium`) "
                    "or set SDLAB_CHROMIUM=/path/to/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is missing: .venv/bin/pip install -r requirements.txt")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield browser
        browser.close()


def _new_page(chromium, allowed: tuple[str, ...]):
    """A 1280x800 page that reaches only the given URL prefixes (no network: a CDN's script just fails to load),
    and records the page's uncaught script errors in page.errors."""
    page = chromium.new_page(viewport=SCREEN)
    page.errors = []
    page.on("pageerror", lambda err: page.errors.append(str(err)))
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(allowed) else route.abort())
    return page


# -- the explorer's contract (sdlab/explorer.py) ----------------------------------------------------------------------
_STATE = """r => ({index: r.dataset.index, ready: r.dataset.ready || null,
  srcs: Array.from(r.querySelectorAll('img[data-pane]')).map(i => i.getAttribute('src')),
  caption: (r.querySelector('.sdx-caption') || {}).textContent || null})"""


def _state(root) -> dict:
    state = root.evaluate(_STATE)
    state["srcs"] = [_digest(s) for s in state["srcs"]]  # data: URIs are long; their digests are enough to compare
    return state


def _dials(root) -> list[dict]:
    """Each dial's kind and the value to move it to (the last one, or the first when it is at the last)."""
    return root.evaluate("""r => Array.from(r.querySelectorAll('[data-dial]')).map(d => {
      if (d.tagName === 'INPUT') return {kind: 'range', n: +d.max - +d.min + 1, at: +d.value - +d.min};
      if (d.tagName === 'SELECT') return {kind: 'select', n: d.options.length, at: d.selectedIndex};
      const radios = Array.from(d.querySelectorAll('input[type=radio]'));
      return {kind: 'radio', n: radios.length, at: radios.findIndex(x => x.checked)};
    })""")


def _move_dial(root, k: int, dial: dict) -> None:
    to = dial["n"] - 1 if dial["at"] != dial["n"] - 1 else 0
    control = root.locator("[data-dial]").nth(k)
    if dial["kind"] == "range":
        control.evaluate("""(d, to) => { d.value = String(+d.min + to);
            d.dispatchEvent(new Event('input', {bubbles: true}));
            d.dispatchEvent(new Event('change', {bubbles: true})); }""", to)
    elif dial["kind"] == "select":
        control.select_option(index=to)
    else:
        control.locator("input[type=radio]").nth(to).check()


def _check_fits(locator, what: str) -> None:
    """The element fits the screen, and nothing inside it sticks out of it (a column narrower than its panes)."""
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    assert box is not None, f"{what} is not displayed"
    assert box["width"] <= SCREEN["width"] and box["height"] <= SCREEN["height"], (
        f"{what} is {box['width']:.0f}x{box['height']:.0f} px: it does not fit a {SCREEN['width']}x{SCREEN['height']}"
        " screen")
    inner, outer = locator.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert inner <= outer + 1, f"{what}: its content is {inner} px wide in a box of {outer} px (cut off or scrolled)"


def _waited(page, condition: str, arg=None, timeout_s: float = 10, polling="raf") -> bool:
    """Whether the JavaScript `condition(arg)` came true within the time."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(condition, arg=arg, timeout=timeout_s * 1000, polling=polling)
        return True
    except PlaywrightTimeout:
        return False


def _wait_ready(page, root, what: str) -> None:
    if not _waited(page, "r => r.dataset.ready === '1'", root.element_handle()):
        pytest.fail(f"{what}: its script never ran (no data-ready=\"1\" on its root): the dials cannot move the "
                    "pictures")


def _check_explorer(page, root, what: str, every_dial: bool) -> None:
    """The explorer runs, fits, and its dials change the frame (every dial, or the first one only)."""
    _wait_ready(page, root, what)
    _check_fits(root, what)
    dials = _dials(root)
    assert dials, f"{what} has no dial ([data-dial])"
    for k, dial in enumerate(dials if every_dial else dials[:1]):
        if dial["n"] < 2:
            continue
        before = _state(root)
        _move_dial(root, k, dial)
        after = _state(root)
        assert after["index"] != before["index"], f"{what}: moving dial {k} ({dial['kind']}) left data-index at " \
                                                  f"{before['index']}"
        changed = after["srcs"] != before["srcs"]
        if not every_dial:  # JupyterLab: a new picture or at least a new caption
            changed = changed or after["caption"] != before["caption"]
        assert changed, f"{what}: moving dial {k} ({dial['kind']}) changed no pane's picture"
        _check_fits(root, f"{what} after moving dial {k}")


def _check_play(page, root, what: str) -> None:
    """A slider's play button runs through its values: the frame moves by itself."""
    buttons = root.locator("button.sdx-play")
    for b in range(buttons.count()):
        k = int(buttons.nth(b).get_attribute("data-for"))
        slider = root.locator("[data-dial]").nth(k)
        slider.evaluate("d => { d.value = d.min; d.dispatchEvent(new Event('input', {bubbles: true})); }")
        before = root.get_attribute("data-index")
        buttons.nth(b).click()
        if not _waited(page, "([r, i]) => r.dataset.index !== i", [root.element_handle(), before], 5):
            pytest.fail(f"{what}: its play button {b} did not move the frame within 5 s")
        # stop it, unless it has reached the end and stopped by itself (checked and clicked in one step)
        buttons.nth(b).evaluate("(b, d) => { if (+d.value < +d.max) b.click(); }", slider.element_handle())


# -- JupyterLab -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a free port, serving a temporary copy of the notebooks (autosave never reaches notebooks/), with
    a kernel spec of its own: this Python, HF_HUB_OFFLINE=1, OMP_NUM_THREADS=2, FutureWarnings as errors."""
    home = tmp_path_factory.mktemp("lab")
    root = home / "notebooks"
    shutil.copytree(NB_DIR, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    data = home / "data"
    kernel = data / "kernels" / "python3"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (sdlab)", "language": "python",
        "env": {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2", "PYTHONWARNINGS": "error::FutureWarning"}}))
    settings = home / "settings"
    lab_settings = {"notebook-extension/tracker": {"windowingMode": "none"},  # every cell in the DOM
                    "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False}}
    for plugin, values in lab_settings.items():
        path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}  # the kernels' own spec sets them
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="2", JUPYTER_DATA_DIR=str(data),
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    port, token = _free_port(), secrets.token_hex(16)
    log = (home / "lab.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True"],
        cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited ({proc.returncode}):\n{(home / 'lab.log').read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
                break
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer in 90 s:\n{(home / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"url": url, "token": token, "root": root, "log": home / "lab.log"}
    finally:
        proc.terminate()  # SIGTERM: the server shuts its kernels down and stops
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own process group: this server and its kernels only
            proc.wait(10)
        log.close()


# The notebook's panel, found by its path (not "the current widget": another tab may be active).
_PANEL_OF = """(path) => window.jupyterapp && Array.from(window.jupyterapp.shell.widgets('main'))
  .find(w => w.context && w.context.path === path && w.content && w.sessionContext)"""

_KERNEL_STATUS = f"""(path) => {{ const w = ({_PANEL_OF})(path);
  const k = w && w.sessionContext.session && w.sessionContext.session.kernel;
  return k ? k.status : null; }}"""

_CELLS = f"""(path) => ({_PANEL_OF})(path).content.widgets
  .filter(c => c.model.type === 'code')
  .map(c => ({{count: c.model.executionCount, source: c.model.sharedModel.getSource(),
              outputs: c.model.outputs.toJSON()}}))"""


@pytest.fixture(scope="module", params=LAB_NOTEBOOKS)
def lab_page(request, chromium, lab):
    """One notebook opened in JupyterLab (a workspace of its own: no other tab restored) and run with Run All; yields
    the page, the notebook's panel (a locator: every query stays inside it), its code cells and the run's time."""
    name = request.param
    if not (lab["root"] / name).is_file():
        pytest.fail(f"{name} is not in {NB_DIR} (SDLAB_BROWSER_NOTEBOOKS names the notebooks to run)")
    SHOTS.joinpath("lab").mkdir(parents=True, exist_ok=True)
    page = _new_page(chromium, (lab["url"],))
    workspace = f"sdlab-{secrets.token_hex(4)}"
    page.goto(f"{lab['url']}/lab/workspaces/{workspace}/tree/{name}?token={lab['token']}")
    if not _waited(page, f"(path) => ({_KERNEL_STATUS})(path) === 'idle'", name, timeout_s=120, polling=500):
        pytest.fail(f"{name}: the notebook's kernel did not start in 120 s (JupyterLab log: {lab['log']})")
    panel_id = page.evaluate(f"(path) => {{ const w = ({_PANEL_OF})(path); window.jupyterapp.shell.activateById(w.id);"
                             " return w.id; }", name)
    if not _waited(page, "(id) => window.jupyterapp.shell.currentWidget && "
                         "window.jupyterapp.shell.currentWidget.id === id", panel_id, timeout_s=30, polling=200):
        pytest.fail(f"{name}: its tab did not become the active one")
    start = time.monotonic()
    page.evaluate("""() => { window.__sdlabRun = {done: false};
      window.jupyterapp.commands.execute('notebook:run-all-cells').then(
        ok => { window.__sdlabRun = {done: true, ok}; },
        err => { window.__sdlabRun = {done: true, ok: false, error: String(err)}; }); }""")
    if not _waited(page, f"(path) => window.__sdlabRun.done && ({_KERNEL_STATUS})(path) === 'idle'", name,
                   timeout_s=RUN_TIMEOUT_S, polling=1000):
        page.screenshot(path=str(SHOTS / "lab" / f"{Path(name).stem}-timeout.png"))
        pytest.fail(f"{name}: Run All did not finish in {RUN_TIMEOUT_S:.0f} s (SDLAB_BROWSER_TIMEOUT)")
    seconds = time.monotonic() - start
    page.wait_for_timeout(500)  # the last outputs' renderers (widgets, inline scripts)
    yield {"name": name, "page": page, "panel": page.locator(f'[id="{panel_id}"]'),
           "cells": page.evaluate(_CELLS, name), "seconds": seconds, "run": page.evaluate("() => window.__sdlabRun")}
    with contextlib.suppress(Exception):
        page.evaluate(f"(path) => ({_PANEL_OF})(path).sessionContext.shutdown()", name)
    page.close()


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_lab_runs_every_cell_without_error(lab_page):
    name, cells = lab_page["name"], lab_page["cells"]
    print(f"{name}: Run All took {lab_page['seconds']:.0f} s in JupyterLab")
    for i, cell in enumerate(cells):
        for out in cell["outputs"]:
            if out.get("output_type") == "error":
                tb = _ANSI.sub("", "\n".join(out.get("traceback", [])))
                pytest.fail(f"{name}, code cell {i}: {out.get('ename')}: {out.get('evalue')}\n{tb[-3000:]}")
            text = "".join(out.get("text") or "") + "".join(
                "".join(v) for v in out.get("data", {}).values() if isinstance(v, (str, list)))
            assert "Traceback (most recent call last)" not in text, f"{name}, code cell {i} printed a traceback"
    shown = lab_page["panel"].locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]').count()
    assert shown == 0, f"{name}: {shown} error output(s) on the page"
    not_run = [i for i, c in enumerate(cells) if c["count"] is None]
    assert not not_run, f"{name}: code cells {not_run} did not run (no execution count)"
    assert lab_page["run"].get("ok") is not False, f"{name}: Run All reported a failure: {lab_page['run']}"


def test_lab_explorers_run_and_fit(lab_page):
    name, page, cells = lab_page["name"], lab_page["page"], lab_page["cells"]
    stem = Path(name).stem
    made = sum("".join(o.get("data", {}).get("text/html", "")).count('class="sdlab-explorer"')
               for c in cells for o in c["outputs"])
    roots = lab_page["panel"].locator(".jp-OutputArea-output .sdlab-explorer")
    assert roots.count() == made, f"{name}: {made} explorer output(s), {roots.count()} shown on the page"
    for e in range(made):
        root = roots.nth(e)
        _check_explorer(page, root, f"{name} explorer {e}", every_dial=False)
        root.screenshot(path=str(SHOTS / "lab" / f"{stem}-explorer{e}.png"))
    page.screenshot(path=str(SHOTS / "lab" / f"{stem}-page.png"))


_PANEL = """b => { let top = null;
  for (let e = b.parentElement; e && !e.classList.contains('jp-OutputArea-child'); e = e.parentElement)
    if (e.classList.contains('widget-vbox')) top = e;
  return top; }"""


def test_lab_generate_panels_draw_and_fit(lab_page):
    name, page, cells = lab_page["name"], lab_page["page"], lab_page["cells"]
    stem = Path(name).stem
    expected = sum("GeneratePanel(" in c["source"] for c in cells)
    buttons = lab_page["panel"].locator(".jp-OutputArea-output .jupyter-widgets button").filter(
        has_text=re.compile(r"^\s*Generate\s*$"))
    if expected:
        with contextlib.suppress(Exception):
            buttons.first.wait_for(timeout=30_000)
    assert buttons.count() >= expected, f"{name}: {expected} GeneratePanel cell(s), {buttons.count()} Generate " \
                                        "button(s) shown"
    for b in range(buttons.count()):
        button = buttons.nth(b)
        button.scroll_into_view_if_needed()
        panel = button.evaluate_handle(_PANEL).as_element()
        assert panel is not None, f"{name}: Generate button {b} is not inside a widget box"
        image = panel.query_selector("img")
        assert image is not None, f"{name}: GeneratePanel {b} has no image"
        before = image.get_attribute("src") or ""
        # as a learner would: a new seed (the panel already shows its first seed's picture), then Generate
        seed = panel.query_selector("input[type=number]")
        assert seed is not None, f"{name}: GeneratePanel {b} has no seed box"
        new_seed = int(seed.input_value() or 0) + 1
        seed.fill(str(new_seed))
        seed.press("Enter")
        button.click()
        if not _waited(page, "([img, before]) => (img.getAttribute('src') || '') !== before && img.complete "
                       "&& img.naturalWidth > 0", [image, before], 60, polling=250):
            pytest.fail(f"{name}: with seed {new_seed}, clicking Generate (panel {b}) drew no new picture in 60 s")
        assert f"seed {new_seed}" in panel.inner_text(), f"{name}: the panel's status does not name seed {new_seed}"
        page.wait_for_timeout(300)
        box = panel.bounding_box()
        assert box and box["width"] <= SCREEN["width"] and box["height"] <= SCREEN["height"], (
            f"{name}: GeneratePanel {b} is {box and round(box['width'])}x{box and round(box['height'])} px: it does "
            "not fit a 1280x800 screen")
        panel.screenshot(path=str(SHOTS / "lab" / f"{stem}-generate{b}.png"))


# -- the book ---------------------------------------------------------------------------------------------------------
def _need_book() -> None:
    if not (BOOK_DIR / "index.html").is_file():
        message = f"no book at {BOOK_DIR}: run `make book` first"
        if os.environ.get("SDLAB_REQUIRE_BOOK") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def book_server():
    """The book over http from 127.0.0.1 (a free port), as `python -m http.server` would serve it."""
    _need_book()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Quiet, directory=str(BOOK_DIR)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _first_heading(notebook: Path) -> str:
    first = json.loads(notebook.read_text())["cells"][0]
    return "".join(first["source"]).splitlines()[0].removeprefix("# ").replace("`", "").replace("*", "").strip()


def test_book_lists_the_series_in_order(chromium, book_server):
    """The book's table of contents: every notebook, in order, titled by its first heading."""
    notebooks = sorted(NB_DIR.glob("[0-9]*.ipynb"))
    page = _new_page(chromium, (book_server,))
    page.goto(f"{book_server}/index.html")
    links = page.locator(".toctree-wrapper a.reference.internal").evaluate_all(
        "as => as.map(a => [a.getAttribute('href'), a.textContent.trim()])")
    assert links == [[f"{p.stem}.html", _first_heading(p)] for p in notebooks], links
    for p in notebooks:
        assert (BOOK_DIR / f"{p.stem}.html").is_file(), f"the book has no page for {p.name}"
    assert not page.errors, page.errors
    page.close()


@pytest.mark.parametrize("scheme", ["http", "file"])
@pytest.mark.parametrize("name", BOOK_PAGES or ["(no book)"])
def test_book_explorers_work_without_a_kernel(chromium, book_server, name, scheme):
    _need_book()
    if scheme == "http":
        page = _new_page(chromium, (book_server,))
        page.goto(f"{book_server}/{name}")
    else:
        page = _new_page(chromium, ("file:",))
        page.goto((BOOK_DIR / name).as_uri())
    stem = Path(name).stem
    roots = page.locator(".sdlab-explorer")
    SHOTS.joinpath("book").mkdir(parents=True, exist_ok=True)
    for e in range(roots.count()):
        root = roots.nth(e)
        what = f"{name} ({scheme}) explorer {e}"
        _check_explorer(page, root, what, every_dial=True)
        if scheme == "http":
            root.screenshot(path=str(SHOTS / "book" / f"{stem}-explorer{e}.png"))
        _check_play(page, root, what)
    if scheme == "http":
        page.screenshot(path=str(SHOTS / "book" / f"{stem}-page.png"), full_page=True)
    assert not page.errors, f"{name} ({scheme}): script errors on the page: {page.errors}"
    page.close()
