"""wallctl: video-wall and device control daemon for command centres."""

__version__ = "0.1.0"
