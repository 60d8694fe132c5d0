"""The notebooks in JupyterLab, opened and run the way students do, in headless Chromium.

The project's JupyterLab (``python -m jupyter lab``, as ``make lab`` starts it) serves a
temporary copy of ``notebooks/`` on the loopback interface, with a random token and
temporary Jupyter config, data, runtime, settings and workspace folders, so neither the
committed notebooks nor the user's Jupyter settings are touched. Its kernels inherit its
environment: profile ``quick``, this checkout's ``src/`` first on ``PYTHONPATH`` and
``TQDM_DISABLE`` removed, so that ``tqdm.auto`` shows its widget as it does for students.

Every notebook is opened at ``lab/tree/<name>``: it must show all its cells and start
its kernel (the training notebook as the first step of its run). What only JupyterLab
can show is then checked on the training notebook, 04 (``pytest --nbval`` already runs
every notebook's cells and compares their outputs; it cannot see a widget): once its
kernel is idle, it is driven through the main menu: Edit > Clear Outputs of All Cells
(so that nothing shown afterwards comes from the committed outputs), Run > Run All
Cells, and after the run File > Save Notebook (into the copy).
The test fails when:

- a code cell did not run: its saved ``execution_count`` is empty, the counts are not in
  order, or its prompt on the page does not show the saved count (``[*]:`` still running,
  ``[ ]:`` never run);
- a cell has an error output (``output_type == "error"`` in the saved notebook), unless
  it is tagged ``raises-exception``;
- a widget output did not render: the page shows "Loading widget..." or "Error displaying
  widget..." for it, or shows it as plain text (no widget manager), or it never appeared;
- notebook 04 trained without its tqdm progress bar appearing on the page (a
  MutationObserver records every progress widget added while the notebook runs: the bars
  are created with ``leave=False`` and vanish at the end of each epoch);
- a wait runs out: each has a bound (a cell gets 600 s, as nbval gives it in ``make
  test``), and the message names the notebook and the cell that was running.

Two small notebooks written by the test check that these checks catch what they should:
one with a widget whose model does not exist, then ``1 / 0`` and a cell after it (which
must not run), and one that must pass (widgets, a cell tagged ``raises-exception``, and
the kernel's environment). A screenshot of notebook 04 after its run goes to
``test-artifacts/lab-04.png``, one with its progress bar to
``test-artifacts/lab-04-progress.png``, and one of any notebook that fails to
``test-artifacts/lab-<name>-failed.png``.

Without Chromium the test is skipped (and says how to install it); under CI (``CI=true``)
it fails instead. The module carries the ``slow`` marker (``make test-fast`` leaves it
out).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
from browser import launch_chromium

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "test-artifacts"
NOTEBOOK_NAMES = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
# The training notebook: its progress bar must be seen while it trains.
TRAINING_PREFIX = "04_"
SELFTEST_DIR = "lab-selftest"

# Bounded waits, in seconds. A cell gets as long as nbval gives it in `make test`.
SERVER_START_TIMEOUT = 90
OPEN_TIMEOUT = 120
START_TIMEOUT = 60
CELL_TIMEOUT = 600
SAVE_TIMEOUT = 60
WIDGET_TIMEOUT = 20
POLL = 0.5

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# The visible notebook's panel (JupyterLab hides the others with lm-mod-hidden).
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
PROGRESS = ".widget-hprogress, .widget-progress"

# Page-side recorder: every widget and every progress bar added to an output area, with
# the cell it is in and its rendered width a frame later.
RECORDER = """(progressSelector) => {
    window.__labTest = {widgets: [], progress: []};
    const record = (list, element) => {
        const cell = element.closest('.jp-Notebook-cell');
        const entry = {
            cell: cell ? Number(cell.dataset.windowedListIndex) : null,
            text: (element.closest('.widget-hbox') || element).textContent.trim().slice(0, 120),
            width: 0,
        };
        list.push(entry);
        requestAnimationFrame(() => {
            entry.width = element.isConnected ? element.getBoundingClientRect().width : 0;
        });
    };
    new MutationObserver(mutations => {
        for (const mutation of mutations) {
            for (const node of mutation.addedNodes) {
                if (!(node instanceof Element) || !node.closest('.jp-OutputArea')) continue;
                for (const [list, selector] of [[window.__labTest.widgets, '.jupyter-widgets'],
                                                [window.__labTest.progress, progressSelector]]) {
                    const found = node.matches(selector) ? [node] : [];
                    found.push(...node.querySelectorAll(selector));
                    found.forEach(element => record(list, element));
                }
            }
        }
    }).observe(document.body, {childList: true, subtree: true});
}"""

# What the page shows: the kernel's state, each code cell's prompt, an open dialog.
PAGE_STATE = """(panel) => {
    const root = document.querySelector(panel);
    const dialog = document.querySelector('.jp-Dialog');
    return {
        kernel: [...document.querySelectorAll('#jp-main-statusbar .jp-StatusBar-TextItem')]
            .map(e => e.textContent.trim()).find(t => / \\| /.test(t)) || null,
        indicator: root?.querySelector('.jp-Notebook-ExecutionIndicator')
            ?.getAttribute('data-status') || null,
        cells: root ? root.querySelectorAll('.jp-Notebook-cell').length : 0,
        prompts: root ? [...root.querySelectorAll('.jp-Notebook-cell')].map(cell =>
            cell.classList.contains('jp-CodeCell')
                ? cell.querySelector('.jp-InputArea-prompt')?.textContent.trim() ?? ''
                : null) : [],
        outputs: root ? root.querySelectorAll('.jp-OutputArea-child').length : 0,
        dirty: !!document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty'),
        dialog: dialog ? dialog.innerText.trim().slice(0, 500) : null,
    };
}"""

# Each widget output of the page, by cell index and output index: its text, whether it
# is hidden (a closed widget), whether it holds a rendered widget, its MIME type.
WIDGET_OUTPUTS = """([panel, wanted]) => {
    const cells = [...document.querySelector(panel).querySelectorAll('.jp-Notebook-cell')];
    return wanted.map(([c, o]) => {
        const child = cells[c]?.querySelectorAll('.jp-OutputArea-child')[o];
        const out = child?.querySelector('.jp-OutputArea-output');
        if (!out) return {cell: c, output: o, missing: true};
        return {
            cell: c, output: o, missing: false,
            text: out.textContent.trim().slice(0, 200),
            hidden: out.classList.contains('lm-mod-hidden'),
            rendered: !!out.querySelector('.jupyter-widgets') &&
                !out.classList.contains('jupyter-widgets'),
            mime: out.getAttribute('data-mime-type'),
        };
    });
}"""


# --------------------------------------------------------------------------- the server


@dataclass
class Lab:
    """A running JupyterLab: where it is, how to talk to it, what it serves."""

    url: str
    token: str
    root: Path
    log: Path

    def api(self, method: str, path: str, timeout: float = 30) -> Any:
        request = urllib.request.Request(
            self.url + path.lstrip("/"), method=method,
            headers={"Authorization": f"token {self.token}"},
            data=b"" if method in ("POST", "DELETE") else None)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body.strip() else None

    def page_url(self, path: str, workspace: str) -> str:
        return (f"{self.url}lab/workspaces/{workspace}/tree/{urllib.parse.quote(path)}"
                f"?token={self.token}")

    def sessions(self, path: str) -> list[dict[str, Any]]:
        return [s for s in self.api("GET", "api/sessions") if s["path"] == path]

    def shutdown_kernels(self, path: str) -> None:
        """Shut down the notebook's kernels, so that the next one has the CPU to itself."""
        for session in self.sessions(path):
            self.api("DELETE", f"api/sessions/{session['id']}")

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.is_file() else ""
        return "\n".join(text.splitlines()[-lines:])


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def _copy_notebooks(target: Path) -> None:
    """The notebooks folder as a student has it (both sides of each pair, mtimes kept)."""
    import shutil

    shutil.copytree(NOTEBOOKS, target,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))


