"""The built book as a reader sees it: every page opened in headless Chromium.

For every HTML page of ``_build/book/_build/html``: the math was typeset by MathJax (no raw
``$$`` or ``\\(`` delimiters left outside code, no MathJax error), every image loaded
(``naturalWidth > 0``), no cell output holds a traceback, an error or stderr, every internal
link and anchor resolves, and every file the page requested was served. The front page is
saved as ``_build/artifacts/front-page.png``.

And laid out for a reader, in a 1280 px wide window (``test_page_layout``): nothing in the
article is wider than the content column (book/_static/cell-outputs.css gives a wide output a
scrolling box of its own as the last resort); no table, image or cell output is wider than the
text column either, measured by what it holds (``scrollWidth``), so a table that needs its own
scroll bar fails; no table of a chapter shows more than ``report.MAX_ROWS`` rows (longer ones are collapsed);
no table header is a code name (the one rule:
``koopman_repro.report.is_code_name``); the page draws exactly the figures its chapter declares
(``FIGURES`` in ``koopman_repro/chapters/<page>.py``, the front page's in
``koopman_repro/scorecard/tables.py``), so a figure that silently stops being drawn fails; the
page's first figure comes before any visible code cell of more than 15 lines, no parameters cell
is shown, and the page's first screen is saved as ``_build/artifacts/pages/<page>.png``.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them)
and selenium (``requirements/test-browser.txt``, installed by ``scripts/test.sh``). The
pages are served from a local HTTP server on 127.0.0.1; nothing else is contacted.
"""
from __future__ import annotations

import functools
import http.server
import importlib
import os
import re
import time
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

from koopman_repro import scorecard
from koopman_repro.report import MAX_ROWS, is_code_name
from koopman_repro.results import REPO_ROOT

pytestmark = pytest.mark.book

HTML = Path(os.environ.get("KOOPMAN_BOOK_HTML", REPO_ROOT / "_build" / "book" / "_build" / "html"))
ARTIFACTS = REPO_ROOT / "_build" / "artifacts"
NOTEBOOKS = REPO_ROOT / "notebooks"
#: the browser and its driver: KOOPMAN_CHROMIUM and KOOPMAN_CHROMEDRIVER, Debian's paths by default
#: (the same variables .ci/run and .github/workflows/book.yml use)
CHROMIUM = Path(os.environ.get("KOOPMAN_CHROMIUM") or "/usr/bin/chromium")
CHROMEDRIVER = Path(os.environ.get("KOOPMAN_CHROMEDRIVER") or "/usr/bin/chromedriver")
#: --no-sandbox: runs as root in a container; --disable-dev-shm-usage: a container's /dev/shm is
#: 64 MB (Docker's default), too small for Chromium's shared memory, which then goes to /tmp
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--window-size=1280,1600")
SKIP_DIRS = {"_static", "_sources", "_images", "mathjax", "_sphinx_design_static"}
#: requests a browser makes on its own, not asked for by the page
IGNORED_REQUESTS = {"/favicon.ico"}
#: console messages that fail a page: uncaught script errors and resources that did not load
CONSOLE_FAILS = ("Uncaught", "Failed to load resource", "net::ERR_")
#: known upstream faults, allowed with the reason. Jupyter Book 1.0.4 registers sphinx-thebe's
#: inline config script twice on every page, so the second `const THEBE_JS_URL` throws; thebe
#: (live code) is not used by this book, and the rest of the page is unaffected.
CONSOLE_ALLOWED = ("Identifier 'THEBE_JS_URL' has already been declared",)
#: the reading window of the layout checks (the screenshots are taken at this size)
WINDOW = (1280, 1600)
#: a visible code cell longer than this, before the page's first figure, buries the result
LONG_CODE_LINES = 15
ERROR_LINE = re.compile(r"^\s*(Traceback \(most recent call last\)|[A-Za-z_.]*(Error|Exception|Warning): )", re.M)


def book_pages() -> list[str]:
    if not (HTML / "index.html").is_file():
        return []
    return sorted(p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html")
                  if not (set(p.relative_to(HTML).parts[:-1]) & SKIP_DIRS))


