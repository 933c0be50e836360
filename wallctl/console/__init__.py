"""The commander's console: a web page served by the daemon, a client of the public API."""
