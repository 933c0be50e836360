"""Fixtures of the ONVIF tests (the rig itself is in camrig.py, importable by the tests).

This folder has no __init__.py on purpose: as a package named ``onvif`` under tests/ (which
pytest puts on sys.path) it would shadow the onvif-zeep-async library's ``onvif``.
"""

from __future__ import annotations

from camrig import camera, rig

__all__ = ["camera", "rig"]
