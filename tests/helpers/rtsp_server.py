"""A real RTSP server for tests: GStreamer's gst-rtsp-server, run as a subprocess.

Run it with the SYSTEM interpreter (Debian's python3-gst-1.0 and
gir1.2-gst-rtsp-server-1.0 provide the bindings; the project's venv has none)::

    /usr/bin/python3 tests/helpers/rtsp_server.py --port 0 \
        --mount cam=file:/tmp/a.mp4 --mount live=test:320x180@25 \
        [--user admin --password secret --auth basic|digest]

Mount specs:
  ``file:PATH``       an H.264 MP4 (or MPEG-TS when PATH ends in .ts), streamed from its
                      start for each client at its own rate; at its end the stream ends
  ``loop:PATH``       the same file looped forever (the demuxer restarts at the end)
  ``test:WxH@FPS``    a live moving test picture encoded with x264 (zerolatency)
  ``audio:PATH``      an audio-only file (AAC in MP4): a stream with no video track

Once listening it prints exactly one line ``READY <port>`` on stdout (flushed); the tests
wait for it. ``--port`` reuses a port (``SO_REUSEADDR``), so a test can stop the server
and start a new one on the same port to play a camera that goes away and comes back.
SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def pipeline_for(spec: str) -> tuple[str, bool]:
    """GStreamer launch line for a mount spec, and whether clients share one pipeline."""
    kind, _, arg = spec.partition(":")
    if kind in ("file", "loop"):
        demux = "tsdemux" if arg.endswith(".ts") else "qtdemux"
        src = f'filesrc location="{arg}" ! {demux} ! h264parse config-interval=-1'
        if kind == "loop":
            # multifilesrc loops a single file by reopening it at EOS.
            src = (
                f'multifilesrc location="{arg}" loop=true ! {demux} ! h264parse config-interval=-1'
            )
        return f"( {src} ! rtph264pay name=pay0 pt=96 )", False
    if kind == "test":
        size, _, fps = arg.partition("@")
        w, _, h = size.partition("x")
        return (
            f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={w},height={h},"
            f"framerate={fps or 25}/1 ! x264enc tune=zerolatency speed-preset=ultrafast "
            "key-int-max=25 bitrate=500 ! video/x-h264,profile=baseline "
            "! rtph264pay name=pay0 pt=96 config-interval=-1 )",
            True,
        )
    if kind == "audio":
        return (
            f'( filesrc location="{arg}" ! qtdemux ! aacparse ! rtpmp4gpay name=pay0 pt=97 )',
            False,
        )
    raise SystemExit(f"unknown mount spec {spec!r}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--mount", action="append", default=[], help="NAME=SPEC")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--auth", choices=("basic", "digest"), default="basic")
    args = ap.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    auth = None
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        if args.auth == "basic":
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        else:
            auth.add_digest(args.user, args.password, token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        server.set_auth(auth)
    for m in args.mount:
        name, _, spec = m.partition("=")
        launch, shared = pipeline_for(spec)
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        factory.set_shared(shared)
        if auth is not None:
            factory.add_role_from_structure(
                Gst.Structure.new_from_string(
                    "user, media.factory.access=(boolean)true, "
                    "media.factory.construct=(boolean)true"
                )
            )
        mounts.add_factory("/" + name, factory)

    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"cannot listen on port {args.port}", file=sys.stderr, flush=True)
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
