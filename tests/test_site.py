"""The course site (``make site``): built from a small executed sample, checked in headless
Chromium (skipped, saying why, where no Chromium is installed)."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_site  # noqa: E402

SAMPLE = ("01_cifar10_modelo.ipynb", "10_flowers102_datos_y_pipeline.ipynb")
BANNER = "Perfil: fast (ejecución reducida) | dispositivo: cpu"
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


def png() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [1, 0])
    ax.set(title="curva")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def executed_sample(folder: Path) -> Path:
    """Two real notebooks with outputs where ``make run`` leaves them: the setup cell's banner,
    a figure and a wide table; plus run.json."""
    folder.mkdir()
    image = png()
    for name in SAMPLE:
        nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        code[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text=BANNER + "\n")]
        code[2].outputs = [nbformat.v4.new_output("display_data", data={"image/png": image})]
        wide = "| " + " | ".join(f"columna {i}" for i in range(40)) + " |\n|" + "---|" * 40
        code[3].outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": wide})]
        nb.cells.insert(1, nbformat.v4.new_markdown_cell(
            r"Con $\alpha_k^c$ los pesos: $$L^c = \mathrm{ReLU}\Big(\sum_k \alpha_k^c A^k\Big)$$"))
        nbformat.write(nb, folder / name)
    (folder / "run_fast.json").write_text(json.dumps({
        "profile": "fast", "device": "CPU",
        "notebooks": {n: {"ok": True, "seconds": 61.0} for n in SAMPLE}}))
    (folder / "run_full.json").write_text(json.dumps({
        "profile": "full", "device": "GPU", "notebooks": {SAMPLE[0]: {"ok": True, "seconds": 30}}}))
    return folder


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """The sample site twice: with and without a Colab base URL."""
    base = tmp_path_factory.mktemp("site")
    executed = executed_sample(base / "executed")
    student = base / "student"
    student.mkdir()
    shutil.copy(ROOT / "notebooks" / SAMPLE[0], student / SAMPLE[0])
    return {"colab": build_site.build(executed, base / "with", "https://colab.example/repo/main",
                                      student),
            "plain": build_site.build(executed, base / "without", None, None)}


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])
        if tag == "img":
            self.images.append(attrs)


def parsed(path: Path) -> Links:
    links = Links()
    links.feed(path.read_text(encoding="utf-8"))
    return links


def test_home_lists_every_notebook_in_order_with_its_time(sites):
    home = sites["colab"].read_text(encoding="utf-8")
    titles = [build_site.title_and_goals(nbformat.read(ROOT / "notebooks" / n, 4))[0]
              for n in SAMPLE]
    positions = [home.find(t.split("·")[-1].strip()[:12]) for t in titles]
    assert all(p > 0 for p in positions) and positions == sorted(positions)
    assert "Dos itinerarios" in home
    table = home[home.find("<table"):home.find("</table>")]
    rows = [table[table.find(t.split("·")[-1].strip()[:12]):][:400] for t in titles]
    assert "1,0" in rows[0] and "0,5" in rows[0]  # 61 s fast, 30 s full, in Spanish minutes
    assert "1,0" in rows[1] and "sin medir" in rows[1]


def test_every_internal_link_resolves_and_figures_have_alt_text(sites):
    site = sites["colab"].parent
    pages = sorted(site.glob("*.html"))
    assert {p.stem for p in pages} >= {Path(n).stem for n in SAMPLE} | {"index", "search"}
    for html_page in pages:
        links = parsed(html_page)
        for href in links.hrefs:
            target = urlparse(href)
            if target.scheme or href.startswith("#"):
                continue
            assert (html_page.parent / unquote(target.path)).exists(), (html_page.name, href)
        for image in links.images:
            if "_static" not in image.get("src", ""):
                assert image.get("alt"), (html_page.name, image.get("src"))


def test_lessons_link_to_the_previous_and_next_page(sites):
    site = sites["colab"].parent
    pages = ["index", *(Path(n).stem for n in SAMPLE)]
    for before, page, after in zip(pages[:-1], pages[1:], [*pages[2:], None], strict=True):
        html_page = (site / f"{page}.html").read_text(encoding="utf-8")
        assert re.search(rf'class="left-prev"\s+href="{before}.html"', html_page), page
        if after:
            assert re.search(rf'class="right-next"\s+href="{after}.html"', html_page), page


def test_colab_and_downloads_only_where_configured(sites):
    lesson = sites["colab"].parent / f"{Path(SAMPLE[0]).stem}.html"
    hrefs = parsed(lesson).hrefs
    assert f"https://colab.example/repo/main/notebooks/{SAMPLE[0]}" in hrefs
    assert any(h.endswith(SAMPLE[0]) and "_downloads" in h for h in hrefs)
    assert sum("_downloads" in h for h in hrefs) == 2  # the notebook and its student version
    plain = parsed(sites["plain"].parent / f"{Path(SAMPLE[0]).stem}.html").hrefs
    assert not any("colab" in h for h in plain) and sum("_downloads" in h for h in plain) == 1


@pytest.mark.skipif(BROWSER is None, reason="no Chromium here: install Debian's `chromium` "
                    "(.ci/run does) to check the site in a real browser")
def test_the_site_in_a_headless_browser(sites):
    site = sites["colab"].parent
    lesson = site / f"{Path(SAMPLE[0]).stem}.html"
    report = browse(lesson.as_uri(), CHECK, ready=TYPESET)
    assert report["broken_images"] == [] and report["images"] >= 1, report
    assert report["bootstrap_folded"] and BANNER in report["banner_text"], report
    assert report["wide_table_scrolls"], report
    assert report["math"] >= 2 and report["math_typeset"] == report["math"], report  # offline
    assert report["sidebar"][:2] == [Path(n).stem for n in SAMPLE] or len(report["sidebar"]) >= 2
    other = browse((site / f"{Path(SAMPLE[1]).stem}.html").as_uri(), CHECK)
    assert other["broken_images"] == [] and other["images"] >= 1, other
    found = browse((site / "search.html").as_uri() + "?q=Flowers102", SEARCH,
                   ready="document.querySelectorAll('#search-results li').length > 0")
    assert any(Path(SAMPLE[1]).stem in href for href in found), found  # offline search works
    for name, page in (("home", site / "index.html"), ("lesson", lesson)):
        shot = site / f"screenshot_{name}.png"
        subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", "--window-size=1280,900",
                        f"--screenshot={shot}", page.as_uri()],
                       check=True, capture_output=True, timeout=120)
        assert shot.stat().st_size > 10_000, shot


CHECK = """(() => {
  const imgs = [...document.querySelectorAll('.bd-content img')];
  const cells = [...document.querySelectorAll('.cell')];
  const table = document.querySelector('.cell_output table');
  return JSON.stringify({
    images: imgs.length,
    broken_images: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
    bootstrap_folded: cells.length > 1 && !!cells[0].querySelector('details.hide') &&
                      !cells[0].querySelector('details.hide').open,
    banner_text: cells.length > 1 ? cells[1].innerText : '',
    math: document.querySelectorAll('.bd-content .math').length,
    math_typeset: [...document.querySelectorAll('.bd-content .math')]
                    .filter(m => m.querySelector('mjx-container')).length,
    wide_table_scrolls: !!table && table.scrollWidth > table.clientWidth &&
                        getComputedStyle(table).overflowX === 'auto',
    sidebar: [...document.querySelectorAll('.bd-sidebar-primary a.reference.internal')]
               .map(a => a.getAttribute('href').replace('.html', '')),
  });
})()"""


TYPESET = ("[...document.querySelectorAll('.bd-content .math')]"
           ".every(m => m.querySelector('mjx-container'))")  # MathJax runs after the load event
SEARCH = """JSON.stringify([...document.querySelectorAll('#search-results li a')]
                          .map(a => a.getAttribute('href')))"""


def browse(url: str, check: str, ready: str = "true"):
    """Open ``url`` in headless Chromium, wait until ``ready`` is true (at most 20 s), then return
    what the JavaScript ``check`` gives as JSON (DevTools protocol over a local websocket)."""
    import websocket  # websocket-client

    profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)  # Chromium may linger
    proc = subprocess.Popen([BROWSER, "--headless", "--no-sandbox", "--disable-gpu",
                             "--remote-debugging-port=0", "--remote-allow-origins=*",
                             f"--user-data-dir={profile.name}", "about:blank"],
                            stderr=subprocess.PIPE, text=True)
    try:
        endpoint = None
        deadline = time.monotonic() + 60
        while endpoint is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if "DevTools listening on" in line:
                endpoint = line.split("listening on", 1)[1].strip()
        assert endpoint, "Chromium did not start its DevTools endpoint"
        browser = websocket.create_connection(endpoint, timeout=60)
        calls = iter(range(1, 1000))

        def call(method, session=None, **params):
            message = {"id": next(calls), "method": method, "params": params}
            if session:
                message["sessionId"] = session
            browser.send(json.dumps(message))
            while True:
                reply = json.loads(browser.recv())
                if reply.get("id") == message["id"]:
                    assert "error" not in reply, reply
                    return reply["result"]

        target = call("Target.createTarget", url="about:blank")["targetId"]
        session = call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        call("Page.enable", session)
        call("Page.navigate", session, url=url)
        for _ in range(200):  # until the page (its images, its search results) is ready
            state = call("Runtime.evaluate", session, expression=(
                f"location.href.startsWith({json.dumps(url.split('?')[0])}) && "
                f"document.readyState === 'complete' && !!({ready})"))
            if state["result"].get("value") is True:
                break
            time.sleep(0.1)
        result = call("Runtime.evaluate", session, expression=check)
        browser.close()
        return json.loads(result["result"]["value"])
    finally:
        proc.kill()
        proc.wait(timeout=30)
        profile.cleanup()
