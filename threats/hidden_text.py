"""Text that hides itself, shown visibly escaped (docs/security.md "Hidden characters").

Alert fields are attacker-controlled. A right-to-left override turns "invoice<U+202E>fdp.exe" into
what reads as "invoiceexe.pdf", zero-width characters split or smuggle words, control characters drive
terminals. Every character of the class below is therefore shown as a marker, ⟨U+202E⟩, never
rendered: in HTML as a styled span (`reveal_html`, the `reveal` template filter, admin columns), as
plain text where markup cannot go (`reveal_text`: attributes, <title>, <option>), and in JSON as a
\\uXXXX escape (`JSONEncoder`: the data stays byte-exact). static/js/text.js is the same rule for
the browser; tests/fixtures/hidden_text.json is the table both are tested against.

The class: control characters but tab and newline (Cc), format characters (Cf), line and paragraph
separators (Zl, Zp), lone surrogates (Cs) and Unicode's Default_Ignorable_Code_Point (variation
selectors, Hangul fillers, tag characters, ...). Pages keep three of them as they are: the CR of a
CRLF line break, and inside an emoji a zero-width joiner between two pictographs (woman + ZWJ +
laptop) and a variation selector 15/16 after one (heart + VS16): there they are part of one visible
glyph and can neither hide nor reorder text. JSON escapes every one (CR as \\r).
"""

import functools
import re

from django.core.serializers.json import DjangoJSONEncoder
from django.http import JsonResponse
from django.utils.html import escape
from django.utils.safestring import SafeData, mark_safe

# (first, last) code points of the class; static/js/text.js holds the same list.
HIDDEN_RANGES = [
    (0x0000, 0x0008), (0x000B, 0x001F), (0x007F, 0x009F), (0x00AD, 0x00AD), (0x034F, 0x034F),
    (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891),
    (0x08E2, 0x08E2), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F),
    (0x2028, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164), (0xD800, 0xDFFF), (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD),
    (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
]
# Pictographs a zero-width joiner or a variation selector may follow inside an emoji (a superset of
# Unicode's Extended_Pictographic that needs no data file; skin-tone modifiers are in 1F000-1FAFF).
EMOJI_RANGES = [
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122),
    (0x2139, 0x2139), (0x2194, 0x2199), (0x21A9, 0x21AA), (0x231A, 0x23FF), (0x24C2, 0x24C2),
    (0x25A0, 0x27BF), (0x2934, 0x2935), (0x2B00, 0x2BFF), (0x3030, 0x3030), (0x303D, 0x303D),
    (0x3297, 0x3297), (0x3299, 0x3299), (0x1F000, 0x1FAFF),
]
ZWJ, VS15, VS16, KEYCAP = "\u200d", "\ufe0e", "\ufe0f", "\u20e3"
KEYCAP_BASES = frozenset("#*0123456789")
# Markers per value: beyond this many, every further hidden character of the value is shown as
# U+FFFD, so a value made of a million alternating characters cannot make a page a hundred MB.
MAX_MARKERS = 1000
REPLACEMENT = "\ufffd"
TITLE = "invisible or control character, shown escaped"


def _char_class(ranges):
    return "[" + "".join(re.escape(chr(a)) + ("-" + re.escape(chr(b)) if b > a else "") for a, b in ranges) + "]"


HIDDEN = re.compile(_char_class(HIDDEN_RANGES))
EMOJI = re.compile(_char_class(EMOJI_RANGES))
# The same class split in two for a quick "any at all?": astral ranges make the one-class search
# about three times slower on text that has no astral character (most text).
HIDDEN_BMP = re.compile(_char_class([r for r in HIDDEN_RANGES if r[1] < 0x10000]))
HIDDEN_ASTRAL = re.compile(_char_class([r for r in HIDDEN_RANGES if r[0] >= 0x10000]))
ASTRAL = re.compile("[\U00010000-\U0010ffff]")


@functools.cache
def _repeated(char):
    return re.compile(re.escape(char) + "+")


