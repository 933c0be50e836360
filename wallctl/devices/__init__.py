"""Devices in wallctl: ``[[devices]]`` config, the device service (drivers run
supervised, events on the bus), API methods and CLI commands. The protocols themselves
live in ``drivers/``."""
