"""Where composited walls go: X windows per head, the HTTP preview, encoded streams."""
