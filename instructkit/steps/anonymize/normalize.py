"""Normalise text before detecting and auditing PHI, and map what is found back.

An identifier disguised by its encoding is the same identifier: a reader (or a model
trained on the text) sees ``123-45-6789`` in ``123-45\u200b-6789``, in ``&#49;&#50;&#51;-...``,
in ``one two three four five six seven eight nine`` after "SSN", in a base64 run. Detection
and the audit read the normalised text; every character of it knows the original
characters it came from (``Normalized.span``), so the anonymize stage rewrites the original
characters: the whole zero-width-laced SSN, the whole run of HTML entities. A decoded run
(base64) cannot be rewritten in place: a finding inside it covers the whole encoded run, and
the audit counts it as its kind *encoded* (``SSN (encoded)``), held to the limits of its kind.

Each transform is a named rule (``TRANSFORMS``) that states its principle; ``fired`` counts
how often each one rewrote something. Text none of them touches is returned as it is (the
same string, no map): ordinary medical text is read exactly as before.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Normalized", "normalize", "TRANSFORMS", "STAT_PREFIX", "take_stats", "remap_findings"]

#: an edit of the current text: (start, end, replacement); every character of the replacement
#: comes from the whole original span of ``text[start:end]``
Edit = tuple[int, int, str]

#: keys of an audit counter that are normalisation figures, not suspects
STAT_PREFIX = "normalised:"


@dataclass
class Normalized:
    """``text`` (normalised) of ``original``; ``starts[i]``/``ends[i]`` are the original
    offsets the normalised character ``i`` came from (``None``: nothing changed)."""

    original: str
    text: str
    starts: list[int] | None = None
    ends: list[int] | None = None
    #: transform name -> how many places it rewrote
    fired: Counter[str] = field(default_factory=Counter)
    #: (start, end, transform) of decoded runs in the normalised text (not rewritable in place)
    encoded: list[tuple[int, int, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.starts is not None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of the normalised span ``[start, end)``."""
        if self.starts is None or self.ends is None:
            return start, end
        if end <= start:
            at = self.starts[start] if start < len(self.starts) else len(self.original)
            return at, at
        return self.starts[start], self.ends[min(end, len(self.ends)) - 1]

    def encoded_in(self, start: int, end: int) -> str | None:
        """The transform of a decoded run ``[start, end)`` overlaps, if any."""
        for s, e, name in self.encoded:
            if start < e and s < end:
                return name
        return None


# -- the transforms ----------------------------------------------------------------------------
def _percent_run(text: str, ctx: "_Ctx") -> list[Edit]:
    """**percent_run**: a word holding two or more percent escapes (``%31%32%33``,
    ``ssn%3A123...``) is read as its decoded text: a URL's query is text a reader decodes.
    Escapes that do not decode to printable UTF-8 (``5%dextrose``) stay as they are, and so do
    escaped spaces (``%20``): the word, a URL, stays one word."""
    if "%" not in text:
        return []
    edits: list[Edit] = []
    for word in _PERCENT_WORD.finditer(text):
        if len(_PERCENT_ESCAPE.findall(word.group())) < 2:
            continue
        for run in _PERCENT_GROUP.finditer(word.group()):
            raw = bytes(int(h, 16) for h in run.group()[1:].split("%"))
            try:
                decoded = raw.decode("utf-8")
            except UnicodeDecodeError:
                continue
            at = word.start() + run.start()
            for c in decoded:  # each character from its own escapes
                width = 3 * len(c.encode("utf-8"))
                # a space or a control character would cut the word (a URL) in two
                if c.isprintable() and not c.isspace():
                    edits.append((at, at + width, c))
                at += width
    return edits


def _html_entities(text: str, ctx: "_Ctx") -> list[Edit]:
    """**html_entities**: a character reference (``&#49;``, ``&#x31;``, ``&amp;``) is the
    character it names: that is what a browser, a notebook or a model shows."""
    if "&" not in text:
        return []
    edits = []
    for m in _ENTITY.finditer(text):
        decoded = html.unescape(m.group())
        if decoded != m.group():
            edits.append((m.start(), m.end(), decoded))
    return edits


def _nfkc(text: str, ctx: "_Ctx") -> list[Edit]:
    """**nfkc**: Unicode compatibility forms are the characters they stand for (full-width
    ``１２３``, ``ｓｓｎ``, mathematical letters, no-break spaces, ligatures). Applied to each
    character with its combining marks, so every character keeps its own offsets. A form whose
    difference is meaning stays: superscripts, subscripts and fractions (``10⁹/L`` is not
    ``109/L``, ``½`` is not ``1⁄2``)."""
    if text.isascii() or unicodedata.is_normalized("NFKC", text):
        return []
    edits = []
    for m in _CLUSTER.finditer(text):
        cluster = m.group()
        if cluster.isascii():
            continue
        if unicodedata.decomposition(cluster[0]).startswith(_MEANINGFUL_FORMS):
            continue
        new = unicodedata.normalize("NFKC", cluster)
        if new != cluster:
            edits.append((m.start(), m.end(), new))
    return edits