# -- a local server that remembers what it could not serve -------------------------------------
class _Handler(http.server.SimpleHTTPRequestHandler):
    missing: list[str]

    def send_error(self, code, message=None, explain=None):
        if code == 404:
            self.missing.append(urlsplit(self.path).path)
        super().send_error(code, message, explain)

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture(scope="module")
def server():
    assert (HTML / "index.html").is_file(), f"no built book in {HTML}: run `koopman book --profile ci` first"
    missing: list[str] = []
    handler = type("Handler", (_Handler,), {"missing": missing})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(HTML)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", missing
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    for tool in (CHROMIUM, CHROMEDRIVER):
        assert tool.exists(), (f"{tool} is missing: install the Debian packages chromium and chromium-driver "
                               "(`apt-get install -y chromium chromium-driver`; .ci/run does this), or point "
                               "KOOPMAN_CHROMIUM and KOOPMAN_CHROMEDRIVER at a browser and its driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:  # pragma: no cover - environment problem, said plainly
        pytest.fail("selenium is missing: pip install -r requirements/test-browser.txt (scripts/test.sh does this)")
    profile = tempfile.TemporaryDirectory(prefix="koopman-chromium-")
    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS + (f"--user-data-dir={profile.name}",):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()
    profile.cleanup()


# -- static facts about the pages (ids for anchors) --------------------------------------------
class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k == "id" or (tag == "a" and k == "name"):
                self.ids.add(v)


@functools.lru_cache(maxsize=None)
def page_ids(path: Path) -> frozenset[str]:
    p = _Ids()
    p.feed(path.read_text(errors="replace"))
    return frozenset(p.ids)


def resolve_local(url: str, base: str) -> Path | None:
    """The file a same-server URL points at (``None`` for other servers)."""
    if not url.startswith(base):
        return None
    rel = unquote(urlsplit(url).path)[1:]
    target = HTML / rel
    return target / "index.html" if (not rel or target.is_dir()) else target


# -- what the browser sees -----------------------------------------------------------------------
# MathJax is a deferred script: on a page reached through a redirect (index.html -> the root page)
# the check can run before it has loaded, so wait for it (up to 10 s) where the page has maths
WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1];
const started = Date.now();
const check = () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(() => done("typeset"), (e) => done("failed: " + e));
  } else if (!document.querySelector(".math")) {
    done("no math");
  } else if (Date.now() - started > 10000) {
    done("no mathjax");
  } else { setTimeout(check, 100); }
};
check();
"""

INSPECT = """
const textOutside = (root, drop) => {
  const c = root.cloneNode(true);
  c.querySelectorAll(drop).forEach(e => e.remove());
  return c.textContent;
};
const outputs = [...document.querySelectorAll(".cell_output, .output")];
return {
  text: textOutside(document.body, "pre, code, script, style, textarea, mjx-container, .highlight"),
  maths: document.querySelectorAll("span.math, div.math").length,
  untypeset: [...document.querySelectorAll("span.math, div.math")]
      .filter(e => !e.querySelector("mjx-container")).map(e => e.textContent.slice(0, 80)),
  mathErrors: [...document.querySelectorAll("mjx-merror, [data-mjx-error]")].map(e => e.textContent.slice(0, 80)),
  images: [...document.images].map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0})),
  errorOutputs: [...document.querySelectorAll(
      ".output.error, .output.traceback, .output.stderr, .cell_output .stderr, .cell_output .traceback")]
      .map(e => e.textContent.slice(0, 200)),
  outputText: outputs.map(e => e.textContent).join("\\n"),
  links: [...document.querySelectorAll("a[href]")].map(a => a.href),
  tables: [...document.querySelectorAll("table")].map(t => ({
      head: [...t.querySelectorAll("thead th")].map(th => th.textContent.trim()),
      rows: t.querySelectorAll("tbody tr").length})),
};
"""


LAYOUT = """
const [longLines, maxRows] = arguments;
const article = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
const limit = article.getBoundingClientRect().right + 1;
// shown to a reader: rendered, not in a collapsed <details> (hide-input), not invisible
const closed = e => { const d = e.closest("details:not([open])");
                      return !!d && !e.closest("summary") && d.contains(e) && d !== e; };
// MathJax's assistive MathML (for screen readers) is laid out but clipped to nothing (position
// absolute, clip: rect(1px, 1px, 1px, 1px)): never drawn, so never measured; the typeset math
// beside it (mjx-container) is
const unseen = e => !!e.closest("mjx-assistive-mml");
const shown = e => e.getClientRects().length > 0 && !closed(e) && !unseen(e)
    && (e.checkVisibility ? e.checkVisibility({visibilityProperty: true}) : getComputedStyle(e).visibility !== "hidden");
const name = e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "")
    + [...e.classList].slice(0, 3).map(c => "." + c).join("");
