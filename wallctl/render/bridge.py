"""Inputs PyAV's bundled FFmpeg cannot open, brought in through the system ffmpeg.

The PyAV wheels bundle an FFmpeg built without libsrt and without the V4L2 device
demuxer (checked: ``srt://`` is "Protocol not found", ``v4l2`` is absent from
``av.formats_available``). Debian's ffmpeg has both. For such an input wallctl runs
``ffmpeg -i <input> -map 0:v:0 -c copy -f nut pipe:1`` and decodes the NUT stream it
writes (H.264 copied as is, raw V4L2 pictures as rawvideo): no re-encoding, one extra
memcpy per packet. Stopping kills the process, which also ends any blocking read.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from typing import IO, Any

import av
import av.error

from wallctl.redact import redact

# Error lines ffmpeg prints when the input has no video stream to map.
_NO_VIDEO_MARKERS = ("matches no streams", "Output file does not contain any stream")


class BridgeError(Exception):
    """The ffmpeg process failed; the message is its own last words, redacted."""


class BridgeNoVideo(BridgeError):
    pass


@functools.cache
def pyav_has_protocol(scheme: str) -> bool:
    """Whether PyAV's FFmpeg knows the URL scheme (asked once, of a closed local port)."""
    try:
        av.open(f"{scheme}://127.0.0.1:1/", timeout=(0.5, 0.5))
    except av.error.ProtocolNotFoundError:
        return False
    except Exception:  # refused, timed out, bad URL: the protocol exists
        return True
    return True


@functools.cache
def pyav_has_format(name: str) -> bool:
    return name in av.formats_available


def system_ffmpeg() -> str | None:
    return shutil.which("ffmpeg")


def needs_bridge(url: str, fmt: str | None) -> bool:
    if fmt is not None and not pyav_has_format(fmt):
        return True
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    return bool(scheme) and not pyav_has_protocol(scheme)


class FfmpegBridge:
    """One ``ffmpeg`` process remuxing an input's first video stream to NUT on a pipe."""

    def __init__(self, url: str, fmt: str | None, options: dict[str, str]) -> None:
        self.url, self.fmt, self.options = url, fmt, options
        self.proc: subprocess.Popen[bytes] | None = None
        self._err: IO[bytes] | None = None
        self._killed = False

    def command(self, ffmpeg: str) -> list[str]:
        cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error"]
        if self.fmt:
            cmd += ["-f", self.fmt]
        for key, value in self.options.items():
            cmd += [f"-{key}", value]
        cmd += ["-i", self.url, "-map", "0:v:0", "-c", "copy"]
        # Every packet written at once: the pipe adds no latency.
        cmd += ["-flush_packets", "1", "-f", "nut", "pipe:1"]
        return cmd

    def open(self, timeout: tuple[float, float]) -> Any:
        ffmpeg = system_ffmpeg()
        if ffmpeg is None:
            raise BridgeError(
                "this input needs the system ffmpeg (PyAV's FFmpeg cannot open it): "
                "install Debian's ffmpeg"
            )
        # A file, not a pipe: a chatty ffmpeg can never block on a full stderr pipe.
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            self.command(ffmpeg),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._err,
        )
        if self._killed:  # stopped while the process was being started
            self.proc.kill()
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        try:
            return av.open(
                f"pipe:{fd}",
                format="nut",
                options={"probesize": "65536", "analyzeduration": "200000"},
                timeout=timeout,
            )
        except av.error.FFmpegError as e:
            self.close()
            raise self.failure() from e

    def failure(self) -> BridgeError:
        """Why the process failed, from its stderr (after it ended)."""
        text = self.last_words()
        if any(m in text for m in _NO_VIDEO_MARKERS):
            return BridgeNoVideo(text)
        return BridgeError(text or "the ffmpeg bridge ended without a word")

    def last_words(self) -> str:
        if self._err is None:
            return ""
        try:
            self._err.seek(0, os.SEEK_END)
            size = self._err.tell()
            self._err.seek(max(0, size - 2048))
            lines = self._err.read().decode("utf-8", "replace").strip().splitlines()
        except (OSError, ValueError):
            return ""
        return redact(lines[-1].strip()) if lines else ""

    def kill(self) -> None:
        """End the process now (any thread): a blocked read then sees end of file."""
        self._killed = True
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                proc.kill()
            except OSError:
                pass

    def close(self) -> None:
        self.kill()
        proc = self.proc
        if proc is not None:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            if proc.stdout is not None:
                proc.stdout.close()
        # Keep stderr until failure() was read: closed with the bridge object.

    def __del__(self) -> None:
        if self._err is not None:
            self._err.close()
