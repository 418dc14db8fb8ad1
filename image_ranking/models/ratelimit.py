"""The rate limiter's tables: shared by every process and host (commons/ratelimit)."""

from __future__ import annotations

from django.db import models


class RateLimitBucket(models.Model):
    """A token bucket shared by all processes.

    Times are Unix epoch seconds on the DATABASE's clock (`dbclock.epoch()`), never a
    worker host's, so hosts with skewed clocks still agree on refills and blocks.
    """

    name = models.CharField(max_length=50, primary_key=True)
    tokens = models.FloatField(default=0)
    refilled_at = models.FloatField(default=0)
    blocked_until = models.FloatField(default=0, help_text="Set from a 429's Retry-After.")

    def __str__(self) -> str:
        return self.name


class RateLimitSlot(models.Model):
    """One of a bucket's concurrent-request slots, leased until `expires_at` (database clock).

    The lease is short and renewed by its holder's heartbeat while the request is in flight,
    so a killed worker's slot frees itself within seconds and a slow live one keeps it.
    """

    bucket = models.CharField(max_length=50)
    index = models.PositiveSmallIntegerField()
    holder = models.CharField(max_length=100, blank=True, default="")
    expires_at = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["bucket", "index"], name="unique_slot_per_bucket")
        ]

    def __str__(self) -> str:
        return f"{self.bucket}[{self.index}]"


class RateLimitTicket(models.Model):
    """A worker waiting for one of a bucket's slots: waiters are served in arrival order (id).

    Like a slot, a ticket is a lease renewed by its waiter's heartbeat, so the ticket of a
    waiter that died stops holding up the queue within seconds.
    """

    bucket = models.CharField(max_length=50)
    holder = models.CharField(max_length=100)
    expires_at = models.FloatField(help_text="Database-clock epoch seconds.")

    class Meta:
        indexes = [models.Index(fields=["bucket", "expires_at"], name="ratelimit_ticket_live")]

    def __str__(self) -> str:
        return f"{self.bucket} ticket {self.pk}"