const scrolls = e => ["auto", "scroll"].includes(getComputedStyle(e).overflowX);
// (a) wider than the content column, unless a scrolling box inside the column holds it
const wide = [];
for (const e of article.querySelectorAll("*")) {
  const r = e.getBoundingClientRect();
  if (!r.width || r.right <= limit || unseen(e)) continue;
  let held = false;
  for (let p = e.parentElement; p && p !== article; p = p.parentElement) {
    if (scrolls(p) && p.getBoundingClientRect().right <= limit) { held = true; break; }
  }
  if (!held && !wide.some(w => w.el.contains(e))) wide.push({el: e, right: Math.round(r.right)});
}
// (b) the first figure (an image in a cell output) and the first long visible code cell
const lines = pre => pre.textContent.replace(/\\n+$/, "").split("\\n").length;
const longCode = [...article.querySelectorAll(".cell_input pre")]
    .filter(pre => shown(pre) && lines(pre) > longLines);
const figure = [...article.querySelectorAll(".cell_output img")].find(shown) || null;
const before = (a, b) => !!(a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING);
// (c) parameters cells (tags parameters / injected-parameters, or papermill's "# Parameters" line first)
const code = cell => { const pre = cell.querySelector(".cell_input pre"); return pre ? pre.textContent : ""; };
const params = [...article.querySelectorAll("div.cell")].filter(cell => shown(cell) && (
    cell.matches(".tag_parameters, .tag_injected-parameters")
    || (shown(cell.querySelector(".cell_input") || cell) && /^\\s*# Parameters\\s*$/.test(
        code(cell).split("\\n").find(l => l.trim()) || ""))));
// (d) tables, images and cell outputs against the text column (the article's content box): the
// drawn box, and for a box that scrolls (overflow auto or scroll: the table container, a <pre>)
// what scrolls inside it (scrollWidth), so a wide table in a box with its own scroll bar counts;
// what a box hides (overflow hidden) is measured by its own drawn box. Collapsed blocks (the rest
// of a long table, hidden code) are opened for this measurement, so a reader who opens one gets a
// table that fits too, and closed again afterwards
const collapsed = [...article.querySelectorAll("details:not([open])")];
collapsed.forEach(d => { d.open = true; });
const cs = getComputedStyle(article);
const text = article.getBoundingClientRect().right - parseFloat(cs.paddingRight) - parseFloat(cs.borderRightWidth);
const reach = e => { const r = e.getBoundingClientRect();
                     return scrolls(e) ? Math.max(r.right, r.left + e.scrollWidth) : r.right; };
const outside = [...article.querySelectorAll("table, img, .cell_output, .cell_output *")]
    .filter(e => shown(e) && e.getBoundingClientRect().width && reach(e) > text + 1)
    .filter((e, i, all) => !all.some(o => o !== e && o.contains(e) && o.matches("table, img")));
const outsideText = outside.slice(0, 6).map(e => `${name(e)} reaches ${Math.round(reach(e))} px: ${e.textContent.trim().slice(0, 60)}`);
collapsed.forEach(d => { d.open = false; });
// (e) table headers, shown or collapsed; (f) the figures drawn by cells
const heads = [...article.querySelectorAll("table thead th")].map(th => th.textContent.trim());
const long = [...article.querySelectorAll("table")].filter(t => shown(t))
    .map(t => ({rows: t.querySelectorAll("tbody tr").length, head: t.querySelector("tr")?.textContent.trim().slice(0, 60)}))
    .filter(t => t.rows > maxRows);
