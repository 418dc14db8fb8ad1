"""The shared limiter in one process: what a wait says, that waiting reads instead of writing,
that a held slot's lease is renewed, and that times come from the database's clock."""

from __future__ import annotations

import time
from contextlib import contextmanager

import pytest
from django.db import connection

from image_ranking.commons import budget
from image_ranking.commons.ratelimit import RateLimitTimeout
from image_ranking.commons.ratelimit.leases import keeper
from image_ranking.commons.ratelimit.shared import SharedLimiter
from image_ranking.commons.ratelimit.verdict import LimiterConfig
from image_ranking.dbclock import epoch as database_time
from image_ranking.models import RateLimitSlot, RateLimitTicket

pytestmark = pytest.mark.django_db(transaction=True)


def limiter(per_hour: float = 0, burst: int = 1, concurrency: int = 1, lease: float = 10.0):
    made = SharedLimiter(LimiterConfig("test_api", per_hour, burst, concurrency, lease))
    made._ensure_rows()
    return made


def take_as_another_worker(made: SharedLimiter, holder: str = "otherhost:4242:1:abc") -> None:
    """A slot taken by another process (no heartbeat here: it lives for one lease)."""
    assert made._attempt(holder, None)[0].wait == 0


@contextmanager
def counting_statements():
    counts = {"write": 0, "read": 0}

    def count(execute, sql, params, many, context):
        verb = sql.lstrip().split(None, 1)[0].upper()
        counts["write" if verb in {"INSERT", "UPDATE", "DELETE"} else "read"] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        yield counts


def test_the_database_clock_is_sub_second_and_close_to_this_hosts():
    first = database_time()
    time.sleep(0.05)
    second = database_time()
    assert 0.03 < second - first < 1.0  # not CURRENT_TIMESTAMP's whole seconds
    assert abs(first - time.time()) < 5


def test_a_long_retry_after_says_so():
    made = limiter()
    made.block_for(40)
    with pytest.raises(RateLimitTimeout) as error, made.slot(max_wait=5):
        pass
    assert "would wait 40 s for Retry-After from Commons" in str(error.value)
    assert error.value.bucket == "test_api" and error.value.wait == pytest.approx(40, abs=1)


def test_block_until_takes_this_hosts_epoch_as_a_duration():
    made = limiter()
    made.block_until(time.time() + 0.6)
    started = time.monotonic()
    with made.slot(max_wait=5):
        assert 0.5 <= time.monotonic() - started < 1.5


def test_waiting_for_the_next_token_says_so():
    made = limiter(per_hour=500, burst=1)
    with made.slot(max_wait=1):
        pass
    with pytest.raises(RateLimitTimeout) as error, made.slot(max_wait=2):
        pass
    assert "would wait 7.2 s for the next test_api token" in str(error.value)


def test_waiting_for_a_held_slot_names_its_holder_and_never_says_0_s():
    made = limiter()
    take_as_another_worker(made)
    started = time.monotonic()
    with pytest.raises(RateLimitTimeout) as error, made.slot(max_wait=0.3):
        pass
    assert time.monotonic() - started == pytest.approx(0.3, abs=0.2)
    message = str(error.value)
    assert "waited 0.3 s for the test_api slot held by otherhost:4242" in message
    assert " 0 s" not in message
    assert RateLimitTicket.objects.count() == 0  # the given-up waiter left the queue


def test_a_slot_wait_cut_by_the_budget_says_what_it_waited_for():
    made = limiter()
    take_as_another_worker(made)
    budgeted = budget.time_budget(0.3)
    with budgeted, pytest.raises(budget.BudgetExhausted) as error, made.slot(max_wait=60):
        pass
    message = str(error.value)
    assert "held by otherhost:4242" in message and "time budget" in message


def test_a_waiter_reads_while_it_waits_and_writes_only_its_ticket():
    made = limiter()
    take_as_another_worker(made)
    with counting_statements() as counts, pytest.raises(RateLimitTimeout), made.slot(max_wait=1):
        pass
    # The old limiter ran a write transaction every 50 ms (about 20 in this second).
    assert counts["write"] <= 2  # the ticket, and its removal on giving up
    assert counts["read"] >= 5  # it did look, about every 0.1 s


def read_slot() -> RateLimitSlot:
    """The test database is SQLite in memory (shared cache), where a read fails at once with
    "table is locked" while the heartbeat thread writes; a file database would wait."""
    from django.db import OperationalError

    deadline = time.monotonic() + 5
    while True:
        try:
            return RateLimitSlot.objects.get(bucket="test_api", index=0)
        except OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def test_the_lease_of_a_held_slot_is_renewed_while_the_request_is_open():
    made = limiter(lease=0.5)
    with made.slot():
        first = read_slot().expires_at
        time.sleep(1.2)  # more than two leases
        slot = read_slot()
        assert slot.holder  # still ours
        assert slot.expires_at > first + 0.5
        assert slot.expires_at > database_time()
    assert read_slot().holder == ""


def test_once_a_request_that_waited_is_done_the_heartbeat_writes_nothing_more():
    """A waiter's ticket is renewed while it waits, and only then: before the fix, a granted
    waiter's ticket stayed with the heartbeat, which wrote for it every beat for ever (a
    growing UPDATE in every worker that ever waited)."""
    made = limiter(per_hour=36_000, burst=1)  # one at once, then one every 0.1 s
    for _ in range(3):  # the second and third wait for a token
        with made.slot(max_wait=5):
            pass
    assert not keeper._tickets and not keeper._slots
    with counting_statements() as counts:
        keeper.renew()
    assert counts == {"write": 0, "read": 0}
    assert not RateLimitTicket.objects.exists()
