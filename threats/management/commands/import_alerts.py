"""Import an alert file: `manage.py import_alerts FILE [--format F] [--customer C]`.

NDJSON files (one alert per line: Wazuh alerts.json, Suricata eve.json, Elastic exports) are
streamed in batches, so their size does not matter; a file holding one JSON document (an array,
an object, an Elasticsearch `_search` answer) is read whole. Progress goes to stderr, the summary
to stdout; the exit status is 1 when any line could not be imported.
"""

import json
import os
import sys
import time
from collections import Counter

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from threats import analysis, ingest
from threats.importers import FORMATS, detect_format

ERRORS_LISTED = 50
SKIP_REASONS = 20  # distinct reasons listed; the rest are counted as "other"
PROGRESS_EVERY_SECONDS = 0.5


class Command(BaseCommand):
    help = "Import Wazuh, Suricata, Elastic (ECS) or generic alerts from a JSON or NDJSON file ('-' = stdin)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path of the alert file, or '-' for standard input.")
        parser.add_argument("--format", choices=FORMATS, help="Alert format (default: guessed from the first alert).")
        parser.add_argument("--customer", help="Customer (slug or name) for alerts that name none and whose host "
                                               "is not in INGEST_HOST_CUSTOMERS.")
        parser.add_argument("--batch-size", type=int, default=ingest.CHUNK_SIZE,
                            help=f"Alerts per transaction (default {ingest.CHUNK_SIZE}).")

    def handle(self, *args, file, format, customer, batch_size, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        default_customer = self._customer(customer) if customer else None
        stream, size = self._open(file)
        self.progress = Progress(self.stderr, size)
        self.format, self.tally, started = format, Tally(), time.monotonic()
        with stream, analysis.inline():
            for records in self._batches(stream, batch_size):
                self._import(records, default_customer, file)
        self.progress.show(self.tally.total, force=True)
        self.progress.done()
        self._summary(file, time.monotonic() - started)
        if self.tally.counts["error"]:
            raise CommandError(f"{self.tally.counts['error']} alert(s) could not be imported (listed above).",
                               returncode=1)

    # --- reading ------------------------------------------------------------------------------------

    def _open(self, path):
        if path == "-":
            return sys.stdin.buffer, None
        try:
            return open(path, "rb"), os.path.getsize(path)
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}.") from None

    def _batches(self, stream, batch_size):
        """Lists of Records: NDJSON line by line, or one whole JSON document cut into batches."""
        lines = _lines(stream, 4 * settings.INGEST_MAX_ITEM_CHARS)
        pending = []  # the lines up to the first one that is not blank
        for line in lines:
            pending.append(line)
            if line is None or line.strip():
                break
        if pending and pending[-1] is not None and pending[-1].strip() and not _is_ndjson_line(pending[-1]):
            yield from self._document(b"".join(pending) + stream.read(), batch_size)
            return
        number, index = 1, 0
        for line in lines:
            pending.append(line)
            if len(pending) >= batch_size:
                records = self._records(pending, number, index)
                yield records
                number, index, pending = number + len(pending), index + len(records), []
        if pending:
            yield self._records(pending, number, index)

    def _records(self, lines, number, index):
        self.progress.advance(sum(len(line or b"") for line in lines))
        return ingest.ndjson_records(lines, first_line=number, first_index=index)

    def _document(self, body, batch_size):
        try:
            records = ingest.document_records(ingest.loads(body))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise CommandError(f"The file is neither NDJSON nor one JSON document: {exc}.") from None
        except ingest.BodyError as exc:
            raise CommandError(exc.detail) from None
        self.progress.advance(len(body))
        for start in range(0, len(records), batch_size):
            yield records[start:start + batch_size]

    # --- importing ----------------------------------------------------------------------------------

    def _import(self, records, default_customer, file):
        if self.format is None:
            self.format = next((detect_format(r.value) for r in records if detect_format(r.value)), None)
            if self.format is None:
                raise CommandError(f"Cannot tell the format of the first alerts; pass --format ({', '.join(FORMATS)}).")
        self.tally.add(ingest.ingest(self.format, records, actor_label=f"import_alerts {os.path.basename(file)}"[:150],
                                     default_customer=default_customer))
        self.progress.show(self.tally.total)

    def _customer(self, name):
        found = ingest.CustomerResolver().find(name)
        if found is None:
            from threats.models import Customer

            known = ", ".join(Customer.objects.values_list("slug", flat=True))
            raise CommandError(f"Unknown customer {name!r}. Known: {known or 'none'}.")
        return found

    def _summary(self, file, seconds):
        tally, counts = self.tally, self.tally.counts
        rate = tally.total / seconds if seconds else 0
        self.stdout.write(
            f"{os.path.basename(file)} ({self.format or 'unknown format'}): {tally.total} alert(s) "
            f"in {seconds:.1f} s ({rate:,.0f}/s)\n"
            f"  imported    {counts['created']:>8}  ({tally.heads} group heads analysed, "
            f"{counts['created'] - tally.heads} joined a group)\n"
            f"  duplicates  {counts['duplicate']:>8}\n"
            f"  skipped     {counts['skipped']:>8}\n"
            f"  errors      {counts['error']:>8}"
        )
        for reason, count in tally.skipped.most_common():
            self.stdout.write(f"  skipped: {reason} ({count})")
        for result in tally.errors:
            where = f"line {result.line}" if result.line else f"item {result.index}"
            self.stdout.write(f"  error at {where}: {result.field}: {result.detail}")
        if counts["error"] > len(tally.errors):
            self.stdout.write(f"  ... and {counts['error'] - len(tally.errors)} more error(s)")


