"""Text normalisation before any text signal: undo the cheap tricks that hide a prompt's
wording from the lexical signals in ``features.py`` while leaving it readable to the model.

The signals are English phrase rules, cue words, a word SimHash and a template hash. Each
of these is defeated by text a model reads exactly like the plain prompt: fullwidth or
mathematical letters (``ｓｔｅｐ``, ``𝐬𝐭𝐞𝐩``), Cyrillic or Greek look-alikes inside Latin words
(``ѕtер``), zero-width and other invisible format characters (``st\u200bep``), letters spaced
or dotted out (``s t e p  b y  s t e p``, ``s.t.e.p``) and combining marks piled on as noise.
``normalise`` maps all of these to the plain form, in this order:

1. NFKC (compatibility folding: fullwidth, mathematical alphanumerics, circled letters,
   ligatures, superscripts) and case folding (``str.casefold``, which every signal wanted
   anyway: they used ``lower``).
2. Removal of format characters (Unicode category Cf: zero-width space/joiners, soft hyphen,
   word joiner, BOM, bidi controls, tag characters) and variation selectors, and of the
   combining marks NFKC left uncomposed on an ASCII letter (no language writes ``p̈``;
   attackers do); then step 1 again, until nothing is removed (NFKC composes what an
   invisible character kept apart).
3. Spaced-out letters collapsed: a run of four or more single letters joined by one short
   separator (space, dot, dash, underscore, ``*``, ``·``, ``/``, ``|``) becomes words, a
   wider separator or a space being a word gap, when it spells words (more joins than gaps,
   a word of four letters or more, not a list of option labels like ``A. B. C. D.``).
4. Confusable skeletons after UTS #39, for letters only and only where they disguise Latin
   text: a look-alike (Cyrillic ``а е о р с у х і ѕ ј ԁ``, Greek ``ο α ν``, Latin ``ɡ ı`` ...)
   becomes its Latin letter in a word whose other letters are all ASCII or look-alikes
   (``ехрlаіn``), and everywhere in Latin text (at least half its letters ASCII, under a tenth
   of another script: an English prompt with look-alikes sprinkled in). Genuine Russian or
   Greek text keeps its letters: it is not Latin text, and its words hold letters with no
   Latin look-alike (``д л и б``) or no ASCII letter. In such Latin text, accented
   Latin letters are folded to their base letter too (``ëxpläin``; French and German words
   lose their accents for the signals only, as accent-insensitive search does; the
   multilingual cue lists must be written through ``normalise`` too). The table is Unicode's
   confusables.txt as the ``confusable-homoglyphs`` package ships it, reduced to characters
   whose prototype is one ASCII letter. Latin small capitals (``ᴇxᴘʟᴀɪɴ``, ``ᴛʜɪɴᴋ``: UTS #39
   gives most of them another script's prototype) become their letter everywhere, found by
   their Unicode names: no language is written in them.

A second reading, for the style signals only (``repair_words``, called by ``features``): a
word disguised by what ``normalise`` leaves (leetspeak ``3xpl41n``, a sign inside a word
``rea-son-ing``, words joined by underscores ``show_your_work``) is read as the word it spells
once its signs are dropped and its digits read as letters, if that is a word the signals look
for. Folding such words in ``normalise`` itself would change every ordinary text's numbers,
versions and code identifiers (``4th``, ``web3``, ``api_key``) for the SimHash and templates.

Pure and deterministic; the result is only ever used for signals (never stored or logged).
Plain ASCII text, most traffic, only pays for ``isascii``, ``lower`` and a search for
spaced letters in a byte translation of the text (~3 us a prompt on the dev stream; other
text ~90 us: ``benchmarks/normalise.py``).

>>> normalise("Ｅｘｐｌａｉｎ ѕtер by\u200b step, then s t e p  b y  s t e p")
'explain step by step, then step by step'
>>> normalise("Объясните решение шаг за шагом")
'объясните решение шаг за шагом'
"""
from __future__ import annotations

