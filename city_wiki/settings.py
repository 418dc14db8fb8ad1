"""Settings for the city_wiki project, read from the environment.

Secure by default: without `DJANGO_DEBUG=1` the app is in production mode, with every
`check --deploy` hardening on, and refuses to start without `DJANGO_SECRET_KEY`. Development
mode (`DJANGO_DEBUG=1`, which `make run`, `make test` and the test suite set) takes its key
from `var/secret-key`, made once. The other defaults are the embedded set-up: SQLite, the
Django-Q ORM broker, the NIMA model.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from city_wiki.secret_key import development_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    try:
        return float(value) if value.strip() else default
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from exc


DEBUG = env_bool("DJANGO_DEBUG", False)

# No key in the repository. Development mode shares one random key among all the checkout's
# processes (see city_wiki/secret_key.py); production must be given one.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when DEBUG is off (DJANGO_DEBUG unset or 0: "
            "production mode). For development, set DJANGO_DEBUG=1, as `make run` does."
        )
    SECRET_KEY = development_secret_key(BASE_DIR / "var" / "secret-key")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_q",
    "cities",
    "image_ranking",
    "workflow",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "city_wiki.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "city_wiki.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "city_wiki.wsgi.application"

# --- Database -------------------------------------------------------------------------------
# SQLite by default, tuned so that the web server and several Django-Q workers can share it:
# WAL lets readers run beside the writer, the busy timeout waits instead of failing, and
# IMMEDIATE transactions take the write lock up front (no "database is locked" on upgrade).
SQLITE_PATH = Path(os.environ.get("SQLITE_PATH", BASE_DIR / "db.sqlite3"))
# Read into a lowercase name, which Django never treats as a setting: DATABASE_URL carries the
# password, and an uppercase DATABASE_URL would be shown in clear on the debug page (its filter
# hides names with PASS/KEY/TOKEN..., not URLs). DATABASES' own PASSWORD is hidden.
_database_url = os.environ.get("DATABASE_URL", "")
if _database_url:
    DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=60)}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": SQLITE_PATH}}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))

# The dashboard's own login page (staff only, says so); the admin site keeps its own.
LOGIN_URL = "image_ranking:login"

# Content-Security-Policy of every response, built by django-csp (city_wiki/middleware.py adds
# each of IMAGE_DOWNLOAD_ORIGINS to img-src, since the dashboard shows candidates from Commons).
# Scripts are only the app's own static files (htmx, dashboard.js, the admin's); styles also
# allow inline style attributes, which the templates use (e.g. progress bar widths).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "img-src": [SELF, "data:"],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "frame-ancestors": [NONE],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
    }
}

# --- Production hardening (all of `check --deploy`) ------------------------------------------
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"

# X-Forwarded-Proto is a client's word unless a proxy in front of the app sets it (and
# overwrites a client's): trusted only when the deployment says so.
if env_bool("DJANGO_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Django-Q2: the ORM broker on the default database ---------------------------------------
# `retry` must exceed `timeout`, or a slow task would be handed to a second worker while the
# first still runs it.
Q_CLUSTER = {
    "name": "image_ranking",
    "orm": "default",
    "workers": env_int("Q_WORKERS", 2),
    "timeout": env_int("Q_TIMEOUT", 300),
    "retry": env_int("Q_RETRY", 360),
    "max_attempts": env_int("Q_MAX_ATTEMPTS", 3),
    # Tasks wait for the shared Commons rate limit (7.2 s each at 500/hour), so a worker
    # prefetches only a few: a large local queue would have to drain before the cluster stops.
    "queue_limit": env_int("Q_WORKERS", 2) * 2,
    "bulk": 1,
    "poll": 0.5,
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 5000,
}

# --- Image ranking (the feature's settings; see README "Configuration") ----------------------
WIKIMEDIA_API_URL = os.environ.get("WIKIMEDIA_API_URL", "https://commons.wikimedia.org/w/api.php")
WIKIMEDIA_API_TOKEN = os.environ.get("WIKIMEDIA_API_TOKEN", "")
WIKIMEDIA_RATE_PER_HOUR = env_int("WIKIMEDIA_RATE_PER_HOUR", 500)
# The most an API answer may decode to (gzip undone): a 20-hit search with 15 categories a hit
# is about 38 KB, so 4 MiB is 100 times that; a bigger answer is a fault, never read whole.
WIKIMEDIA_API_MAX_BYTES = env_int("WIKIMEDIA_API_MAX_BYTES", 4 * 1024 * 1024)
WIKIMEDIA_CONTACT = os.environ.get(
    "WIKIMEDIA_CONTACT", "https://github.com/city-wiki/poi-image-ranking; curators@example.org"
)
WIKIMEDIA_USER_AGENT = os.environ.get(
    "WIKIMEDIA_USER_AGENT", f"CityWikiImageRanking/1.0 ({WIKIMEDIA_CONTACT})"
)
IMAGE_DOWNLOAD_ORIGINS = env_list(
    "IMAGE_DOWNLOAD_ORIGINS", "https://upload.wikimedia.org,https://thumb.wikimedia.org"
)
IMAGE_RANKING_MODEL = os.environ.get("IMAGE_RANKING_MODEL", "nima")
IMAGE_RANKING_THRESHOLD = env_float("IMAGE_RANKING_THRESHOLD", 4.5)
IMAGE_RANKING_WINNER_WIDTH = env_int("IMAGE_RANKING_WINNER_WIDTH", 1280)
# 500px (a standard step), not 330: scored at 500px plus the blurred-copy check (a candidate
# far blurrier than a near-duplicate of itself), the real photo beat its dark/blurred/cropped
# copies in 12/12 POIs vs 10/12 at 330px, also with two other photos among the candidates
# (bench/blur_choice.py); the 4.5 threshold is the balanced-accuracy optimum of both scenarios.
IMAGE_RANKING_THUMB_WIDTH = env_int("IMAGE_RANKING_THUMB_WIDTH", 500)
IMAGE_RANKING_MAX_DISTANCE_KM = env_float("IMAGE_RANKING_MAX_DISTANCE_KM", 5.0)
# Hits asked for in the one search request; the 10 most relevant of them are scored (those
# whose title or categories name the POI first), so the POI's own photo at rank 11-20 counts.
IMAGE_RANKING_SEARCH_DEPTH = env_int("IMAGE_RANKING_SEARCH_DEPTH", 20)
IMAGE_RANKING_FALLBACK = env_bool("IMAGE_RANKING_FALLBACK", False)
# Size caps for downloads (bytes) and decoded images (pixels): a bigger file is refused.
IMAGE_RANKING_MAX_DOWNLOAD_BYTES = env_int("IMAGE_RANKING_MAX_DOWNLOAD_BYTES", 25 * 1024 * 1024)
IMAGE_RANKING_THUMB_MAX_BYTES = env_int("IMAGE_RANKING_THUMB_MAX_BYTES", 8 * 1024 * 1024)
IMAGE_MAX_PIXELS = env_int("IMAGE_MAX_PIXELS", 50_000_000)
SCORING_MODEL_DIR = Path(os.environ.get("SCORING_MODEL_DIR", BASE_DIR / "var" / "models"))
SCORING_THREADS = env_int("SCORING_THREADS", 0)
# The LAION predictor's CLIP ViT-L/14 image encoder (ONNX); not reachable from every machine:
# `install_scoring_model --model laion --from-file` installs it from a local copy.
SCORING_LAION_ENCODER_URL = os.environ.get(
    "SCORING_LAION_ENCODER_URL",
    "https://huggingface.co/Xenova/clip-vit-large-patch14/resolve/main/onnx/vision_model.onnx",
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "cities": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
        "image_ranking": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
        "workflow": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    },
}
