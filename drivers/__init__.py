"""Device drivers: one package per protocol, all on one small framework.

How the pieces fit (read in this order when writing a driver):

- ``errors.py``: the exceptions a driver call ends in (offline, timeout, the device's own
  refusal, bad parameters) -- the host maps them to API error codes.
- ``contract.py``: the :class:`~drivers.contract.Driver` base class. A driver declares its
  ``manifest`` (vendor, products, protocol), its ``config_model`` (pydantic), its actions
  (methods decorated with :func:`~drivers.contract.action`, each with a pydantic params
  model), and keeps its ``state`` current; the host sets ``on_event`` to hear status and
  state changes.
- ``transport.py``: where the bytes go (TCP or a serial line) behind one interface; a TCP
  link can switch to TLS where it stands (``Connection.start_tls`` from ``on_connect``).
- ``connection.py``: one device link: reconnect with capped, jittered backoff, a request
  queue with an inter-command gap and per-request timeouts, replies matched to requests,
  everything else handed to the driver as unsolicited, and liveness (a dead link is
  dropped and reopened).
- ``matrix.py`` / ``display.py``: the family contracts the wallctl layer drives (ties and
  salvos; power and input), so it needs no knowledge of any one protocol.
- ``supervisor.py``: runs a driver so that a crash is logged and retried, never fatal;
  ``backoff.py``: the capped, jittered delays both use.
- ``text.py``: ``clean_text`` for labels and names a client sends (no CR/LF, ESC or
  other control characters, nor the protocol's delimiters, ever reach a line).
- ``simulator.py``: hosts a protocol's device model on a TCP port or a pseudo-terminal
  (paced at the configured baud rate), so each simulator is just device model + grammar.
- ``registry.py``: protocol name -> driver class, config model, simulator, manifest, and
  for simulators that are not byte streams (HTTPS, WebSocket) a ``host`` of their own;
  ``Protocol.serve`` starts whichever the protocol has.

Waiting with a deadline: ``async with asyncio.timeout(...)``, never ``asyncio.wait_for``
(on 3.11 it loses a cancellation that lands as its result does, and a stopping driver
then hangs); waiting for a task you cancelled: ``asyncio.wait({task})``, never ``await``
inside ``except CancelledError: pass`` (that swallows the caller's own cancellation).

A protocol package (``extron_sis/``, ``kramer_p3000/``, ...) holds ``codec.py`` (sans-I/O:
bytes in -> events, commands -> bytes; no asyncio, no sockets), ``driver.py`` and
``simulator.py`` (which reuses the codec's grammar tables, never its parser).
"""
