"""The built book as a reader meets it: every chapter loads in headless Chromium, with no broken
internal link or missing image; a screenshot of the summary page is kept with the run."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from derm_nb.chapters import CHAPTERS

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: `make setup` installs Debian's chromium package")
        pytest.skip("chromium is not installed (make setup installs it)")
    return found


def run_chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=120)


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.targets: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.targets.append(("link", attrs["href"]))
        if tag == "img" and attrs.get("src"):
            self.targets.append(("image", attrs["src"]))


def local_target(page: Path, ref: str) -> Path | None:
    url = urlparse(ref)
    if url.scheme in ("http", "https", "mailto", "data", "javascript") or not url.path:
        return None
    return (page.parent / unquote(url.path)).resolve()


@pytest.mark.parametrize("stem", [nb.stem for nb in CHAPTERS])
def test_chapter_loads_with_no_broken_links_or_images(smoke_book, stem):
    page = smoke_book.parent / "notebooks" / f"{stem}.html"
    result = run_chromium("--dump-dom", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert "<h1" in dom and "Traceback" not in dom, f"{stem}: page did not render its chapter"
    parser = Links()
    parser.feed(dom)
    broken = [(kind, ref) for kind, ref in parser.targets
              if (target := local_target(page, ref)) is not None and not target.exists()]
    assert not broken, f"{stem}: broken {broken[:5]}"
    assert any(kind == "image" for kind, _ in parser.targets), f"{stem}: no figure rendered"


def test_screenshot_of_the_summary_page(smoke_book, smoke_run):
    shot = Path(smoke_run[0]) / "book" / "summary.png"
    page = smoke_book.parent / "notebooks" / "09_summary.html"
    result = run_chromium(f"--screenshot={shot}", "--window-size=1280,2200", page.as_uri())
    assert result.returncode == 0 and shot.is_file() and shot.stat().st_size > 20_000, result.stderr[-2000:]


def test_pages_carry_no_run_path_and_fold_the_code(smoke_book, smoke_run):
    """papermill's injected cell names this machine's run folder: the published page must not; code folds."""
    run_dir = str(smoke_run[0])
    for nb in CHAPTERS:
        html = (smoke_book.parent / "notebooks" / f"{nb.stem}.html").read_text()
        assert run_dir not in html, nb.stem
        assert "tag_hide-input" in html, nb.stem
