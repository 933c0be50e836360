from __future__ import annotations

import asyncio
import shutil
import ssl
from pathlib import Path

import pytest
from helpers.tls import make_cert

from wallctl.client import open_client
from wallctl.config import load_config

from .conftest import PASSWORD, start_api, stop_api


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_tls_when_a_certificate_is_configured(tmp_path: Path, accounts_db: Path) -> None:
    (tmp_path / "etc" / "certs").mkdir(parents=True)
    cert, key = tmp_path / "etc" / "certs" / "cert.pem", tmp_path / "etc" / "certs" / "key.pem"
    await asyncio.to_thread(make_cert, cert, key)
    # Relative paths in the file are taken from the file's folder, whatever the cwd.
    conf = tmp_path / "etc" / "wallctl.toml"
    conf.write_text(
        "[wall.tiles]\nrows = 2\ncols = 2\nwidth_mm = 1209.6\nheight_mm = 680.4\n"
        "width_px = 1920\nheight_px = 1080\n"
        '[api]\ntls_cert = "certs/cert.pem"\ntls_key = "certs/key.pem"\n'
    )
    api_cfg = load_config(conf).config.api
    assert (api_cfg.tls_cert, api_cfg.tls_key) == (cert, key)
    absolute = api_cfg.resolved(tmp_path / "elsewhere")
    assert absolute.tls_cert == cert
    api = await start_api(tmp_path, accounts_db, tls_cert=api_cfg.tls_cert, tls_key=api_cfg.tls_key)
    try:
        assert api.url.startswith("wss://127.0.0.1:")
        ctx = ssl.create_default_context(cafile=str(cert))
        async with open_client(api.url, account="viewer1", password=PASSWORD, ssl_context=ctx) as c:
            assert (await c.call("wall.get"))["state"]["wall"] == "main"
    finally:
        await stop_api(api)