def _zero_width(text: str, ctx: "_Ctx") -> list[Edit]:
    """**zero_width**: characters with no width (U+200B..U+200D, U+2060, U+FEFF) are not
    there for a reader: ``123-45\u200b-6789`` is ``123-45-6789``."""
    if text.isascii():
        return []
    return [(m.start(), m.end(), "") for m in _ZERO_WIDTH.finditer(text)]


def _soft_hyphen(text: str, ctx: "_Ctx") -> list[Edit]:
    """**soft_hyphen**: a soft hyphen (U+00AD) shows only where a line breaks: the word is
    whole (``Gon\u00adzalez``)."""
    if "\u00ad" not in text:
        return []
    return [(m.start(), m.end(), "") for m in _SOFT_HYPHEN.finditer(text)]


def _split_identifier(text: str, ctx: "_Ctx") -> list[Edit]:
    """**split_identifier**: an identifier broken by a line break or spaces is still one when
    its shape says so: digit groups of an SSN (3-2-4) or a phone number (3-3-4) joined by
    spaces or a line break (``123 45 6789``, ``123-45-\\n6789``), with no other number beside
    them on the line (a table row of values is not an identifier); a common given name that
    ends a line followed by a surname (Census list, not an English word) that starts the next
    (``Maria\\nGonzalez``)."""
    edits: list[Edit] = []
    if _NUMBER_NEAR.search(text):
        for m in _SPLIT_DIGITS.finditer(text):
            seps = [m.span("s1"), m.span("s2")]
            texts = [text[a:b] for a, b in seps]
            phone = len(m.group("g2")) == 3
            broken = any("\n" in t or "\r" in t for t in texts)
            if phone and not broken:
                continue  # phone recognizers read spaced groups themselves
            if not phone and not broken and not all(t in ("-", " ") for t in texts):
                continue
            if all(t == "-" for t in texts):
                continue  # already whole
            if _number_beside(text, m.start(), m.end()):
                continue
            edits += [(a, b, "-") for (a, b), t in zip(seps, texts) if t != "-"]
    if ctx.name_pair is not None and "\n" in text:
        for m in _NAME_BREAK.finditer(text):
            if ctx.name_pair(m.group("given"), m.group("surname")):
                edits.append((m.start("brk"), m.end("brk"), " "))
    return edits


def _spelled_digits(text: str, ctx: "_Ctx") -> list[Edit]:
    """**spelled_digits**: digits written as words are digits when they can only be a number
    read out digit by digit: a run of at least seven digit words, or of at least four after an
    identifier's cue (SSN, social, phone, MRN, record, account, member, ID ...). A hyphen
    between words stays a hyphen (``one two three - four five ...`` is ``123-45-...``)."""
    edits: list[Edit] = []
    low = text.lower()
    if len(low) != len(text):  # a character whose lower case is longer: read as written
        low, runs = text, _DIGIT_WORDS_RUN_ANY_CASE
    else:
        runs = _DIGIT_WORDS_RUN
    for m in runs.finditer(low):
        words = list(_DIGIT_WORD.finditer(m.group()))
        if len(words) < SPELLED_MIN and not (
                len(words) >= SPELLED_MIN_CUED and _DIGIT_CUE.search(text[max(0, m.start() - 40):m.start()])):
            continue
        base, prev = m.start(), None
        for w in words:
            if prev is not None and prev < w.start():
                sep = m.group()[prev:w.start()]
                edits.append((base + prev, base + w.start(), "-" if "-" in sep else ""))
            edits.append((base + w.start(), base + w.end(), _DIGITS[w.group().lower()]))
            prev = w.end()
    return edits


def _base64_run(text: str, ctx: "_Ctx") -> list[Edit]:
    """**base64_run**: a run of at least 16 characters of the base64 alphabet, not a plain
    word (it has a digit, ``+``, ``/``, ``=`` or a capital after a small letter), that decodes
    to mostly printable text is read as that text. It cannot be rewritten in place: a finding
    in it covers the whole run."""
    edits: list[Edit] = []
    for m in _BASE64.finditer(text):
        decoded = decode_base64(m.group())
        if decoded is None:
            continue
        inner = normalize(decoded, encoded=False).text
        edits.append((m.start(), m.end(), f" {inner} "))
    return edits