return {
  text: Math.round(text),
  outside: outsideText,
  nOutside: outside.length,
  heads: heads,
  long: long,
  figures: [...article.querySelectorAll(".cell_output img")].length,
  innerWidth: window.innerWidth,
  column: Math.round(limit - 1),
  pageScroll: document.documentElement.scrollWidth - document.documentElement.clientWidth,
  wide: wide.slice(0, 5).map(w => `${name(w.el)} reaches ${w.right} px: ${w.el.textContent.trim().slice(0, 60)}`),
  nWide: wide.length,
  longCode: longCode.map(pre => ({lines: lines(pre), text: pre.textContent.slice(0, 60),
                                  beforeFigure: !figure || before(pre, figure)})),
  figure: figure && (figure.currentSrc || figure.src),
  params: params.map(cell => name(cell) + ": " + code(cell).trim().slice(0, 60)),
};
"""


def inspect(driver, url: str) -> dict:
    driver.get(url)
    for _ in range(100):   # a redirect stub: wait (up to 10 s) until the browser has followed it
        if not driver.execute_script('return !!document.querySelector(\'meta[http-equiv="refresh"]\')'):
            break
        time.sleep(0.1)
    state = driver.execute_async_script(WAIT_FOR_MATHJAX)
    info = driver.execute_script(INSPECT)
    info["mathjax"] = state
    info["console"] = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    return info


PAGES = book_pages()
REDIRECT = re.compile(r'^\s*<meta http-equiv="refresh"[^>]*>\s*$', re.I)
#: pages with content: not the redirect stubs (index.html -> the root page) Sphinx writes
CONTENT_PAGES = [p for p in PAGES if not REDIRECT.match((HTML / p).read_text(errors="replace")[:2000])]


def test_book_was_built():
    assert PAGES, f"no built book in {HTML}: run `koopman book --profile ci` before `pytest -m book`"
    assert "genindex.html" in PAGES or len(PAGES) > 1


@pytest.mark.parametrize("page", PAGES)
def test_page_reads_correctly(page, browser, server):
    base, missing = server
    before = len(missing)
    url = urljoin(base, page)
    info = inspect(browser, url)
    problems = []

    # math: typeset by MathJax, no delimiters left in the prose
    if info["maths"]:
        if info["mathjax"] != "typeset":
            problems.append(f"MathJax did not typeset the page ({info['mathjax']})")
        if info["untypeset"]:
            problems.append(f"{len(info['untypeset'])} math element(s) not typeset, e.g. {info['untypeset'][0]!r}")
    for raw in ("$$", "\\(", "\\["):
        if raw in info["text"]:
            i = info["text"].index(raw)
            problems.append(f"raw math delimiter {raw!r} in the page text: {info['text'][max(0, i - 40):i + 40]!r}")
    if info["mathErrors"]:
        problems.append(f"MathJax errors: {info['mathErrors'][:3]}")

    # images
    broken = [i["src"] for i in info["images"] if not i["ok"]]
    if broken:
        problems.append(f"images that did not load: {broken[:5]}")

    # cell outputs
    if info["errorOutputs"]:
        problems.append(f"error/stderr outputs: {info['errorOutputs'][:3]}")
    m = ERROR_LINE.search(info["outputText"])
    if m:
        problems.append(f"a cell output reports an error: {info['outputText'][m.start():m.start() + 160]!r}")

    # internal links and anchors
    for href in info["links"]:
        target = resolve_local(href, base)
        if target is None:
            continue
        if not target.is_file():
            problems.append(f"broken link {href} (no {target.relative_to(HTML)})")
            continue
        frag = unquote(urlsplit(href).fragment)
        if frag and target.suffix == ".html" and frag not in page_ids(target):
            problems.append(f"broken anchor {href}")

    # everything the page asked the server for was there; no script errors
    not_served = sorted(set(missing[before:]) - IGNORED_REQUESTS)
    if not_served:
        problems.append(f"requested but not served: {not_served[:5]}")
    console = [e["message"] for e in info["console"]
               if any(f in e["message"] for f in CONSOLE_FAILS) and "favicon.ico" not in e["message"]
               and not any(a in e["message"] for a in CONSOLE_ALLOWED)]
    if console:
        problems.append(f"console errors: {console[:3]}")

    assert not problems, f"{page}:\n  " + "\n  ".join(problems)


def figures_module(page: str) -> str:
    """The module that declares the figures of a notebook's page (``FIGURES``, next to the code
    that draws them): ``koopman_repro.chapters.<page>``; the front page's, the scorecard's tables."""
    stem = page[:-len(".html")]
    return "koopman_repro.scorecard.tables" if stem == "scorecard" else f"koopman_repro.chapters.{stem}"


def declared_figures(page: str) -> int | None:
    """How many figures the page's chapter declares; ``None`` for a page that is not a notebook."""
    if not (NOTEBOOKS / (page[:-len(".html")] + ".md")).is_file():
        return None
    return importlib.import_module(figures_module(page)).FIGURES


def test_every_notebook_declares_its_figures():
    """A notebook without a declared count would escape the figure check."""
    missing = []
    for nb in sorted(NOTEBOOKS.glob("*.md")):
        try:
            n = declared_figures(nb.stem + ".html")
        except (ImportError, AttributeError) as e:
            missing.append(f"{nb.name}: {e}")
            continue
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            missing.append(f"{nb.name}: FIGURES = {n!r} is not a count")
    assert not missing, "notebooks without a figure count: " + "; ".join(missing)


