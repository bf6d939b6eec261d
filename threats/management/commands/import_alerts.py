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

from django.core.management.base import BaseCommand, CommandError

from agents.tasks import analysis_inline
from threats import ingest
from threats.importers import FORMATS, detect_format

ERRORS_LISTED = 50
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
        self.format, self.results, started = format, [], time.monotonic()
        with stream, analysis_inline():
            for records in self._batches(stream, batch_size):
                self._import(records, default_customer, file)
        self.progress.show(self.results, force=True)
        self.progress.done()
        self._summary(file, time.monotonic() - started)
        errors = sum(1 for r in self.results if r.status == "error")
        if errors:
            raise CommandError(f"{errors} alert(s) could not be imported (listed above).", returncode=1)

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
        first = stream.readline()
        while first and not first.strip():
            first = stream.readline()
        if first and not _is_json_line(first):
            yield from self._document(first + stream.read(), batch_size)
            return
        lines, number, index = [first] if first else [], 1, 0
        for line in stream:
            lines.append(line)
            if len(lines) >= batch_size:
                records = ingest.ndjson_records(lines, first_line=number, first_index=index)
                self.progress.advance(sum(map(len, lines)))
                yield records
                number, index, lines = number + len(lines), index + len(records), []
        if lines:
            self.progress.advance(sum(map(len, lines)))
            yield ingest.ndjson_records(lines, first_line=number, first_index=index)

    def _document(self, body, batch_size):
        try:
            records = ingest.document_records(json.loads(body))
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
        self.results += ingest.ingest(self.format, records, actor_label=f"import_alerts {os.path.basename(file)}"[:150],
                                      default_customer=default_customer)
        self.progress.show(self.results)

    def _customer(self, name):
        found = ingest.CustomerResolver().find(name)
        if found is None:
            from threats.models import Customer

            known = ", ".join(Customer.objects.values_list("slug", flat=True))
            raise CommandError(f"Unknown customer {name!r}. Known: {known or 'none'}.")
        return found

    def _summary(self, file, seconds):
        counts = ingest.summary(self.results)
        heads = sum(1 for r in self.results if r.status == "created" and r.group_head)
        rate = len(self.results) / seconds if seconds else 0
        self.stdout.write(
            f"{os.path.basename(file)} ({self.format or 'unknown format'}): {len(self.results)} alert(s) "
            f"in {seconds:.1f} s ({rate:,.0f}/s)\n"
            f"  imported    {counts['created']:>8}  ({heads} group heads analysed, "
            f"{counts['created'] - heads} joined a group)\n"
            f"  duplicates  {counts['duplicates']:>8}\n"
            f"  skipped     {counts['skipped']:>8}\n"
            f"  errors      {counts['errors']:>8}"
        )
        skipped = Counter(r.detail for r in self.results if r.status == "skipped")
        for reason, count in skipped.most_common():
            self.stdout.write(f"  skipped: {reason} ({count})")
        errors = [r for r in self.results if r.status == "error"]
        for result in errors[:ERRORS_LISTED]:
            where = f"line {result.line}" if result.line else f"item {result.index}"
            self.stdout.write(f"  error at {where}: {result.field}: {result.detail}")
        if len(errors) > ERRORS_LISTED:
            self.stdout.write(f"  ... and {len(errors) - ERRORS_LISTED} more error(s)")


def _is_json_line(line):
    """True when the first line is a whole JSON value (NDJSON); false for a pretty-printed document."""
    try:
        json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return False
    return True


class Progress:
    """A plain progress line on stderr: a bar with \\r on a terminal, a line per 10 % otherwise."""

    def __init__(self, out, total):
        self.out, self.total = out, total
        self.read, self.shown_at, self.last_tenth, self.last_line = 0, 0.0, -1, ""
        self.tty = hasattr(out, "isatty") and out.isatty()

    def advance(self, count):
        self.read += count

    def show(self, results, force=False):
        now = time.monotonic()
        if not force and now - self.shown_at < PROGRESS_EVERY_SECONDS:
            return
        self.shown_at = now
        fraction = min(1.0, self.read / self.total) if self.total else None
        line = f"{len(results):,} alerts"
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
