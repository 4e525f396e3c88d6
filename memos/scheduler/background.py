"""The scheduler in the background: a daemon thread that runs it on an interval."""

from __future__ import annotations

import logging
import threading

from memos.errors import InvalidInputError, SchedulerBusyError
from memos.scheduler.jobs import RunReport
from memos.scheduler.runner import Scheduler

log = logging.getLogger(__name__)


class BackgroundScheduler:
    """Runs the scheduler every ``interval_s`` seconds in a daemon thread.

    ``stop()`` (or leaving the ``with`` block) lets a run in progress finish,
    then returns; a tick that finds another run holding the lock is skipped.
    """

    def __init__(self, scheduler: Scheduler, interval_s: float, cube: str | None = None) -> None:
        if interval_s <= 0:
            raise InvalidInputError(f"interval_s={interval_s}; allowed: > 0")
        self.scheduler, self.interval_s, self.cube = scheduler, interval_s, cube
        self.runs = 0
        self.last_report: RunReport | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memos-scheduler", daemon=True)

    def start(self) -> BackgroundScheduler:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to stop and wait for it (a run in progress finishes)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> BackgroundScheduler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.last_report = self.scheduler.run(self.cube)
                self.last_error = None
            except SchedulerBusyError as exc:
                self.last_error = str(exc)
            except Exception as exc:  # keep the agent alive; report and retry next tick
                log.exception("background scheduler run failed")
                self.last_error = f"{type(exc).__name__}: {exc}"
            self.runs += 1
            self._stop.wait(self.interval_s)
