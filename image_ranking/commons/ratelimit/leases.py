"""Leases of the shared limiter's slots and tickets, renewed by one heartbeat thread per
process while their request is in flight or waiting: a SIGKILLed worker's leases end with it,
within one lease."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

from django.db import close_old_connections, connection, transaction

from image_ranking import dbclock
from image_ranking.models import RateLimitSlot, RateLimitTicket

logger = logging.getLogger(__name__)

LEASE_SECONDS = 10.0  # slots and tickets; a dead worker's lease ends within this
BEATS_PER_LEASE = 5  # heartbeats per lease: four may fail (a busy database) before it ends


class LeaseKeeper:
    """One daemon thread per process renewing the leases of its slots and tickets.

    Why a thread: the renewal must not depend on how fast a body arrives or how long a waiter
    sleeps; it runs beside the request and dies with the process, which is exactly when its
    leases should end. All of a process's leases are renewed in one short transaction.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, float] = {}  # holder -> lease seconds
        self._tickets: dict[int, float] = {}  # ticket id -> lease seconds
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._wake = threading.Event()  # a new lease: re-compute the beat (no renewal)

    def add_slot(self, holder: str, lease: float) -> None:
        with self._lock:
            self._slots[holder] = lease
            self._start()
        self._wake.set()

    def drop_slot(self, holder: str) -> None:
        with self._lock:
            self._slots.pop(holder, None)

    def add_ticket(self, ticket: int, lease: float) -> None:
        with self._lock:
            self._tickets[ticket] = lease
            self._start()
        self._wake.set()

    def drop_ticket(self, ticket: int) -> None:
        with self._lock:
            self._tickets.pop(ticket, None)

    def _start(self) -> None:
        """Start the thread (again after a fork: threads do not survive one)."""
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="ratelimit-leases", daemon=True)
        self._thread.start()

    def _beat(self) -> float:
        with self._lock:
            leases = [*self._slots.values(), *self._tickets.values()]
        return max(0.05, min(leases, default=LEASE_SECONDS) / BEATS_PER_LEASE)

    def _run(self) -> None:
        last = time.monotonic()
        while True:
            due = last + self._beat()  # a shorter lease added meanwhile brings it forward
            now = time.monotonic()
            if now < due:
                self._wake.wait(due - now)
                self._wake.clear()
                continue
            last = now
            try:
                self.renew()
            except Exception as exc:  # never let the heartbeat die; the next beat tries again
                with self._lock:
                    pending = bool(self._slots or self._tickets)
                if pending:  # else the leases ended meanwhile: nothing was lost
                    logger.warning("rate limit heartbeat failed: %s", exc)
                with contextlib.suppress(Exception):
                    connection.close()

    def renew(self) -> None:
        with self._lock:
            slots, tickets = dict(self._slots), dict(self._tickets)
        if not slots and not tickets:
            return
        close_old_connections()
        with transaction.atomic():
            now = dbclock.epoch()
            renewed = 0
            for lease in set(slots.values()):
                holders = [h for h, seconds in slots.items() if seconds == lease]
                renewed += RateLimitSlot.objects.filter(holder__in=holders).update(
                    expires_at=now + lease
                )
            for lease in set(tickets.values()):
                ids = [t for t, seconds in tickets.items() if seconds == lease]
                RateLimitTicket.objects.filter(pk__in=ids).update(expires_at=now + lease)
        if renewed < len(slots):
            with self._lock:
                lost = [h for h in slots if h in self._slots]
            if len(lost) > renewed:
                logger.warning("rate limit: a slot lease ran out while its request was open")


keeper = LeaseKeeper()