def decode_base64(run: str) -> str | None:
    """The text a base64 run decodes to, if it is mostly printable text, else ``None``."""
    if len(run) < BASE64_MIN or not _BASE64_NOT_WORD.search(run):
        return None
    body = run.rstrip("=")
    if len(body) % 4 == 1:
        return None
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    text = raw.decode("utf-8", errors="replace")
    if not text:
        return None
    printable = sum(1 for c in text if (c.isprintable() and c != "\ufffd") or c in "\n\t\r")
    if printable < BASE64_PRINTABLE * len(text) or sum(c.isalnum() for c in text) < 4:
        return None
    return text


#: the transforms, in the order they run (decoding first, so what a decoded run holds is
#: normalised too; base64 last: its decoded text replaces the whole run)
TRANSFORMS: dict[str, Callable[[str, "_Ctx"], list[Edit]]] = {
    "percent_run": _percent_run,
    "html_entities": _html_entities,
    "nfkc": _nfkc,
    "zero_width": _zero_width,
    "soft_hyphen": _soft_hyphen,
    "split_identifier": _split_identifier,
    "spelled_digits": _spelled_digits,
    "base64_run": _base64_run,
}
#: transforms whose rewrite cannot be mapped character by character
ENCODED = frozenset({"base64_run"})

SPELLED_MIN = 7
SPELLED_MIN_CUED = 4
BASE64_MIN = 16
BASE64_PRINTABLE = 0.9
SITE_GAP = 4

_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_PERCENT_GROUP = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
_PERCENT_WORD = re.compile(r"[^\s%]*%[0-9A-Fa-f]{2}\S*")
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
#: a character with its combining marks
_CLUSTER = re.compile(r".[\u0300-\u036f\u0483-\u0489\u0591-\u05bd\u0610-\u061a\u064b-\u065f"
                      r"\u0900-\u0903\u093a-\u094f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
                      r"\u3099\u309a]*", re.DOTALL)
#: compatibility forms that carry meaning
_MEANINGFUL_FORMS = ("<super>", "<sub>", "<fraction>")
_ZERO_WIDTH = re.compile(r"[\u200b\u200c\u200d\u2060\ufeff]+")
_SOFT_HYPHEN = re.compile(r"\u00ad+")
_SEP = r"(?:[ \t]*-?[ \t]*\r?\n[ \t]*-?[ \t]*|[ \t]*-[ \t]*|[ \t]+)"
_SPLIT_DIGITS = re.compile(rf"(?<![\w.-])\(?(?P<g1>\d{{3}})\)?(?P<s1>{_SEP})(?P<g2>\d{{2,3}})(?P<s2>{_SEP})"
                           rf"(?P<g3>\d{{4}})(?![\w-]|[.,]\d)")
_NAME_BREAK = re.compile(r"(?<![\w'\u2019-])(?P<given>[A-Z][a-z]+)(?P<brk>[ \t]*\r?\n[ \t]*)"
                         r"(?P<surname>[A-Z][a-z]+(?:-[A-Z][a-z]+)?)(?![\w'\u2019-])")
_DIGITS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
           "seven": "7", "eight": "8", "nine": "9"}
_DIGIT_WORD = re.compile(r"(?i)\b(?:zero|one|two|three|four|five|six|seven|eight|nine)\b")
_DIGIT_WORDS = (r"\b(?:zero|one|two|three|four|five|six|seven|eight|nine)"
                r"(?:(?:[ \t]*[,-][ \t]*|[ \t]+|[ \t]*\r?\n[ \t]*)"
                r"(?:zero|one|two|three|four|five|six|seven|eight|nine))+\b")
#: on lower-cased text (faster than ignoring case)
_DIGIT_WORDS_RUN = re.compile(_DIGIT_WORDS)
_DIGIT_WORDS_RUN_ANY_CASE = re.compile(_DIGIT_WORDS, re.IGNORECASE)
_DIGIT_CUE = re.compile(r"(?i)(?:\b(?:ssn|social(?:\s+security)?|phone|tel|telephone|cell|mobile|fax|pager|"
                        r"mrn|medical\s+record|record|chart|account|acct|member|policy|subscriber|"
                        r"insurance|id|identifier|number)\b|\b(?:ss|mr)\s*#|\bno\.|#)[^.\n]{0,25}$")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
_BASE64_NOT_WORD = re.compile(r"[0-9+/=]|[a-z][A-Z]")
_NUMBER_NEAR = re.compile(r"\d")


def _number_beside(text: str, start: int, end: int, reach: int = 12) -> bool:
    """Another number within ``reach`` characters of ``[start, end)`` on the same line."""
    before = text[max(0, start - reach):start].rsplit("\n", 1)[-1]
    after = text[end:end + reach].split("\n", 1)[0]
    return bool(_NUMBER_NEAR.search(before) or _NUMBER_NEAR.search(after))