class Tally:
    """What the import did so far, in constant memory: a file may hold millions of alerts."""

    def __init__(self):
        self.total, self.heads, self.counts, self.skipped, self.errors = 0, 0, Counter(), Counter(), []

    def add(self, results):
        for result in results:
            self.total += 1
            self.counts[result.status] += 1
            if result.status == "created" and result.group_head:
                self.heads += 1
            elif result.status == "skipped":
                reason = result.detail if len(self.skipped) < SKIP_REASONS or result.detail in self.skipped else "other"
                self.skipped[reason] += 1
            elif result.status == "error" and len(self.errors) < ERRORS_LISTED:
                self.errors.append(result)


def _lines(stream, most):
    """The stream's lines, each read with at most `most` bytes in memory; a longer line is skipped
    and stands as None (reported as an error for its line number)."""
    while line := stream.readline(most + 1):
        if len(line) <= most or line.endswith(b"\n"):
            yield line
            continue
        while line and not line.endswith(b"\n"):
            line = stream.readline(1 << 20)
        yield None


def _is_ndjson_line(line):
    """True when the first line is one alert of NDJSON; false for a pretty-printed document, and for a
    whole array or `_search` answer on one line (a document, whose items are the alerts)."""
    try:
        value = ingest.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return False
    return not isinstance(value, list) and not (isinstance(value, dict) and isinstance(value.get("hits"), dict))


class Progress:
    """A plain progress line on stderr: a bar with \\r on a terminal, a line per 10 % otherwise."""

    def __init__(self, out, total):
        self.out, self.total = out, total
        self.read, self.shown_at, self.last_tenth, self.last_line = 0, 0.0, -1, ""
        self.tty = hasattr(out, "isatty") and out.isatty()

    def advance(self, count):
        self.read += count

    def show(self, total, force=False):
        now = time.monotonic()
        if not force and now - self.shown_at < PROGRESS_EVERY_SECONDS:
            return
        self.shown_at = now
        fraction = min(1.0, self.read / self.total) if self.total else None
        line = f"{total:,} alerts"
        if fraction is not None:
            line = f"[{'#' * int(fraction * 30):<30}] {fraction:4.0%}  {line}"
        if line == self.last_line:
            return
        self.last_line = line
        if self.tty:
            self.out.write("\r" + line, ending="")
            self.out.flush()
        elif force or fraction is None or int(fraction * 10) > self.last_tenth:
            self.last_tenth = int(fraction * 10) if fraction is not None else self.last_tenth
            self.out.write(line)

    def done(self):
        if self.tty:
            self.out.write("")