import json
import re
import unicodedata
from functools import lru_cache
from importlib import resources

__all__ = ["normalise", "repair_words"]

# ---- 1. invisible characters -------------------------------------------------------------


def _format_characters() -> dict[int, None]:
    """Every Cf code point (about 170), plus variation selectors (Mn, but invisible and
    meaningless to a signal). Built once at import
    by scanning the planes that hold Cf characters (the BMP, planes 1-2 and 14; a test
    checks against the whole code space): ~20 ms, and no hand list to keep in step with
    Unicode versions."""
    table = {cp: None for plane in (range(0x30000), range(0xE0000, 0xE1000)) for cp in plane
             if unicodedata.category(chr(cp)) == "Cf"}
    table.update({cp: None for cp in range(0xFE00, 0xFE10)})      # VS1-VS16
    table.update({cp: None for cp in range(0xE0100, 0xE01F0)})    # VS17-VS256
    return table


_INVISIBLE = _format_characters()


def _char_class(code_points) -> str:
    """A regex matching one of the code points: a character class of ranges. Code points past
    the BMP go in a second class behind a look-ahead: the regex engine tests the BMP part as
    one bitmap but the rest range by range, which would cost every character of a prompt."""
    points = sorted(code_points)
    bmp, astral = [cp for cp in points if cp <= 0xFFFF], [cp for cp in points if cp > 0xFFFF]
    if not astral or not bmp:
        return _ranges(points)
    return f"(?:{_ranges(bmp)}|(?=[\U00010000-\U0010ffff]){_ranges(astral)})"


def _ranges(points: list[int]) -> str:
    ranges: list[list[int]] = []
    for cp in points:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return "[" + "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
                         for a, b in ranges) + "]"


# Whether a text has any is tested on the set of its characters (built once per text, ~20 us
# for 1 kB): far faster than str.translate through a dict or a regex with a large class.
_INVISIBLE_CHARS = frozenset(map(chr, _INVISIBLE))
_INVISIBLE_RE = re.compile(_char_class(_INVISIBLE))


# ---- 2. combining marks left on an ASCII letter after NFKC ------------------------------

_MARK_RANGES = ((0x300, 0x36F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0xFE20, 0xFE2F))
_MARK_CHARS = frozenset(chr(cp) for first, last in _MARK_RANGES for cp in range(first, last + 1))
_NOISE_MARKS = re.compile(r"(?<=[A-Za-z])" + _char_class(map(ord, _MARK_CHARS)) + "+")


def _drop_noise_marks(text: str) -> str:
    # most text has no combining mark at all: one fast test for any, then the exact rule
    return text if _MARK_CHARS.isdisjoint(set(text)) else _NOISE_MARKS.sub("", text)


# ---- 3. spaced-out letters ---------------------------------------------------------------

_SEP = r"[ .\-_*·/|]{1,3}"
# Four or more isolated letters (no letter or digit touching either side), each pair joined
# by a short separator. [^\W\d_] is "a letter" in any script.
_SPACED_RUN = re.compile(r"(?<![^\W_])[^\W\d_](?:" + _SEP + r"[^\W\d_](?![^\W_])){3,}")
_SEP_TOKEN = re.compile(_SEP)
# Cheap necessary conditions for a run (its two inner letters each have a separator on both
# sides), checked before the exact pattern, whose look-behind is tried at every position
# (~30 us a prompt): a search in the text mapped to letter/separator classes (~3 us), then
# a pattern that starts on a separator, to find where.
def _letter_classes() -> bytes:
    """Latin-1 byte -> ``a`` for a letter (and ``?``, which stands for any character past
    Latin-1), a space for a separator, itself otherwise."""
    table = bytearray(range(256))
    for byte in range(256):
        if chr(byte).isalpha() or byte == ord("?"):
            table[byte] = ord("a")
        elif chr(byte) in " .-_*·/|":
            table[byte] = ord(" ")
    return bytes(table)