# -- building the map -----------------------------------------------------------------------------
@dataclass
class _Ctx:
    name_pair: Callable[[str, str], bool] | None = None


def normalize(text: str, *, name_pair: Callable[[str, str], bool] | None = None,
              encoded: bool = True, only: Iterable[str] | None = None) -> Normalized:
    """``text`` normalised by every transform (``only``: those named), with the map back to
    its offsets. ``name_pair(given, surname)`` says whether a given name at a line's end and
    a word at the next line's start are one person's name (no name joins without it).
    ``encoded=False`` leaves base64 runs alone (used on a decoded run's own text)."""
    out = Normalized(text, text)
    if not text:
        return out
    ctx = _Ctx(name_pair)
    names = list(only) if only is not None else list(TRANSFORMS)
    cur, starts, ends = text, None, None
    for name in names:
        if name == "base64_run" and not encoded:
            continue
        edits = _clean_edits(TRANSFORMS[name](cur, ctx))
        if not edits:
            continue
        if starts is None or ends is None:
            starts, ends = list(range(len(cur))), list(range(1, len(cur) + 1))
        cur, starts, ends, regions = _apply(cur, starts, ends, edits, len(text))
        out.fired[name] += _sites(edits)
        if name in ENCODED:
            out.encoded += [(s, e, name) for s, e in regions]
    if starts is not None:
        out.text, out.starts, out.ends = cur, starts, ends
    return out


def _sites(edits: Sequence[Edit]) -> int:
    """Places rewritten: edits at most ``SITE_GAP`` characters apart are one place (the
    entities of one number, the words of one spelled number, the breaks of one SSN)."""
    n, last = 0, None
    for s, e, _ in edits:
        if last is None or s > last + SITE_GAP:
            n += 1
        last = e
    return n


def _clean_edits(edits: list[Edit]) -> list[Edit]:
    """Sorted, without overlaps (the first edit of an overlap stands)."""
    out: list[Edit] = []
    for s, e, r in sorted(edits, key=lambda x: (x[0], x[1])):
        if out and s < out[-1][1]:
            continue
        out.append((s, e, r))
    return out


def _apply(text: str, starts: list[int], ends: list[int], edits: list[Edit], n_original: int
           ) -> tuple[str, list[int], list[int], list[tuple[int, int]]]:
    parts: list[str] = []
    ns: list[int] = []
    ne: list[int] = []
    regions: list[tuple[int, int]] = []
    pos = 0
    length = 0
    for s, e, repl in edits:
        parts.append(text[pos:s])
        ns.extend(starts[pos:s])
        ne.extend(ends[pos:s])
        length += s - pos
        if repl:
            if e > s:
                a, b = starts[s], ends[e - 1]
            else:  # an insertion: it belongs where it stands
                a = starts[s] if s < len(starts) else n_original
                b = a
            parts.append(repl)
            ns.extend([a] * len(repl))
            ne.extend([b] * len(repl))
            regions.append((length, length + len(repl)))
            length += len(repl)
        pos = e
    parts.append(text[pos:])
    ns.extend(starts[pos:])
    ne.extend(ends[pos:])
    return "".join(parts), ns, ne, regions


# -- findings back on the original text ----------------------------------------------------------
def remap_findings(norm: Normalized, findings: Sequence[Any], priority: dict[str, int] | None = None,
                   ) -> list[Any]:
    """Findings on ``norm.text`` as findings on the original text: each span mapped back (a
    finding in a decoded run covers the whole run, named after the run's transform);
    findings that come to overlap are merged (the type of higher ``priority`` names the
    whole)."""
    if not norm.changed:
        return list(findings)
    from dataclasses import replace

    mapped = []
    for f in findings:
        s, e = norm.span(f.start, f.end)
        if e <= s:
            continue
        enc = norm.encoded_in(f.start, f.end)
        mapped.append(replace(f, start=s, end=e, recognizer=enc if enc else f.recognizer))
    mapped.sort(key=lambda f: (f.start, -f.end))
    rank = priority or {}
    out: list[Any] = []
    for f in mapped:
        if out and f.start < out[-1].end:
            prev = out[-1]
            keep = prev if rank.get(prev.type, 99) <= rank.get(f.type, 99) else f
            out[-1] = replace(keep, start=prev.start, end=max(prev.end, f.end),
                              score=max(prev.score, f.score))
        else:
            out.append(f)
    return out


def take_stats(counts: Counter[str]) -> Counter[str]:
    """Remove the normalisation figures (``STAT_PREFIX`` keys) from an audit counter and
    return them (without the prefix)."""
    keys = [k for k in counts if k.startswith(STAT_PREFIX)]
    return Counter({k[len(STAT_PREFIX):]: counts.pop(k) for k in keys})
