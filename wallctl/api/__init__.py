"""The control API: a WebSocket JSON protocol for touch panels, dispatch software and scripts.

Kept import-light on purpose: ``wallctl.config`` imports ``wallctl.api.config``, so nothing
here may pull in the server (or the config module) at import time.
"""
