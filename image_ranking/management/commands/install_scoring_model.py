"""`python manage.py install_scoring_model [--model nima|laion]`: fetch, verify, convert, cache."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from image_ranking.scoring import install
from image_ranking.scoring.registry import MODEL_NAMES


class Command(BaseCommand):
    help = (
        "Install an aesthetic scoring model into SCORING_MODEL_DIR: download the pinned "
        "weights, verify their SHA-256, convert to ONNX and validate. Does nothing when the "
        "cache is already valid."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--model", choices=MODEL_NAMES, default=None)
        parser.add_argument(
            "--from-file",
            type=Path,
            help="Install from a local file instead of downloading: the NIMA .hdf5 weights, "
            "or the CLIP ViT-L/14 vision encoder .onnx for --model laion.",
        )
        parser.add_argument(
            "--head-file",
            type=Path,
            help="LAION: a local copy of sac+logos+ava1-l14-linearMSE.pth (checked by SHA-256).",
        )
        parser.add_argument(
            "--encoder-url",
            default=None,
            help="LAION: where to download the CLIP encoder ONNX (default: the setting "
            "SCORING_LAION_ENCODER_URL).",
        )
        parser.add_argument(
            "--encoder-sha256",
            default=None,
            help="LAION: the SHA-256 the encoder must have. Without it the first download's "
            "checksum is recorded and later installs must match it.",
        )
        parser.add_argument("--force", action="store_true", help="Reinstall even if valid.")

    def handle(self, *args, **options) -> None:
        name = options["model"] or settings.IMAGE_RANKING_MODEL
        root = Path(settings.SCORING_MODEL_DIR)
        verbose = options["verbosity"] > 1

        def log(message: str) -> None:
            # A source that does not answer is expected on many machines (the next source is
            # there for that): information. A wrong answer or a bad cache: a warning. Only a
            # failure of every source is an error (the CommandError below).
            if message.startswith("upstream"):
                self.stdout.write(message)
            elif message.startswith(("existing", "source failed")):
                self.stderr.write(message, style_func=self.style.WARNING)
            elif verbose:
                self.stdout.write(message)

        try:
            if name == "nima":
                report = install.install_nima(
                    root, from_file=options["from_file"], force=options["force"], log=log
                )
            elif name == "laion":
                url = options["encoder_url"] or settings.SCORING_LAION_ENCODER_URL
                report = install.install_laion(
                    root,
                    encoder_url=url,
                    encoder_sha256=options["encoder_sha256"],
                    encoder_file=options["from_file"],
                    head_file=options["head_file"],
                    force=options["force"],
                    log=log,
                )
            else:
                raise CommandError(f"unknown model {name!r}; choose one of {MODEL_NAMES}")
        except install.InstallError as exc:
            raise CommandError(f"install_scoring_model --model {name} failed: {exc}") from exc
        for note in report.notes:
            self.stdout.write(note)
        if report.installed:
            self.stdout.write(f"Installed {name} from {report.source} into {report.directory}")
        else:
            self.stdout.write(f"{name} model already installed in {report.directory}")
