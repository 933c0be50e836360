"""Run a driver so that its crash is logged and retried, never fatal to the daemon."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from drivers.backoff import Backoff
from wallctl.logs import get_logger

log = get_logger("drivers.supervisor")


async def supervise(
    name: str,
    body: Callable[[], Awaitable[None]],
    backoff: Backoff | None = None,
    on_crash: Callable[[BaseException], None] | None = None,
) -> None:
    """Await ``body()`` until it returns; when it raises, log, wait, and run it again.

    A body that ran for a while before crashing starts again from the short delay, so
    one crash a day does not leave a device waiting at the backoff cap.
    """
    backoff = backoff or Backoff(initial=1.0, cap=60.0)
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        try:
            await body()
            return
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if loop.time() - started > 60:
                backoff.reset()
            delay = backoff.next()
            log.exception("driver crashed; restarting", device=name, error=repr(e), retry_s=delay)
            if on_crash is not None:
                on_crash(e)
            await asyncio.sleep(delay)
