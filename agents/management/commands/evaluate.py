"""Score the agents' verdicts against the labelled corpus: `manage.py evaluate` (`make eval`).

Every case runs through the real ingestion, triage and analysis paths in a throwaway database
(agents/evaluation.py); the report goes to the terminal (without its appendix) and, whole, to
--output. Progress goes to stderr. With --check the exit status is 1 when a target is missed.
"""

import logging
import subprocess
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from agents import evaluation, evaluation_report

CORPUS = Path(settings.BASE_DIR) / "eval" / "corpus"
FULL_REPORT = Path(settings.BASE_DIR) / "docs" / "evaluation.md"
PARTIAL_REPORT = Path(settings.DATA_DIR) / "evaluation.md"  # a run of part of the corpus keeps docs/ as it is


class Command(BaseCommand):
    help = "Run the labelled evaluation corpus through ingestion and the agents and score the verdicts."

    def add_arguments(self, parser):
        parser.add_argument("--corpus", default=str(CORPUS), help="Corpus folder (default eval/corpus).")
        parser.add_argument("--only", choices=evaluation.SLICES, help="Run one folder of the corpus.")
        parser.add_argument("--case", help="Run one case: its file name without .json, or <folder>/<name>.")
        parser.add_argument("--output", help="Where to write the markdown report (default docs/evaluation.md; "
                                             "var/evaluation.md with --only or --case).")
        parser.add_argument("--check", action="store_true", help="Exit with status 1 when a target is missed.")

    def handle(self, *args, corpus, only, case, output, check, **options):
        try:
            cases = evaluation.load_corpus(corpus, only=only, case=case)
        except evaluation.CorpusError as exc:
            raise CommandError(f"{len(exc.errors)} malformed case(s), nothing was run:\n{exc}") from None
        except evaluation.CaseError as exc:
            raise CommandError(str(exc)) from None
        if not cases:
            raise CommandError(f"No case in {corpus}.")
        started = time.monotonic()
        logging.disable(logging.INFO)  # one line per analysis and triage would bury the progress
        try:
            with evaluation.throwaway_database() as vendor:
                results = evaluation.run_cases(cases, progress=self.progress)
        finally:
            logging.disable(logging.NOTSET)
        run = evaluation_report.Run(timezone.now(), _commit(), vendor, time.monotonic() - started,
                                    _selection(corpus, only, case))
        self.write_report(results, run, Path(output) if output else (PARTIAL_REPORT if only or case else FULL_REPORT))
        failed = evaluation_report.failed_targets(results)
        if check and failed:
            raise CommandError(f"{len(failed)} target(s) missed: " + "; ".join(t.name for t in failed), returncode=1)

    def progress(self, done, total, case):
        line = f"[{done}/{total}] {case.name}"
        if self.stderr.isatty():
            self.stderr.write(f"\r{line:<79}", ending="" if done < total else "\n")
            self.stderr.flush()
        else:
            self.stderr.write(line)

    def write_report(self, results, run, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(evaluation_report.render(results, run), encoding="utf-8")
        self.stdout.write(evaluation_report.render(results, run, appendix=False))
        self.stdout.write(f"Report with the mismatches of every case: {path}")


def _commit():
    """The commit measured, marked when the work tree had changes."""
    try:
        found = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=10"], cwd=settings.BASE_DIR,
                               capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return found.stdout.strip() or "unknown"


def _selection(corpus, only, case):
    chosen = f"case {case}" if case else f"folder {only}" if only else "every case"
    path = Path(corpus).resolve()
    shown = path.relative_to(settings.BASE_DIR) if path.is_relative_to(settings.BASE_DIR) else path
    return f"{chosen} of {shown}"
