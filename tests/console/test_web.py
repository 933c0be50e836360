"""The console's file loader and the shipped page, without a browser."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from wallctl.console.web import MAX_FILE_BYTES, load_static, security_headers, static_root


def test_only_known_kinds_of_file_are_served(tmp_path: Path) -> None:
    (tmp_path / "js").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><p>页面</p>" * 50, encoding="utf-8")
    (tmp_path / "js" / "app.js").write_text("export const x = 1;\n" * 100)
    (tmp_path / ".secret.js").write_text("hidden")
    (tmp_path / "notes.txt").write_text("not a page file")
    (tmp_path / "run.py").write_text("import os")
    (tmp_path / "huge.js").write_bytes(b"x" * (MAX_FILE_BYTES + 1))
    files = load_static(tmp_path)
    assert sorted(files) == ["index.html", "js/app.js"]
    page = files["index.html"]
    assert page.content_type == "text/html; charset=utf-8"
    assert page.gz is not None and gzip.decompress(page.gz) == page.body
    assert files["js/app.js"].content_type.startswith("text/javascript")
    # Same content, same validator; different content, another one.
    assert page.etag == load_static(tmp_path)["index.html"].etag
    assert page.etag != files["js/app.js"].etag


def test_the_shipped_page_is_self_contained() -> None:
    files = load_static(static_root())
    assert "index.html" in files and "js/app.js" in files and "console.css" in files
    for name, f in files.items():
        text = f.body.decode("utf-8")
        # Nothing from a CDN or an external font: closed networks.
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)[A-Za-z0-9]", text), name
        assert "@import" not in text and "url(http" not in text, name
    # Every module app.js pulls in is there.
    imports = set()
    for name, f in files.items():
        if name.endswith(".js"):
            imports |= set(re.findall(r'from "\./([a-z]+\.js)"', f.body.decode()))
    assert {f"js/{m}" for m in imports} <= set(files)
    # Well under the page-weight target (500 KB compressed).
    assert sum(len(f.gz or f.body) for f in files.values()) < 100 * 1024


def test_the_policy_names_only_the_api_origin() -> None:
    h = security_headers("ws://127.0.0.1:8765")
    csp = h["Content-Security-Policy"]
    assert "connect-src 'self' ws://127.0.0.1:8765;" in csp
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe" not in csp
