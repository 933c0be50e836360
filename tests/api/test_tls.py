from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from wallctl.client import open_client

from .conftest import PASSWORD, start_api, stop_api


def make_cert(cert: Path, key: Path) -> None:
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_tls_when_a_certificate_is_configured(tmp_path: Path, accounts_db: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    await asyncio.to_thread(make_cert, cert, key)
    api = await start_api(tmp_path, accounts_db, tls_cert=cert, tls_key=key)
    try:
        assert api.url.startswith("wss://127.0.0.1:")
        ctx = ssl.create_default_context(cafile=str(cert))
        async with open_client(api.url, account="viewer1", password=PASSWORD, ssl_context=ctx) as c:
            assert (await c.call("wall.get"))["state"]["wall"] == "main"
    finally:
        await stop_api(api)
