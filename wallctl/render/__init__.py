"""The render pipeline: sources decoded once, composited per head, sent to outputs."""

# wallctl.config builds its [render] section from modules of this package, which build
# on wallctl.config in turn: load it first, so importing one of them on its own (a test,
# a benchmark) never meets a half-built module.
import wallctl.config  # noqa: F401
