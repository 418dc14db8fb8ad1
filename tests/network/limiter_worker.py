"""One worker process for the multi-process limiter tests and bench (run with `python -m`).

Configured like a real Django-Q worker, from the environment (DATABASE_URL or SQLITE_PATH,
WIKIMEDIA_API_URL, WIKIMEDIA_RATE_PER_HOUR, IMAGE_DOWNLOAD_ORIGINS). Modes:

- `loop` (default): from `--start` until `--stop` (Unix times) search Commons and download
  `--thumb`, over and over; prints one JSON line with what it did.
- `download`: at `--start`, download `--thumb` `--count` times; prints one JSON line.
- `hold-api`: take the API slot, print `HELD`, and keep it until `--stop` (or a SIGKILL).
- `once-api`: at `--start`, wait for the API slot (at most `--max-wait` s), hold it `--hold`
  s; prints one JSON line with when it asked and when it got it.

`--lease S` sets the limiter's lease (`ratelimit.LEASE_SECONDS`). `LIMITER_CLOCK_SKEW=S` in the
environment moves this process's host clock S seconds ahead (`time.time`, `time.time_ns` and
Django's `timezone.now`), as on a host whose clock is off; `--start`/`--stop` keep using the
real clock so the processes stay in step.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import timedelta

real_time = time.time


def skew_clock(seconds: float) -> None:
    """This process's wall clock runs `seconds` ahead (behind when negative)."""
    real_ns = time.time_ns
    time.time = lambda: real_time() + seconds
    time.time_ns = lambda: real_ns() + int(seconds * 1e9)


def skew_django_clock(seconds: float) -> None:
    from django.utils import timezone

    real_now = timezone.now
    timezone.now = lambda: real_now() + timedelta(seconds=seconds)


def wait_until(epoch: float) -> None:
    time.sleep(max(0.0, epoch - real_time()))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument(
        "--mode", default="loop", choices=["loop", "download", "hold-api", "once-api"]
    )
    parser.add_argument("--start", type=float, default=0.0)
    parser.add_argument("--stop", type=float, default=0.0)
    parser.add_argument("--thumb", default="")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--hold", type=float, default=0.0)
    parser.add_argument("--max-wait", type=float, default=60.0)
    parser.add_argument("--lease", type=float, default=None)
    args = parser.parse_args()

    skew = float(os.environ.get("LIMITER_CLOCK_SKEW") or 0)
    if skew:
        skew_clock(skew)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "city_wiki.settings")
    import django

    django.setup()
    if skew:
        skew_django_clock(skew)
    from image_ranking.commons import ratelimit

    if args.lease is not None:
        ratelimit.LEASE_SECONDS = args.lease
    if args.start < 0:  # set up: say so, then take "START [STOP]" from the test (stdin)
        print("READY", flush=True)
        times = [float(t) for t in sys.stdin.readline().split()]
        args.start, args.stop = times[0], times[1] if len(times) > 1 else args.stop
    result = {"name": args.name, **MODES[args.mode](args)}
    print(json.dumps(result), flush=True)
    return 0


def loop(args: argparse.Namespace) -> dict:
    from image_ranking.commons.client import CommonsError, get_commons_client
    from image_ranking.commons.downloads import DownloadError, fetch_image_bytes

    client = get_commons_client()
    searches, downloads, errors = 0, 0, []
    wait_until(args.start)
    n = 0
    while real_time() < args.stop and n < 500:
        n += 1
        try:
            client.search_candidates(f"{args.name} {n}")
            searches += 1
            fetch_image_bytes(args.thumb, max_bytes=1_000_000)
            downloads += 1
        except (CommonsError, DownloadError) as exc:
            errors.append(str(exc))
    return {"searches": searches, "downloads": downloads, "errors": errors}


def download(args: argparse.Namespace) -> dict:
    from image_ranking.commons.downloads import DownloadError, fetch_image_bytes

    wait_until(args.start)
    sizes, errors = [], []
    for _ in range(args.count):
        try:
            sizes.append(len(fetch_image_bytes(args.thumb, max_bytes=1_000_000, timeout=60)))
        except DownloadError as exc:
            errors.append(str(exc))
    return {"sizes": sizes, "errors": errors}


def hold_api(args: argparse.Namespace) -> dict:
    from image_ranking.commons.ratelimit import api_limiter

    with api_limiter().slot(max_wait=args.max_wait):
        print("HELD", flush=True)
        wait_until(args.stop)
    return {"released": real_time()}


def once_api(args: argparse.Namespace) -> dict:
    from image_ranking.commons.ratelimit import RateLimitTimeout, api_limiter

    wait_until(args.start)
    asked = real_time()
    try:
        with api_limiter().slot(max_wait=args.max_wait):
            granted = real_time()
            time.sleep(args.hold)
    except RateLimitTimeout as exc:
        return {"asked": asked, "error": str(exc), "waited": real_time() - asked}
    return {"asked": asked, "granted": granted, "waited": granted - asked}


MODES = {"loop": loop, "download": download, "hold-api": hold_api, "once-api": once_api}


if __name__ == "__main__":
    sys.exit(main())