def _write_selftests(folder: Path) -> None:
    """Notebooks that show the checks work: two that must fail, one that must pass."""
    new = nbformat.v4
    folder.mkdir()
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                           "language": "python"}}
    src = REPO / "src"
    environment = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "import d2l_resnet\n"
        "assert os.environ.get('D2L_RESNET_PROFILE') == 'quick', os.environ.get("
        "'D2L_RESNET_PROFILE')\n"
        "assert 'TQDM_DISABLE' not in os.environ\n"
        f"assert Path(sys.prefix).resolve() == Path({sys.prefix!r}).resolve(), sys.prefix\n"
        f"assert Path(d2l_resnet.__file__).resolve().is_relative_to(Path({str(src)!r})"
        ".resolve()), d2l_resnet.__file__")
    expected_error = new.new_code_cell("raise ValueError('expected, and tagged so')")
    expected_error.metadata["tags"] = ["raises-exception"]
    notebooks = {
        "fails.ipynb": [new.new_code_cell(
            "from IPython.display import display\n"
            f"display({{{WIDGET_MIME!r}: {{'model_id': '0' * 32, 'version_major': 2, "
            "'version_minor': 0}, 'text/plain': 'a widget without a model'}, raw=True)"),
            new.new_code_cell("x = 1"), new.new_code_cell("1 / 0"),
            new.new_code_cell("y = 2")],
        "passes.ipynb": [
            new.new_markdown_cell("A notebook that must pass."),
            new.new_code_cell(environment),
            expected_error,
            new.new_code_cell("import ipywidgets\n"
                              "ipywidgets.IntProgress(value=3, max=10)"),
            new.new_code_cell(""),
            new.new_code_cell("from tqdm.auto import tqdm\n"
                              "for _ in tqdm(range(3), desc='left', leave=True):\n"
                              "    pass"),
        ],
    }
    for name, cells in notebooks.items():
        nbformat.write(new.new_notebook(cells=cells, metadata=meta), folder / name)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The project's JupyterLab on 127.0.0.1, serving a temporary copy of notebooks/."""
    if not NOTEBOOK_NAMES:
        pytest.fail(f"no notebooks NN_name.ipynb in {NOTEBOOKS} to open in JupyterLab")
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "notebooks"
    before = _digest(NOTEBOOKS)
    _copy_notebooks(root)
    _write_selftests(root / SELFTEST_DIR)
    dirs = {name: tmp / name for name in ("runtime", "config", "data", "ipython",
                                          "settings", "workspaces")}
    for folder in dirs.values():
        folder.mkdir()
    # A student who answered "No" to the news question: no toast over the notebook.
    notification = dirs["settings"] / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))

    env = dict(os.environ)
    env.pop("TQDM_DISABLE", None)  # `make test` sets it; students do not
    for extra in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH"):  # only the project's Jupyter
        env.pop(extra, None)
    env.update({
        "D2L_RESNET_PROFILE": "quick",
        "PYTHONPATH": os.pathsep.join(
            [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "IPYTHONDIR": str(dirs["ipython"]),
        "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
    })
    token = secrets.token_hex(24)
    command = [sys.executable, "-m", "jupyter", "lab", str(root), "--no-browser",
               "--ServerApp.ip=127.0.0.1", "--ServerApp.port=0",
               f"--IdentityProvider.token={token}",
               f"--LabApp.user_settings_dir={dirs['settings']}",
               f"--LabApp.workspaces_dir={dirs['workspaces']}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # JupyterLab refuses root without it
    log = tmp / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=tmp, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    server = None
    try:
        server = _wait_for_server(proc, dirs["runtime"], token, root, log)
        yield server
    finally:
        _stop_server(proc, server)
    assert _digest(NOTEBOOKS) == before, "the committed notebooks changed during the test"


def _wait_for_server(proc: subprocess.Popen, runtime: Path, token: str, root: Path,
                     log: Path) -> Lab:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    info_file = runtime / f"jpserver-{proc.pid}.json"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            pytest.fail(f"JupyterLab exited with code {proc.returncode}:\n{tail}",
                        pytrace=False)
        if info_file.is_file():
            try:
                info = json.loads(info_file.read_text())
                server = Lab(url=info["url"], token=token, root=root, log=log)
                server.api("GET", "api/status", timeout=5)
                return server
            except (ValueError, KeyError, OSError):
                pass  # written but not complete yet, or not answering yet
        time.sleep(POLL)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    pytest.fail(f"JupyterLab did not answer within {SERVER_START_TIMEOUT} s:\n{tail}",
                pytrace=False)


def _stop_server(proc: subprocess.Popen, server: Lab | None) -> None:
    """Ask the server to shut down (it stops its kernels); kill it if it does not."""
    if proc.poll() is None and server is not None:
        with contextlib.suppress(OSError):
            server.api("POST", "api/shutdown", timeout=10)
    for sig, wait in ((None, 30), (signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        if sig is not None and proc.poll() is None:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as chromium:
        yield chromium


# --------------------------------------------------------------------------- one run


@dataclass
class LabRun:
    """What happened when a notebook was run in JupyterLab."""

    name: str
    problems: list[str] = field(default_factory=list)
    widgets: list[dict[str, Any]] = field(default_factory=list)
    progress: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    console: list[str] = field(default_factory=list)


class LabWaitError(Exception):
    """The run stopped: a bounded wait ran out, a dialog opened, the kernel died."""


def _wait(what: Any, predicate: Any, timeout: float) -> Any:
    """Poll ``predicate`` until it is true; ``what`` (text, or a function giving it, read
    when the time is up) says what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            text = what() if callable(what) else what
            raise LabWaitError(f"{text} (waited {timeout:.0f} s)")
        time.sleep(POLL)


def _menu(page: Any, top: str, command: str) -> None:
    """Click a main-menu entry: the menu ``top``, then its item running ``command``."""
    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel",
                 has_text=re.compile(f"^{re.escape(top)}$")).click(timeout=10_000)
    item = page.locator(f'.lm-Menu-item[data-command="{command}"]')
    item.wait_for(state="visible", timeout=10_000)
    if "lm-mod-disabled" in (item.get_attribute("class") or ""):
        page.keyboard.press("Escape")
        raise LabWaitError(f"the menu item {top} > {command} is disabled")
    item.click(timeout=10_000)


def _cell_label(cells: list[Any], index: int) -> str:
    source = cells[index].source.strip().splitlines() if index < len(cells) else []
    first = source[0] if source else ""
    return f"cell {index + 1} (`{first[:60]}`)"


def run_in_lab(browser: Any, lab: Lab, path: str, screenshot: Path | None = None,
               failure_screenshot: bool = True, run_all: bool = True) -> LabRun:
    """Open ``path`` in JupyterLab, clear and run all cells from the menu, save, check.

    ``screenshot``: where to save the page after the run (and, with ``-progress`` added
    to its name, one with the progress bar during it); ``failure_screenshot``: save
    ``test-artifacts/lab-<name>-failed.png`` when a check fails; ``run_all=False``: only
    open it (all its cells shown, its kernel idle).
    """
    from playwright.sync_api import Error as PlaywrightError

    run = LabRun(name=path)
    file = lab.root / path
    cells = nbformat.read(file, as_version=4).cells
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("pageerror", lambda e: run.console.append(f"uncaught: {e}"))
    page.on("console", lambda m: m.type == "error" and run.console.append(m.text[:300]))
    state: dict[str, Any] = {}

    def read_state() -> dict[str, Any]:
        state.clear()
        state.update(page.evaluate(PAGE_STATE, PANEL))
        if state["dialog"]:
            raise LabWaitError(f"{path}: JupyterLab opened a dialog: {state['dialog']!r}")
        return state

    start = time.monotonic()
    step = "opening the notebook"
    try:
        page.goto(lab.page_url(path, f"lab-test-{Path(path).stem}"), wait_until="load",
                  timeout=OPEN_TIMEOUT * 1000)
        _wait(lambda: f"{path}: the notebook to open with all {len(cells)} cells and its "
              f"kernel to be idle (page: {state})",
              lambda: (read_state()["cells"] == len(cells)
                       and re.search(r"\| Idle$", state["kernel"] or "")
                       and state["indicator"] == "idle"
                       and any(s["kernel"]["execution_state"] == "idle"
                               for s in lab.sessions(path))),
              OPEN_TIMEOUT)
        if not run_all:
            return run
        page.evaluate(RECORDER, PROGRESS)

        # Run > Run All Cells, from empty outputs: every count shown afterwards is new.
        step = "clearing the outputs"
        _menu(page, "Edit", "editmenu:clear-all")
        _wait(lambda: f"{path}: Edit > Clear Outputs of All Cells to clear them "
              f"(page: {state})",
              lambda: read_state()["outputs"] == 0
              and all(p in (None, "[ ]:") for p in state["prompts"]), 30)
        step = "running all cells"
        _menu(page, "Run", "runmenu:run-all")
        _wait_for_run(page, read_state, state, cells, path, screenshot)

        # File > Save Notebook (the copy), to read what the run produced exactly.
        step = "saving the notebook"
        mtime = file.stat().st_mtime_ns
        _menu(page, "File", "docmanager:save")
        _wait(f"{path}: File > Save Notebook to write the notebook",
              lambda: file.stat().st_mtime_ns != mtime and not read_state()["dirty"],
              SAVE_TIMEOUT)
        saved = _wait(f"{path}: the saved notebook to be readable",
                      lambda: _read(file), SAVE_TIMEOUT)
        step = "checking the outputs"
        _check_cells(saved, state["prompts"], run)
        _check_widgets(page, saved, run)
        run.widgets = page.evaluate("window.__labTest.widgets")
        run.progress = page.evaluate("window.__labTest.progress")
        if screenshot is not None:
            _screenshot_training(page, run, screenshot)
    except LabWaitError as err:
        run.problems.append(f"stopped: {err}")
    except PlaywrightError as err:  # a click or a page call that timed out or failed
        message = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        run.problems.append(f"stopped: {path}: {step}: {message}")
    finally:
        run.seconds = time.monotonic() - start
        if run.problems and failure_screenshot:
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / f"lab-{Path(path).stem}-failed.png"
            # The page may be gone; the message matters more than the picture.
            with contextlib.suppress(Exception):
                page.screenshot(path=str(shot))
        context.close()
        try:
            lab.shutdown_kernels(path)
        except OSError as err:
            run.problems.append(f"could not shut down the kernel of {path}: {err}")
    return run


def _read(file: Path) -> Any:
    try:
        return nbformat.read(file, as_version=4)
    except Exception:  # half written
        return None


def _wait_for_run(page: Any, read_state: Any, state: dict[str, Any], cells: list[Any],
                  path: str, screenshot: Path | None) -> None:
    """Until no cell is queued or running and the kernel is idle (twice in a row).

    Each cell gets CELL_TIMEOUT seconds, as nbval gives it in ``make test``. The prompts
    decide, not the kernel's status alone: while a cell runs, the status flickers to idle
    whenever the kernel answers a widget's message.
    """
    started = False
    settled = 0
    current: int | None = None
    deadline = time.monotonic() + START_TIMEOUT
    progress_shot = (screenshot.with_name(f"{screenshot.stem}-progress.png")
                     if screenshot is not None else None)
    while settled < 2:
        read_state()
        prompts = state["prompts"]
        running = [i for i, p in enumerate(prompts) if p == "[*]:"]
        started = started or bool(running) or any(
            p and p not in ("[ ]:", "[*]:") for p in prompts)
        if re.search(r"\| Dead$", state["kernel"] or ""):
            where = _cell_label(cells, running[0]) if running else "a cell"
            raise LabWaitError(f"{path}: the kernel died while running {where}")
        if running and running[0] != current:
            current = running[0]
            deadline = time.monotonic() + CELL_TIMEOUT
        settled = settled + 1 if (started and not running
                                  and state["indicator"] == "idle") else 0
        if progress_shot is not None and _screenshot_progress(page, progress_shot):
            progress_shot = None
        if time.monotonic() > deadline:
            if not started:
                raise LabWaitError(f"{path}: Run > Run All Cells started no cell in "
                                   f"{START_TIMEOUT} s (kernel {state['kernel']!r})")
            if running:
                raise LabWaitError(
                    f"{path}: {_cell_label(cells, running[0])} still running after "
                    f"{CELL_TIMEOUT} s ({len(running) - 1} more cells queued)")
            raise LabWaitError(f"{path}: no cell running, but the kernel is not idle "
                               f"after {CELL_TIMEOUT} s ({state['kernel']!r})")
        time.sleep(POLL)


def _check_cells(saved: Any, prompts: list[str | None], run: LabRun) -> None:
    """Every code cell ran, in order, without an error (unless tagged raises-exception)."""
    if len(prompts) != len(saved.cells):
        run.problems.append(f"the page shows {len(prompts)} cells, the saved notebook "
                            f"{len(saved.cells)}")
        return
    last = 0
    for i, cell in enumerate(saved.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        label = _cell_label(saved.cells, i)
        count = cell.get("execution_count")
        if count is None:
            run.problems.append(f"{label} did not run (prompt {prompts[i]!r})")
            continue
        if count <= last:
            run.problems.append(f"{label} ran out of order (count {count} after {last})")
        last = count
        if prompts[i] != f"[{count}]:":
            run.problems.append(f"{label}: the page shows {prompts[i]!r}, the saved "
                                f"count is {count}")
        allowed = "raises-exception" in cell.metadata.get("tags", [])
        for output in cell.outputs:
            if output.output_type == "error" and not allowed:
                run.problems.append(f"{label} raised {output.ename}: {output.evalue}")


def _check_widgets(page: Any, saved: Any, run: LabRun) -> None:
    """Every widget output rendered as a widget (or was closed after rendering)."""
    wanted = [[c, o] for c, cell in enumerate(saved.cells) if cell.cell_type == "code"
              for o, output in enumerate(cell.outputs)
              if WIDGET_MIME in output.get("data", {})]
    if not wanted:
        return
    pending = ("Loading widget...",)

    def views() -> list[dict[str, Any]] | None:
        found = page.evaluate(WIDGET_OUTPUTS, [PANEL, wanted])
        return None if any(v.get("text") in pending for v in found) else found

    try:
        found = _wait("widgets to load", views, WIDGET_TIMEOUT)
    except LabWaitError:
        found = page.evaluate(WIDGET_OUTPUTS, [PANEL, wanted])
    for view in found:
        label = _cell_label(saved.cells, view["cell"])
        where = f"{label}, output {view['output'] + 1}"
        if view["missing"]:
            run.problems.append(f"{where}: a widget output is not on the page")
        elif view["text"].startswith(("Loading widget", "Error displaying widget")):
            run.problems.append(f"{where}: the widget did not render: {view['text']!r}")
        elif view["mime"] is not None:
            run.problems.append(f"{where}: the widget is shown as {view['mime']} "
                                f"({view['text'][:60]!r}): no widget manager?")
        elif not (view["rendered"] or view["hidden"]):
            run.problems.append(f"{where}: no rendered widget ({view['text'][:60]!r})")
    if run.problems == [] and not page.evaluate("window.__labTest.widgets.length"):
        run.problems.append("widget outputs were saved but none appeared on the page")


def _screenshot_progress(page: Any, path: Path) -> bool:
    """A screenshot of a progress bar that has moved, if one is on the page now.

    Best effort: the bar may vanish between the check and the picture.
    """
    bars = page.locator(PROGRESS)
    with contextlib.suppress(Exception):
        for i in range(bars.count()):
            bar = bars.nth(i)
            text = bar.evaluate("e => (e.closest('.widget-hbox') || e).textContent")
            if re.search(r"\b[1-9]\d*%", text):
                bar.scroll_into_view_if_needed(timeout=2_000)
                path.parent.mkdir(exist_ok=True)
                page.screenshot(path=str(path))
                return True
    return False


def _screenshot_training(page: Any, run: LabRun, path: Path) -> None:
    """The cell that showed the progress bar (its curves and epochs), after the run."""
    cells = [p["cell"] for p in run.progress if p["cell"] is not None]
    if cells:
        page.locator(f"{PANEL} .jp-Notebook-cell").nth(cells[0]).scroll_into_view_if_needed(
            timeout=5_000)
    path.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(path))


def _report(run: LabRun) -> str:
    lines = [f"{run.name} in JupyterLab ({run.seconds:.0f} s):", *run.problems]
    if run.console:
        lines.append("browser console errors: " + " | ".join(run.console[-5:]))
    return "\n  ".join(lines)


# --------------------------------------------------------------------------- the tests


@pytest.mark.parametrize(("name", "expected"), [
    ("passes.ipynb", []),
    ("fails.ipynb", [r"cell 1 .*the widget did not render: "
                     r"'(Loading widget|Error displaying widget)",
                     r"cell 3 \(`1 / 0`\) raised ZeroDivisionError",
                     r"cell 4 \(`y = 2`\) did not run"]),
])
def test_checks_catch_what_they_should(browser: Any, lab: Lab, name: str,
                                       expected: list[str]) -> None:
    """The checks on small notebooks: a missing widget and an error caught (and the cell
    after the error seen not to run), widgets seen where they render."""
    run = run_in_lab(browser, lab, f"{SELFTEST_DIR}/{name}", failure_screenshot=False)
    assert not [p for p in run.problems if p.startswith("stopped:")], _report(run)
    assert len(run.problems) == len(expected), _report(run)
    for pattern in expected:
        assert any(re.search(pattern, p) for p in run.problems), (pattern, _report(run))
    if name == "passes.ipynb":
        # Cell 4 shows an IntProgress, cell 6 a tqdm bar (indices from 0 on the page).
        shown = {w["cell"] for w in run.widgets if w["width"] > 0}
        assert {3, 5} <= shown, f"widgets seen: {run.widgets}"
        assert {3, 5} <= {p["cell"] for p in run.progress if p["width"] > 0}, run.progress


# The training notebook is opened (and run) by the test after this one.
@pytest.mark.parametrize("name", [n for n in NOTEBOOK_NAMES
                                  if not n.startswith(TRAINING_PREFIX)])
def test_every_notebook_opens_in_jupyterlab_with_its_kernel(browser: Any, lab: Lab,
                                                             name: str) -> None:
    run = run_in_lab(browser, lab, name, run_all=False)
    assert run.problems == [], _report(run)


def test_the_training_notebook_runs_in_jupyterlab_with_its_progress_bar(
        browser: Any, lab: Lab) -> None:
    (name,) = [n for n in NOTEBOOK_NAMES if n.startswith(TRAINING_PREFIX)]
    run = run_in_lab(browser, lab, name, screenshot=ARTIFACTS / f"lab-{name[:2]}.png")
    assert run.problems == [], _report(run)
    shown = [p for p in run.progress if p["width"] > 0]
    assert shown, (f"{name}: no tqdm progress bar appeared while it trained "
                   f"(widgets seen: {run.widgets})")