def _is_emoji(char):
    return bool(char) and EMOJI.fullmatch(char) is not None


def _kept(text, i):
    """Whether the hidden character at `i` is part of an emoji or of a CRLF (and so shown as it is)."""
    char, before = text[i], text[i - 1] if i else ""
    after = text[i + 1] if i + 1 < len(text) else ""
    if char == ZWJ:
        if before == VS16 and i >= 2:
            before = text[i - 2]
        return _is_emoji(before) and _is_emoji(after)
    if char in (VS15, VS16):
        return _is_emoji(before) or (before in KEYCAP_BASES and after == KEYCAP)
    return char == "\r" and after == "\n"  # CRLF is a line break; a lone CR can overwrite a line


def runs(text):
    """(start, end) of every run of one hidden character that must be shown escaped."""
    position = 0
    while match := HIDDEN.search(text, position):
        start = match.start()
        end = position = _repeated(text[start]).match(text, start).end()
        if _kept(text, start):
            start += 1
        if start < end:
            yield start, end


def marker(char, count=1):
    """⟨U+202E⟩, or ⟨U+200B ×40⟩ for a run."""
    return f"⟨U+{ord(char):04X}{f' ×{count}' if count > 1 else ''}⟩"


def pieces(value):
    """The value as ("text", ...) and ("mark", "⟨U+…⟩") pieces, in order (text.js `pieces`)."""
    text = "" if value is None else str(value)
    found, last, marks, capped = [], 0, 0, False
    for start, end in runs(text):
        if marks == MAX_MARKERS:
            capped = True
            break
        found += [("text", text[last:start])] if start > last else []
        found.append(("mark", marker(text[start], end - start)))
        last, marks = end, marks + 1
    rest = HIDDEN.sub(REPLACEMENT, text[last:]) if capped else text[last:]
    return found + ([("text", rest)] if rest else [])


def reveal_text(value):
    """Plain text with markers: for attributes, <title>, <option> and anything else without markup."""
    return "".join(text for _kind, text in pieces(value))


def reveal_html(value):
    """Escaped HTML with each marker in a styled span. Markup that is already safe keeps its tags:
    only plain-text markers are added to it, which are safe anywhere in HTML."""
    if isinstance(value, SafeData):
        return mark_safe(reveal_text(value))
    return mark_safe("".join(escape(text) if kind == "text" else _span(text) for kind, text in pieces(value)))


def _span(text):
    return f'<span class="hidden-char" title="{TITLE}">{text}</span>'


# --- JSON -----------------------------------------------------------------------------------------


def escape_json(text):
    """JSON text with every character of the class written as a \\uXXXX escape (a surrogate pair
    outside the BMP), emoji joiners included: JSON is read by programs, which decode it back to the
    same text. Only string contents can hold such characters, and an escape means the same there."""
    if not _any_hidden(text):  # the usual answer: nothing to do
        return text
    return text.translate(JSON_ESCAPES)


def _any_hidden(text):
    if text.isascii():
        return "\x7f" in text  # json.dumps has escaped the other ASCII controls
    return bool(HIDDEN_BMP.search(text) or (ASTRAL.search(text) and HIDDEN_ASTRAL.search(text)))


def _json_escape(code):
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


JSON_ESCAPES = {code: _json_escape(code) for first, last in HIDDEN_RANGES for code in range(first, last + 1)}


class EscapeHidden:
    """A json.JSONEncoder mixin: readable UTF-8 for ordinary text, \\uXXXX for the hidden class."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, "ensure_ascii": False})

    def encode(self, o):
        return escape_json(super().encode(o))


class JSONEncoder(EscapeHidden, DjangoJSONEncoder):
    """DjangoJSONEncoder (dates, UUIDs, decimals) with hidden characters escaped."""


def json_response(data, **kwargs):
    """A JsonResponse written by `JSONEncoder` (the API's own answers go through api.Renderer)."""
    return JsonResponse(data, encoder=JSONEncoder, **kwargs)