_LETTER_CLASSES = _letter_classes()
_CLASS_RUN_HINT = re.compile(rb" a {1,3}a ")
_RUN_HINT = re.compile(r"[ .\-_*·/|][^\W\d_][ .\-_*·/|]{1,3}[^\W\d_][ .\-_*·/|]")


def _collapse_run(match: re.Match) -> str:
    run = match.group(0)
    separators = _SEP_TOKEN.findall(run)
    # The separator between letters is the most frequent one; any other is a word gap.
    # Ties go to the shortest (word gaps are written wider: "s t e p  b y").
    inside = min(set(separators), key=lambda s: (-separators.count(s), len(s), s))
    joins = separators.count(inside)
    if joins < 3 or joins <= len(separators) - joins or \
            any(sep != inside and " " not in sep and inside not in sep for sep in separators):
        # Spelled-out words join more letters than they leave gaps ("s t e p  b y": 4 joins,
        # 1 gap), and a gap is wider or a space ("s.t.e.p b.y"); a run of initials and short
        # tokens is neither ("x_y x_y u.s. u.s.", "a-b i i x_y"): left alone.
        return run
    collapsed = _SEP_TOKEN.sub(lambda m: "" if m.group(0) == inside else " ", run)
    # and a spelled-out instruction has a word of four letters or more ("a i x_y a" has not),
    # which is not a list of option labels ("A. B. C. D.", "a/b/c/d")
    words = [word for word in collapsed.split() if word.strip(".") not in _ALPHABET]
    return collapsed if words and max(map(len, words)) >= 4 else run


_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _may_have_spaced_run(text: str) -> bool:
    # a false hint costs only time: a run is then looked for exactly
    classes = text.encode("latin-1", "replace").translate(_LETTER_CLASSES)
    return _CLASS_RUN_HINT.search(classes) is not None


def _collapse_spaced(text: str) -> str:
    if not _may_have_spaced_run(text):
        return text
    # Each pass strictly shortens the text (a run loses at least its in-word separators),
    # and a pass can leave single letters that form a run with their neighbours: repeat to
    # a fixed point, so that normalising twice changes nothing.
    while True:
        collapsed = _collapse_runs(text)
        if collapsed == text:
            return text
        text = collapsed


def _collapse_runs(text: str) -> str:
    """``_SPACED_RUN.sub(_collapse_run, text)``, with the exact pattern tried only where a
    hint is (a run's first hint is its second letter: the first is 1-3 characters before)."""
    parts, done, at = [], 0, 0
    while hint := _RUN_HINT.search(text, at):
        for start in range(max(done, hint.start() - 3), hint.start()):
            run = _SPACED_RUN.match(text, start)
            if run:
                parts += [text[done:run.start()], _collapse_run(run)]
                done = at = run.end()
                break
        else:
            at = hint.start() + 1
    return "".join(parts) + text[done:] if parts else text


# ---- 4. confusable skeletons ----------------------------------------------------------------