def screenshot_path(page: str) -> Path:
    """``_build/artifacts/pages/<page>.png`` (``a/b.html`` -> ``a--b.png``)."""
    return ARTIFACTS / "pages" / (page[:-len(".html")].replace("/", "--") + ".png")


@pytest.mark.parametrize("page", CONTENT_PAGES)
def test_page_layout(page, browser, server):
    """The page as a reader sees it in a 1280 px window: nothing wider than the content column, no
    table, image or output wider than the text column, headers in words, every declared figure
    drawn, the first figure before any long visible code, no parameters cell; a screenshot is kept."""
    base, _ = server
    browser.set_window_size(*WINDOW)
    browser.get(urljoin(base, page))
    browser.execute_async_script(WAIT_FOR_MATHJAX)
    info = browser.execute_script(LAYOUT, LONG_CODE_LINES, MAX_ROWS)
    problems = []

    if info["innerWidth"] < WINDOW[0] - 40:
        problems.append(f"the window is {info['innerWidth']} px wide, not about {WINDOW[0]} px")
    # (a) no horizontal overflow of the content column (tables and figures included)
    if info["nWide"]:
        problems.append(f"{info['nWide']} element(s) wider than the content column (right edge at "
                        f"{info['column']} px) without a scrolling box of their own: {info['wide']}")
    if info["pageScroll"] > 0:
        problems.append(f"the page scrolls sideways by {info['pageScroll']} px")
    # (b) the answer (the first figure) before long code
    buried = [c for c in info["longCode"] if c["beforeFigure"]]
    if buried:
        where = "before the first figure" if info["figure"] else "on a page without a figure"
        problems.append(f"{len(buried)} visible code cell(s) longer than {LONG_CODE_LINES} lines {where} "
                        f"(tag them hide-input): first has {buried[0]['lines']} lines: {buried[0]['text']!r}")
    # (c) parameters cells are for papermill, not for readers
    if info["params"]:
        problems.append(f"visible parameters cell(s): {info['params'][:3]}")
    # (d) every table, image and cell output within the text column: no scroll bar of its own
    if info["nOutside"]:
        problems.append(f"{info['nOutside']} table(s), image(s) or output(s) wider than the text column "
                        f"(right edge at {info['text']} px): {info['outside']}")
    # (e) headers written for a reader (the one rule: koopman_repro.report.is_code_name)
    code = sorted({h for h in info["heads"] if is_code_name(h)})
    if code:
        problems.append(f"table headers that are code names: {code[:8]}")
    # (e') a chapter's tables (results) show at most MAX_ROWS rows (report.markdown_table collapses
    # the rest); a reference page (notation, glossary) is a list to look things up in, not results
    if info["long"] and (NOTEBOOKS / (page[:-len(".html")] + ".md")).is_file():
        problems.append(f"table(s) showing more than {MAX_ROWS} rows: {info['long'][:3]}")
    # (f) every figure the chapter declares was drawn, and no undeclared one
    declared = declared_figures(page)
    if declared is not None and info["figures"] != declared:
        problems.append(f"{info['figures']} figure(s) drawn in cell outputs, {declared} declared "
                        f"({figures_module(page)}.FIGURES)")
    # (g) the first screen, kept for people to look at
    shot = screenshot_path(page)
    shot.parent.mkdir(parents=True, exist_ok=True)
    if not browser.save_screenshot(str(shot)):
        problems.append(f"the screenshot {shot} could not be written")

    assert not problems, f"{page}:\n  " + "\n  ".join(problems)


def root_page() -> str:
    import yaml
    return yaml.safe_load((REPO_ROOT / "book" / "_toc.yml").read_text())["root"] + ".html"


def test_front_page_shows_the_scorecard(browser, server):
    base, _ = server
    info = inspect(browser, urljoin(base, root_page()))
    tables = [t for t in info["tables"] if "verdict" in t["head"] and "claim" in t["head"]]
    assert tables, "the front page has no scorecard table (a table with 'claim' and 'verdict' columns)"
    rows = sum(t["rows"] for t in tables)           # one table per experiment
    assert rows == len(scorecard.CLAIMS), f"the scorecard tables have {rows} rows for {len(scorecard.CLAIMS)} claims"
    assert any("verdict from our interval" in t["head"] for t in info["tables"]), \
        "the front page does not print the verdict rules"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "front-page.png"
    browser.set_window_size(1280, 1600)
    assert browser.save_screenshot(str(shot)), "the screenshot could not be written"
    assert shot.stat().st_size > 10_000, f"{shot} is suspiciously small"
