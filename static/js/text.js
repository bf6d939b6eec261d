// Text that hides itself, shown visibly escaped: bidirectional overrides, zero-width and other
// invisible characters, controls. The same rule as threats/hidden_text.py (whose docstring explains
// the class and the emoji exception); tests/fixtures/hidden_text.json is the table both are tested
// against. Untrusted text still goes in as text nodes: only the markers are elements.
(function () {
  "use strict";
  // [first, last] code points; threats/hidden_text.py HIDDEN_RANGES holds the same list.
  var HIDDEN_RANGES = [
    [0x0000, 0x0008], [0x000B, 0x001F], [0x007F, 0x009F], [0x00AD, 0x00AD], [0x034F, 0x034F],
    [0x0600, 0x0605], [0x061C, 0x061C], [0x06DD, 0x06DD], [0x070F, 0x070F], [0x0890, 0x0891],
    [0x08E2, 0x08E2], [0x115F, 0x1160], [0x17B4, 0x17B5], [0x180B, 0x180F], [0x200B, 0x200F],
    [0x2028, 0x202E], [0x2060, 0x206F], [0x3164, 0x3164], [0xD800, 0xDFFF], [0xFE00, 0xFE0F],
    [0xFEFF, 0xFEFF], [0xFFA0, 0xFFA0], [0xFFF0, 0xFFFB], [0x110BD, 0x110BD], [0x110CD, 0x110CD],
    [0x13430, 0x1343F], [0x1BCA0, 0x1BCA3], [0x1D173, 0x1D17A], [0xE0000, 0xE0FFF]
  ];
  // Pictographs a zero-width joiner or a variation selector may follow inside an emoji.
  var EMOJI_RANGES = [
    [0x00A9, 0x00A9], [0x00AE, 0x00AE], [0x203C, 0x203C], [0x2049, 0x2049], [0x2122, 0x2122],
    [0x2139, 0x2139], [0x2194, 0x2199], [0x21A9, 0x21AA], [0x231A, 0x23FF], [0x24C2, 0x24C2],
    [0x25A0, 0x27BF], [0x2934, 0x2935], [0x2B00, 0x2BFF], [0x3030, 0x3030], [0x303D, 0x303D],
    [0x3297, 0x3297], [0x3299, 0x3299], [0x1F000, 0x1FAFF]
  ];
  var ZWJ = 0x200D, VS15 = 0xFE0E, VS16 = 0xFE0F, KEYCAP = 0x20E3, CR = 0x0D, LF = 0x0A;
  var KEYCAP_BASES = "#*0123456789";
  var MAX_MARKERS = 1000;  // beyond, further hidden characters of the value show as U+FFFD
  var REPLACEMENT = "\uFFFD";
  var TITLE = "invisible or control character, shown escaped";

  function charClass(ranges) {
    return "[" + ranges.map(function (r) {
      return "\\u{" + r[0].toString(16) + "}" + (r[1] > r[0] ? "-\\u{" + r[1].toString(16) + "}" : "");
    }).join("") + "]";
  }
  // With the u flag, [\u{d800}-\u{dfff}] matches lone surrogates only, as Python sees them.
  var HIDDEN = new RegExp(charClass(HIDDEN_RANGES), "gu");
  var EMOJI = new RegExp("^" + charClass(EMOJI_RANGES) + "$", "u");

  function isEmoji(code) { return code !== undefined && EMOJI.test(String.fromCodePoint(code)); }

  function isKeycapBase(code) { return code !== undefined && KEYCAP_BASES.indexOf(String.fromCodePoint(code)) !== -1; }

  // The code point that ends just before UTF-16 index `i`.
  function before(text, i) {
    if (i <= 0) return undefined;
    var low = text.charCodeAt(i - 1);
    if (i >= 2 && low >= 0xDC00 && low <= 0xDFFF) {
      var high = text.charCodeAt(i - 2);
      if (high >= 0xD800 && high <= 0xDBFF) return text.codePointAt(i - 2);
    }
    return text.codePointAt(i - 1);
  }

  // Whether the hidden character at `i` is part of an emoji or of a CRLF (shown as it is). Every
  // character this keeps is one UTF-16 unit long.
  function kept(text, i) {
    var code = text.codePointAt(i), previous = before(text, i), next = text.codePointAt(i + 1);
    if (code === ZWJ) {
      if (previous === VS16 && i >= 2) previous = before(text, i - 1);
      return isEmoji(previous) && isEmoji(next);
    }
    if (code === VS15 || code === VS16) {
      return isEmoji(previous) || (isKeycapBase(previous) && next === KEYCAP);
    }
    return code === CR && next === LF;  // CRLF is a line break; a lone CR can overwrite a line
  }

  // The next run of one hidden character to show escaped, from UTF-16 index `from`: {start, end, code, count}.
  function nextRun(text, from) {
    for (;;) {
      HIDDEN.lastIndex = from;
      var match = HIDDEN.exec(text);
      if (!match) return null;
      var start = match.index, code = text.codePointAt(start), unit = match[0].length, end = start;
      while (end < text.length && text.codePointAt(end) === code) end += unit;
      if (kept(text, start)) start += unit;
      if (start < end) return { start: start, end: end, code: code, count: (end - start) / unit };
      from = end;
    }
  }

  function marker(code, count) {
    var hex = code.toString(16).toUpperCase();
    while (hex.length < 4) hex = "0" + hex;
    return "\u27E8U+" + hex + (count > 1 ? " \u00D7" + count : "") + "\u27E9";
  }

  // The value as ["text", ...] and ["mark", "⟨U+…⟩"] pieces, in order (hidden_text.pieces).
  function pieces(value) {
    var text = value === null || value === undefined ? "" : String(value);
    var found = [], last = 0, marks = 0, capped = false, run;
    while ((run = nextRun(text, last))) {
      if (marks === MAX_MARKERS) { capped = true; break; }
      if (run.start > last) found.push(["text", text.slice(last, run.start)]);
      found.push(["mark", marker(run.code, run.count)]);
      last = run.end;
      marks += 1;
    }
    var rest = capped ? text.slice(last).replace(HIDDEN, REPLACEMENT) : text.slice(last);
    if (rest) found.push(["text", rest]);
    return found;
  }

  // Plain text with markers: for attributes and anything else without markup.
  function plain(value) {
    return pieces(value).map(function (piece) { return piece[1]; }).join("");
  }

  // Replace `element`'s content with `value`: text nodes, and a styled span per marker (the same
  // markup as the server's |reveal filter). Returns the element.
  function fill(element, value) {
    element.textContent = "";
    pieces(value).forEach(function (piece) {
      if (piece[0] === "text") { element.appendChild(document.createTextNode(piece[1])); return; }
      var span = document.createElement("span");
      span.className = "hidden-char";
      span.title = TITLE;
      span.textContent = piece[1];
      element.appendChild(span);
    });
    return element;
  }

  window.SocText = { pieces: pieces, plain: plain, fill: fill, ranges: HIDDEN_RANGES };
})();