def _latin_skeletons() -> dict[int, str]:
    """Non-ASCII character -> the ASCII letter UTS #39 gives as its prototype (lower case),
    from the confusables.txt that ``confusable-homoglyphs`` ships as JSON. Entries whose
    prototypes are several letters (``ﬁ``: NFKC folds those) or no letter are left out.
    The skeleton runs on case-folded text, so an upper-case look-alike (Cyrillic ``Т Н В
    М К``) is entered by its case-folded form (``т н в м к``) too, unless that form has a
    prototype of its own."""
    data = json.loads(resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8"))
    table: dict[int, str] = {}
    folded: dict[int, str] = {}
    for char, homoglyphs in data.items():
        if len(char) != 1 or char.isascii():
            continue
        letters = {h["c"].lower() for h in homoglyphs if len(h["c"]) == 1 and h["c"].isascii() and h["c"].isalpha()}
        if len(letters) != 1:
            continue
        (letter,) = letters
        table[ord(char)] = letter
        lower = char.casefold()
        if len(lower) == 1 and not lower.isascii():
            folded.setdefault(ord(lower), letter)
    return _stable(folded | table)


def _small_capitals() -> dict[int, str]:
    """Latin small capitals -> their ASCII letter (``ᴇ`` -> ``e``), by their Unicode names
    (``LATIN LETTER SMALL CAPITAL E``): what "fancy text" generators write English in
    (``ᴇxᴘʟᴀɪɴ``). UTS #39 gives most of them another script's prototype (``ᴇ``: Cherokee
    ``ꭼ``), so the confusables table leaves them out, and an English prompt in small capitals
    read as no English at all."""
    prefix, table = "LATIN LETTER SMALL CAPITAL ", {}
    for cp in (*range(0x250, 0x2B0), *range(0x1D00, 0x1D80), *range(0xA720, 0xA800)):
        name = unicodedata.name(chr(cp), "")
        if name.startswith(prefix) and len(name) == len(prefix) + 1 and name[-1].isalpha():
            table[cp] = name[-1].lower()
    return _stable(table)


def _stable(table: dict[int, str]) -> dict[int, str]:
    """The entries that can occur in NFKC-folded, case-folded text (where the tables are
    used): fullwidth or mathematical letters and upper case are folded before. Small tables
    keep the character-class regexes below fast."""
    return {cp: to for cp, to in table.items() if _fold(chr(cp)) == chr(cp)}


def _fold(text: str) -> str:
    """NFKC, case-folded (``casefold`` may decompose: ``ẗ`` -> ``t`` + U+0308, which NFKC composes again)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return folded if unicodedata.is_normalized("NFKC", folded) else unicodedata.normalize("NFKC", folded)


_SKELETON = _latin_skeletons()
# Mapped wherever they are, not only in Latin text: no script is written in small capitals, so
# a word of them alone (``ᴛʜɪɴᴋ``) is English in disguise, where a word of Cyrillic look-alikes
# alone may be Russian. (IPA writes a few, ``[ʀ]``: read as letters by the signals only.)
_SMALL_CAPITALS = _small_capitals()
_SMALL_CAPITAL_CHARS = frozenset(map(chr, _SMALL_CAPITALS))
_LOOKALIKES = frozenset(map(chr, _SKELETON))
# Latin text, where every word of look-alikes is disguised Latin: at least half its letters
# ASCII (or accented Latin) and under a tenth genuinely of another script (neither a
# look-alike nor accented Latin). Short Russian lines are all look-alikes but for a letter
# or two ("Кто автор романа?"): the ASCII share keeps them Russian. A text that only turns
# Latin once its mixed words are mapped is decided again (see ``_skeleton``).
_LATIN_SHARE = 0.5
_FOREIGN_SCRIPT_SHARE = 0.1
_WORD_RUN = re.compile(r"[^\W\d_]+")


def _accent_folds() -> dict[int, str]:
    """Accented Latin letter -> its ASCII base letter (``é`` -> ``e``), for every Latin
    letter whose canonical decomposition is an ASCII letter and combining marks."""
    table = {}
    for cp in (*range(0xC0, 0x250), *range(0x1E00, 0x1F00)):
        parts = unicodedata.normalize("NFD", chr(cp))
        if len(parts) > 1 and parts[0].isascii() and parts[0].isalpha() and \
                all(unicodedata.combining(mark) for mark in parts[1:]):
            table[cp] = parts[0].lower()
    return _stable(table)


_ACCENT_FOLD = _accent_folds()
_LATIN_FOLD = {**_ACCENT_FOLD, **_SKELETON}  # disjoint: UTS #39 gives accented letters no ASCII prototype


def _is_lookalike_word(word: str) -> bool:
    """ASCII letters and look-alikes, nothing else (``ехрlаіn``)."""
    has_ascii = has_lookalike = False
    for ch in word:
        if ch in _LOOKALIKES:
            has_lookalike = True
        elif ch.isascii():
            has_ascii = True
        else:
            return False  # a genuine letter of another script (or an accented one): leave the word
    return has_lookalike and has_ascii


_FOLDABLE = frozenset(map(chr, _LATIN_FOLD))
_NOT_ASCII_LETTERS = bytes(b for b in range(128) if not chr(b).isalpha())
_ACCENTED = frozenset(map(chr, _ACCENT_FOLD))
# a word of ASCII letters and look-alikes (what _is_lookalike_word then checks)
_LATINISH_WORD = re.compile(r"(?<![^\W\d_])(?:[A-Za-z]|" + _char_class(_SKELETON) + r")+(?![^\W\d_])")


def _skeleton(text: str) -> str:
    """Look-alikes (and accents) mapped; called only on text that has one (CJK, Korean and
    most Arabic text never pay for this)."""
    # Each pass only maps letters to ASCII, which can only turn the text Latin: repeat until
    # nothing changes (at most a few passes), so that normalising twice changes nothing.
    while True:
        # a mark that sat on a mapped letter now sits on an ASCII one: noise, as in step 2
        mapped = _drop_noise_marks(_skeleton_pass(text))
        if mapped == text:
            return text
        if mapped.isascii() or _FOLDABLE.isdisjoint(mapped):
            # nothing left to map: another pass would return it unchanged (dropping the marks
            # is idempotent), so it is not made (accented Latin text: one pass, not two)
            return mapped
        text = mapped


def _skeleton_pass(text: str) -> str:
    # Letters counted without a Python loop over the text: the ASCII ones in C, each distinct
    # other letter by str.count (a few dozen at most; Counter(text) cost ~0.1 ms a prompt).
    letters = latin = len(text.encode("ascii", "ignore").translate(None, _NOT_ASCII_LETTERS))
    lookalike = 0
    for ch in set(text):
        if not ch.isascii() and ch.isalpha():
            count = text.count(ch)
            letters += count
            if ch in _ACCENTED:
                latin += count
            elif ch in _LOOKALIKES:
                lookalike += count
    foreign = letters - latin - lookalike
    if latin < _LATIN_SHARE * letters or foreign >= _FOREIGN_SCRIPT_SHARE * letters:
        # Another script (Russian, Greek, CJK, Arabic ...): only words that mix ASCII
        # letters with look-alikes (and nothing else) are disguised Latin.
        return _LATINISH_WORD.sub(lambda m: m.group(0).translate(_SKELETON) if _is_lookalike_word(m.group(0))
                                  else m.group(0), text)
    # Latin text: accents are folded too ("ëxpläin" is noise that composes; French or German
    # words lose their accents for the signals only, as accent-insensitive search does), and
    # every look-alike is mapped.
    return _FOLDABLE_RE.sub(_fold_letter, text)


# (a regex finds the few letters to fold ~10x faster than str.translate walks the text)
_FOLDABLE_RE = re.compile(_char_class(_LATIN_FOLD))


def _fold_letter(match: re.Match) -> str:
    return _LATIN_FOLD[ord(match.group(0))]


# ---- 5. leetspeak and signs inside words (a second reading, for the style signals) -----------

# What a disguised letter may stand for. A digit or sign is read as a letter only inside a word
# that then spells a word of the caller's vocabulary (``repair_words``): ordinary text keeps
# its numbers, ordinals ("4th"), versions ("web3") and names ("h2o") as they are.
_LEET_LETTERS = {"0": "o", "1": "il", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
                 "@": "a", "$": "s", "|": "li"}  # (not "!": it ends sentences, and it hinted at every one)
_INNER_SIGNS = "-.*_~^+\u00b7"  # (no apostrophe: contractions are words)
_INNER_SIGN_RE = re.compile("[" + re.escape(_INNER_SIGNS) + "]")


def _disguise_classes() -> bytes:
    """Latin-1 byte -> ``a`` for an ASCII letter, ``1`` for a disguise, ``-`` for an inner sign,
    a space otherwise."""
    table = bytearray(b" " * 256)
    for byte in range(256):
        char = chr(byte)
        if "a" <= char <= "z":
            table[byte] = ord("a")
        elif char in _LEET_LETTERS:
            table[byte] = ord("1")
        elif char in _INNER_SIGNS:
            table[byte] = ord("-")
    return bytes(table)


_DISGUISE_CLASSES = _disguise_classes()
# Where a word may be disguised, in the text mapped to those classes (one byte a character,
# words apart by spaces): a disguise beside a letter, or a sign between letters. Found with
# ``bytes.find`` (~1 us a pattern over a prompt's zones; a regex of the three took ~7, and a
# Python loop over every word ~30); Python sees only the few words found.
_HINTS = (b"a1", b"1a", b"a-a")
_MAX_READINGS = 64  # readings of one word tried at most (each ambiguous disguise doubles them)


def repair_words(text: str, vocabulary: frozenset) -> str | None:
    """``text`` (normalised) with each disguised word that spells a word of ``vocabulary`` once
    read plainly put back as that word, or None when no word was repaired. A second reading
    for lexical signals, never a replacement of ``normalise``: the cheap tricks it leaves
    (leetspeak ``3xpl41n y0ur r3as0n1ng``, a sign inside words ``rea-son-ing st.ep``, words
    joined by underscores ``show_your_work``) are read as the words they stand for when those
    are words the signals look for, and nothing else changes.

    >>> vocabulary = frozenset({"explain", "your", "reasoning", "step", "final", "show", "work"})
    >>> repair_words("3xpl41n y0ur r3as0n1ng st-ep by st.ep, then the f1na1 one", vocabulary)
    'explain your reasoning step by step, then the final one'
    >>> repair_words("show_your_work on the 4th of july, web3 and well-known h2o", vocabulary)
    'show your work on the 4th of july, web3 and well-known h2o'
    >>> repair_words("nothing disguised here.", vocabulary) is None
    True
    """
    classes = text.encode("latin-1", "replace").translate(_DISGUISE_CLASSES)
    ends = len(classes)
    starts = set()  # the words where a hint is, by where each starts
    for hint in _HINTS:
        at = classes.find(hint)
        while at >= 0:
            starts.add(classes.rfind(b" ", 0, at) + 1)
            at = classes.find(hint, classes.find(b" ", at) + 1 or ends)  # (on from the next word)
    parts, done = [], 0
    for start in sorted(starts):
        end = classes.find(b" ", start)
        word = text[start:end if end >= 0 else ends].strip(_INNER_SIGNS)  # (a sign inside a word only)
        known = _REPAIRED.get((word, vocabulary), _UNSEEN)
        if known is _UNSEEN:
            if len(_REPAIRED) >= _REPAIRED_MAX:
                _REPAIRED.clear()
            known = _REPAIRED[word, vocabulary] = _repair_word(word, vocabulary)
        if known is not None:
            start = text.index(word, start)
            parts += [text[done:start], known]
            done = start + len(word)
    return "".join(parts) + text[done:] if parts else None


# Word -> its repair (or None), per vocabulary: compounds and names recur ("step-by-step",
# "api_key"). Bounded: cleared when full, which only costs time.
_REPAIRED: dict[tuple[str, frozenset], str | None] = {}
_REPAIRED_MAX = 1 << 14
_UNSEEN = object()


def _repair_word(word: str, vocabulary: frozenset) -> str | None:
    """The vocabulary word(s) a disguised word stands for, or None."""
    bare = word.translate(_NO_INNER_SIGNS)
    if bare in vocabulary:
        return bare  # (st-ep, expl*ain)
    if not bare.isalpha():
        reading = _leet_reading(bare, vocabulary)
        if reading is not None:
            return reading  # (3xpl41n, r3@s0n1ng, st.3p)
    # Words joined by underscores (show_your_work): read one by one, one of the vocabulary
    # among them will do. Not words joined by hyphens: those are compounds ("step-by-step",
    # "chain-of-thought": the phrase rules hold them as they are), read again for nothing.
    if "_" not in word:
        return None
    pieces = word.split("_")
    plain = [piece if piece in vocabulary else _leet_reading(piece.translate(_NO_INNER_SIGNS), vocabulary)
             for piece in pieces]
    if len(pieces) > 1 and any(plain):
        return " ".join(reading or piece for reading, piece in zip(plain, pieces))
    return None


_NO_INNER_SIGNS = str.maketrans("", "", _INNER_SIGNS)


def _leet_reading(word: str, vocabulary: frozenset) -> str | None:
    """The vocabulary word ``word`` spells with its disguises read as letters, or None."""
    if word.isalpha() or word.isdigit() or not word:
        return None  # a plain word (not in the vocabulary), or a number
    readings = [""]
    for ch in word:
        options = _LEET_LETTERS.get(ch, ch)
        if len(readings) * len(options) > _MAX_READINGS or not options.isalpha():
            return None
        readings = [reading + option for reading in readings for option in options]
    return next((reading for reading in readings if reading in vocabulary), None)


# ---- the normaliser ---------------------------------------------------------------------------


def normalise(text: str) -> str:
    """``text`` as the text signals should read it (see the module doc): invisible
    characters removed, compatibility- and case-folded, spaced-out letters collapsed,
    Latin look-alikes (and, in Latin text, accented letters) mapped to ASCII. Idempotent;
    never raises on a ``str`` (lone surrogates pass through unchanged)."""
    last_text, last_result = _last[0]
    if text is last_text:  # the same prompt again, for the next signal of the same event
        return last_result
    result = _normalised(text)
    _last[0] = text, result  # (one tuple: a reader in another thread sees a pair, never half of one)
    return result


# The last text normalised, with its result. Several signals of one event normalise the same
# prompt object (``featurize`` the whole prompt, the cluster's tail frame its last 800
# characters, which for most prompts is the same ``str``): the second call is free. Compared
# by identity, never by content: a cheap exact test, and nothing is kept past the next call.
_last: list[tuple] = [(None, None)]


def _normalised(text: str) -> str:
    if text.isascii():
        # ASCII is NFKC-stable and has no format characters or look-alikes; only spacing tricks.
        lower = text.lower()
        return _collapse_spaced(lower)
    if len(text) <= _CACHED_CHARS:
        return _normalise_short(text)
    return _normalise_unicode(text)


def _normalise_unicode(text: str) -> str:
    text = _fold(text)
    # Removing characters can let NFKC compose anew (across a zero-width space, say): fold
    # again until nothing is removed
    # (normalising twice must change nothing). One set of the text's characters serves
    # every membership test (building it: ~25 us for 1 kB; each test on it: nothing).
    for _ in range(4):
        chars = set(text)
        cleaned = text
        if not _SMALL_CAPITAL_CHARS.isdisjoint(chars):
            # (before the marks: one piled on a small capital is noise on an ASCII letter now)
            cleaned = cleaned.translate(_SMALL_CAPITALS)
        if not _INVISIBLE_CHARS.isdisjoint(chars):
            cleaned = _INVISIBLE_RE.sub("", cleaned)
        if not _MARK_CHARS.isdisjoint(chars):
            cleaned = _NOISE_MARKS.sub("", cleaned)
        if cleaned == text:
            break
        text = _fold(cleaned)
    text = _collapse_spaced(text)
    if _FOLDABLE.isdisjoint(chars):
        return text
    # Mapping can turn a letter with marks into a single ASCII one ("a_ą̀_a_a" -> "a_a_a_a"),
    # which makes a spaced-out run where there was none: collapse again, or normalising twice
    # would change the text (hypothesis found it: "A_Ą̀_A_A").
    skeleton = _skeleton(text)
    return skeleton if skeleton == text else _collapse_spaced(skeleton)


# The same system prompt or app wrapper arrives with many requests: short texts are cached
# (bounded: 1024 entries of at most 1000 characters, key and value: under 8 MB even at 4
# bytes a character).
_CACHED_CHARS = 1000
_normalise_short = lru_cache(maxsize=1024)(_normalise_unicode)
