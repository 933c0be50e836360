# wallctl — see README.md. Works as root on a fresh Debian 12 with Python 3.11.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Debian packages the daemon itself uses: a CJK font for the wall's Chinese labels and
# slates; ffmpeg for the SRT/V4L2 inputs and the SRT stream output (PyAV's FFmpeg lacks them).
DEB_RUN_PACKAGES ?= fonts-noto-cjk ffmpeg
# Terminals' voices on the centre's loudspeaker: ALSA's configuration (/usr/share/alsa),
# which PyAV's bundled libasound is pointed at (wallctl/terminals/audio.py).
DEB_RUN_PACKAGES += libasound2-data
# Debian packages the test suite talks to as real peers.
DEB_TEST_PACKAGES ?= $(DEB_RUN_PACKAGES) systemd sqlite3 socat mosquitto mosquitto-clients
# The console's browser tests: headless Chromium and a CJK font for its screenshots.
DEB_TEST_PACKAGES += chromium fonts-wqy-microhei
# The compositor: a CJK font for labels and slates, an X server and SDL2 for the window
# output, ffmpeg to probe the stream output.
DEB_TEST_PACKAGES += fonts-noto-cjk xvfb libsdl2-2.0-0 ffmpeg
# The sources: ffmpeg makes H.264 files; gst-rtsp-server (run by the system python3)
# serves them, with credentials, as a real RTSP camera (tests/helpers/rtsp_server.py).
DEB_TEST_PACKAGES += python3-gst-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
	gstreamer1.0-plugins-ugly
# Mobile terminals: WebRTC tests run in a loopback-only network namespace (unshare, ip);
# chromium and ffmpeg (above) are the browser publisher and the clip maker.
DEB_TEST_PACKAGES += util-linux iproute2
# ONVIF cameras: WS-Discovery runs across a veth pair into a network namespace (iproute2,
# above); npm's `onvif` (Node, tests/onvif/node, `npm ci` from its lock file) cross-checks
# the fake camera. Debian's nodejs leaves npm to the `npm` package; NodeSource's has it.
DEB_TEST_PACKAGES += nodejs
# Cisco tshell over SSH: OpenSSH's own client (sshpass gives it the password) drives the
# simulator's SSH server (tests/drivers/test_cisco_xapi_ssh.py).
DEB_TEST_PACKAGES += openssh-client sshpass
APT_UPDATED := $(VENV)/.apt-updated

.PHONY: run test lint typecheck pytest bench fmt clean deb-test-deps deb-run-deps venv

run: deb-run-deps $(VENV)/.installed
	$(BIN)/wallctl run $(ARGS)

test: deb-test-deps $(VENV)/.installed-test lint typecheck pytest

venv: $(VENV)/.installed

# A fresh Debian's python3 lacks the venv module until python3-venv is installed.
$(VENV)/bin/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  rm -rf $(VENV); \
	  echo "python3 -m venv failed: installing python3-venv"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; \
	  $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml setup.py $(VENV)/bin/python
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml setup.py $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[test]'
	@touch $@ $(VENV)/.installed

deb-run-deps:
	@$(MAKE) --no-print-directory deb-test-deps DEB_TEST_PACKAGES="$(DEB_RUN_PACKAGES)"

deb-test-deps:
	@missing=""; for p in $(DEB_TEST_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff format --check wallctl drivers tests bench
	$(BIN)/ruff check wallctl drivers tests bench

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# pytest exits 5 when it collected no test: that is a failure here, as any non-zero is.
pytest: $(VENV)/.installed-test
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-test
	$(BIN)/python bench/run_all.py

fmt: $(VENV)/.installed-test
	$(BIN)/ruff format wallctl drivers tests bench
	$(BIN)/ruff check --fix wallctl drivers tests bench

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
