"""A throw-away TLS certificate for tests (importable as ``helpers.tls`` from the test
packages, whose base folder ``tests/`` pytest puts on the path)."""

from __future__ import annotations

import subprocess
from pathlib import Path


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
