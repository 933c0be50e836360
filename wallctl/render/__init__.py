"""The render pipeline: sources decoded once, composited per head, sent to outputs."""
