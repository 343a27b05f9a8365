"""The built book as a reader sees it: every page opened in headless Chromium.

For every HTML page of ``_build/book/_build/html``: the math was typeset by MathJax (no raw
``$$`` or ``\\(`` delimiters left outside code, no MathJax error), every image loaded
(``naturalWidth > 0``), no cell output holds a traceback, an error or stderr, every internal
link and anchor resolves, and every file the page requested was served. The front page is
saved as ``_build/artifacts/front-page.png``.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them)
and selenium (``requirements/test-browser.txt``, installed by ``scripts/test.sh``). The
pages are served from a local HTTP server on 127.0.0.1; nothing else is contacted.
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

from koopman_lib import scorecard
from koopman_lib.results import REPO_ROOT

pytestmark = pytest.mark.book

HTML = Path(os.environ.get("KOOPMAN_BOOK_HTML", REPO_ROOT / "_build" / "book" / "_build" / "html"))
ARTIFACTS = REPO_ROOT / "_build" / "artifacts"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1600")
SKIP_DIRS = {"_static", "_sources", "_images", "mathjax", "_sphinx_design_static"}
#: requests a browser makes on its own, not asked for by the page
IGNORED_REQUESTS = {"/favicon.ico"}
#: console messages that fail a page: uncaught script errors and resources that did not load
CONSOLE_FAILS = ("Uncaught", "Failed to load resource", "net::ERR_")
#: known upstream faults, allowed with the reason. Jupyter Book 1.0.4 registers sphinx-thebe's
#: inline config script twice on every page, so the second `const THEBE_JS_URL` throws; thebe
#: (live code) is not used by this book, and the rest of the page is unaffected.
CONSOLE_ALLOWED = ("Identifier 'THEBE_JS_URL' has already been declared",)
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
                               "(`apt-get install -y chromium chromium-driver`; .ci/run does this)")
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
WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1];
if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
  MathJax.startup.promise.then(() => done("typeset"), (e) => done("failed: " + e));
} else { done(document.querySelector(".math") ? "no mathjax" : "no math"); }
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


def inspect(driver, url: str) -> dict:
    driver.get(url)
    state = driver.execute_async_script(WAIT_FOR_MATHJAX)
    info = driver.execute_script(INSPECT)
    info["mathjax"] = state
    info["console"] = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    return info


PAGES = book_pages()


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


def root_page() -> str:
    import yaml
    return yaml.safe_load((REPO_ROOT / "book" / "_toc.yml").read_text())["root"] + ".html"


def test_front_page_shows_the_scorecard(browser, server):
    base, _ = server
    info = inspect(browser, urljoin(base, root_page()))
    tables = [t for t in info["tables"] if "verdict" in t["head"]]
    assert tables, "the front page has no scorecard table (a table with a 'verdict' column)"
    assert tables[0]["rows"] == len(scorecard.CLAIMS), \
        f"the scorecard table has {tables[0]['rows']} rows for {len(scorecard.CLAIMS)} claims"
    assert any("verdict from our value" in t["head"] for t in info["tables"]), \
        "the front page does not print the verdict rules"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "front-page.png"
    browser.set_window_size(1280, 1600)
    assert browser.save_screenshot(str(shot)), "the screenshot could not be written"
    assert shot.stat().st_size > 10_000, f"{shot} is suspiciously small"
