"""One worker process for the multi-process limiter tests (run with `python -m`).

Configured like a real Django-Q worker, from the environment (DATABASE_URL or SQLITE_PATH,
WIKIMEDIA_API_URL, WIKIMEDIA_RATE_PER_HOUR, IMAGE_DOWNLOAD_ORIGINS): from `--start` until
`--stop` (Unix times) it searches Commons and downloads a thumbnail, over and over, and prints
one JSON line with what it did.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--start", type=float, required=True)
    parser.add_argument("--stop", type=float, required=True)
    parser.add_argument("--thumb", required=True)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "city_wiki.settings")
    import django

    django.setup()
    from image_ranking.commons.client import CommonsError, get_commons_client
    from image_ranking.commons.downloads import DownloadError, fetch_image_bytes

    client = get_commons_client()
    searches, downloads, errors = 0, 0, []
    time.sleep(max(0.0, args.start - time.time()))
    n = 0
    while time.time() < args.stop and n < 500:
        n += 1
        try:
            client.search_candidates(f"{args.name} {n}")
            searches += 1
            fetch_image_bytes(args.thumb, max_bytes=1_000_000)
            downloads += 1
        except (CommonsError, DownloadError) as exc:
            errors.append(str(exc))
    print(
        json.dumps(
            {"name": args.name, "searches": searches, "downloads": downloads, "errors": errors}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
