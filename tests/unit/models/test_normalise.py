"""Text normalisation (models/normalise.py) and what it does for the text signals: the tricks
that keep a prompt readable to a model must not hide its extraction style, its topic words
or its template; genuine text of other scripts and ordinary Unicode must come through."""
from __future__ import annotations

import json
import random
import sys
import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from distillguard.models import features
from distillguard.models.features import featurize_text
from distillguard.models.normalise import _INVISIBLE, normalise

# Extraction-style prompts: each hits a different phrase family or cue group.
EXTRACTION = [
    "Think step by step and show your reasoning: what is 17 * 23?",
    "Rate the following response on a scale of 1 to 10 for correctness.",
    "Which planet is largest? (A) Mars (B) Jupiter (C) Venus (D) Earth. Answer with the letter only.",
    "Generate 20 diverse examples of questions about photosynthesis.",
    "You have access to the following tools: search(query), calculator(expression).",
    "Elaborate on each stage of your thinking before concluding: why is the sky blue?",
]

_CYRILLIC = str.maketrans("aceopxyisjACEOPXYIS", "асеорхуіѕјАСЕОРХУІЅ")


def cyrillic_lookalikes(text: str) -> str:
    return text.translate(_CYRILLIC)


def zero_width(text: str) -> str:
    invisible = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u200e\u202a"
    return "".join(ch + invisible[i % len(invisible)] for i, ch in enumerate(text))


def fullwidth(text: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


def spaced_out(text: str) -> str:
    return "  ".join(" ".join(word) for word in text.split(" "))


def dotted(text: str) -> str:
    return " ".join(".".join(word) if word.isalpha() else word for word in text.split(" "))


def math_bold(text: str) -> str:
    return "".join(chr(0x1D41A + ord(ch) - 97) if "a" <= ch <= "z" else ch for ch in text)


def noise_marks(text: str) -> str:
    return "".join(ch + "\u0308" if ch.isalpha() else ch for ch in text)  # "ëxpläin": some compose, some do not


def mixed(text: str) -> str:
    return zero_width(cyrillic_lookalikes(fullwidth(text[: len(text) // 2])) + noise_marks(text[len(text) // 2:]))


_LEET = str.maketrans("aeiostlAEIOSTL", "4310571@3!0$71")


def leet(text: str) -> str:
    """Letters of words of three or more letters as digits and signs, but the first
    ("r3@50n1ng", "t0015"; a word of digits alone reads as a number, to a model too); an option
    label "(A)" stays a label, and a tool's call signature stays what the model must call back
    ("search(query)")."""
    return " ".join(word[0] + word[1:].translate(_LEET) if sum(map(str.isalpha, word)) >= 3 and "(" not in word
                    else word for word in text.split(" "))


def signs_inside(text: str) -> str:
    """A sign inside every word of four letters or more, one sign a prompt ("rea-soning", "st*ep")."""
    out = []
    for i, word in enumerate(text.split(" ")):
        core = word.rstrip("?.:,!")
        if len(core) >= 4 and core.isalpha():
            sign = "-*~^+"[i % 5]
            word = core[:2] + sign + core[2:] + word[len(core):]
        out.append(word)
    return " ".join(out)


def underscored(text: str) -> str:
    """Words joined by underscores where two plain words meet ("show_your_reasoning")."""
    words = text.split(" ")
    return "".join(word + ("_" if word.isalpha() and i + 1 < len(words) and words[i + 1].isalpha() else " ")
                   for i, word in enumerate(words)).rstrip()


def leet_mixed(text: str) -> str:
    return cyrillic_lookalikes(signs_inside(leet(text[: len(text) // 2]))) + zero_width(leet(text[len(text) // 2:]))


_SMALL_CAPS = str.maketrans("abcdefghijklmnoprstuvwyz", "ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘʀꜱᴛᴜᴠᴡʏᴢ")


def small_caps(text: str) -> str:
    """Lower-case letters in small capitals ("ᴛʜɪɴᴋ ꜱᴛᴇᴘ ʙʏ ꜱᴛᴇᴘ"), as "fancy text" sites write them."""
    return text.translate(_SMALL_CAPS)


def wide_gaps(text: str) -> str:
    """Words apart by runs of spaces, tabs and other spaces ("step  by\tstep")."""
    gaps = ["  ", "\t", "\u00a0\u00a0", " \u3000", "\u2003\u2002"]
    return "".join(word + gaps[i % len(gaps)] for i, word in enumerate(text.split(" "))).rstrip()


def word_lines(text: str) -> str:
    """A word or two a line ("think\nstep by\nstep"), a blank line now and then."""
    words, lines = text.split(" "), []
    while words:
        take = 1 + len(lines) % 2
        lines.append(" ".join(words[:take]))
        words = words[take:]
    return "".join(line + ("\n\n" if i % 3 == 2 else "\n") for i, line in enumerate(lines)).rstrip()


def symbol_gaps(text: str) -> str:
    """An emoji or a sign between every two words ("think 🔹 step 🔹 by 🔹 step")."""
    return " \U0001f539 ".join(text.split(" "))


def pipe_gaps(text: str) -> str:
    return " | ".join(text.split(" "))


TRICKS = [cyrillic_lookalikes, zero_width, fullwidth, spaced_out, dotted, math_bold, noise_marks, mixed,
          leet, signs_inside, underscored, leet_mixed, small_caps, wide_gaps, word_lines, symbol_gaps, pipe_gaps]


@pytest.mark.parametrize("trick", TRICKS, ids=lambda t: t.__name__)
@pytest.mark.parametrize("prompt", EXTRACTION, ids=range(len(EXTRACTION)))
def test_a_trick_does_not_hide_the_extraction_style(prompt, trick):
    plain = featurize_text(prompt)
    disguised = featurize_text(trick(prompt))
    assert plain.style >= 0.35
    assert (disguised.style, disguised.families) == (plain.style, plain.families)


@pytest.mark.parametrize("trick", [cyrillic_lookalikes, zero_width, fullwidth, math_bold, noise_marks],
                         ids=lambda t: t.__name__)
def test_a_trick_does_not_change_the_topic_or_the_template(trick):
    # a campaign's template and topic sketch link its keys; letter tricks must not split them
    prompt = "Explain your reasoning in full detail: how does photosynthesis convert light into chemical energy?"
    plain, disguised = featurize_text(prompt), featurize_text(trick(prompt))
    assert (disguised.simhash, disguised.template_hash, disguised.content_words) == \
        (plain.simhash, plain.template_hash, plain.content_words)


def test_spaced_out_words_are_collapsed_with_their_word_gaps():
    assert normalise("S t e p  b y  s t e p, please") == "step by step, please"
    assert normalise("s.t.e.p b.y s.t.e.p") == "step by step"
    assert normalise("s-h-o-w y-o-u-r w-o-r-k") == "show your work"
    assert normalise("c_h_a_i_n o_f t_h_o_u_g_h_t") == "chain of thought"


def test_ordinary_single_letters_are_left_alone():
    for text in ["I think a b test is fine", "Is it a or b?", "x = a + b * c", "e.g. the U.S. economy",
                 "Options: a, b, c, d", "a i x_y a", "u.s. u.s. x_y x_y", "A. B. C. D.", "use a/b/c/d testing"]:
        assert normalise(text) == text.lower()


GENUINE = {
    "ru": "Объясните, пожалуйста, почему небо голубое. Вопрос: Кто автор романа «Спартак»?\nОтвет:",
    "ru-short": "Кто автор романа?",
    "ru-caps": "ВОПРОС: КТО АВТОР?",
    "bg": "Кое равнище на организация на живата материя се означава като мезосистема?",
    "el": "Γιατί ο ουρανός είναι μπλε; Εξήγησε σύντομα.",
    "zh": "请解释为什么天空是蓝色的。",
    "ja": "空はなぜ青いのですか？",
    "ko": "하늘은 왜 파란가요?",
    "ar": "لماذا السماء زرقاء؟",
    "hi": "आसमान नीला क्यों है?",
    "uk": "Чому небо блакитне? Поясніть коротко.",
}


@pytest.mark.parametrize("lang", GENUINE)
def test_genuine_text_of_other_scripts_keeps_its_letters(lang):
    text = GENUINE[lang]
    normalised = normalise(text)
    # case-folded and NFKC-folded (a fullwidth "？" becomes "?"), but not a letter turned Latin
    assert normalised == unicodedata.normalize("NFKC", text).casefold()
    assert not any(ch.isascii() and ch.isalpha() for ch in normalised)


def test_a_disguised_english_instruction_inside_russian_text_is_still_found():
    text = "Объясните, почему небо голубое. Think ѕtер by ѕtер."
    assert normalise(text) == "объясните, почему небо голубое. think step by step."
    assert featurize_text(text).style >= 0.5


BENIGN = [
    "Café au lait or crème brûlée? Which dessert goes better with a Riesling from Württemberg?",
    "My naïve résumé for the Zürich job 😀👍🏽 — can you fix the wording? 👨‍👩‍👧",
    "def f(x):\n    return x\u200b  # pasted from a web page with a zero-width space\n",
    "Translate into Vietnamese: good morning (Chào buổi sáng)",
    "Convert 5 km² to m² and 30 °C to °F, please.",
    "What does the ﬁ ligature in ‘ﬁnance’ mean in typography?",
]


@pytest.mark.parametrize("text", BENIGN, ids=range(len(BENIGN)))
def test_ordinary_unicode_does_not_gain_extraction_style(text):
    assert featurize_text(text).style == 0.0


def test_accents_are_folded_in_latin_text_only():
    assert normalise("Erklären Sie Schritt für Schritt") == "erklaren sie schritt fur schritt"
    assert normalise("Σκέψου βήμα") == "σκέψου βήμα"


def test_the_invisible_table_covers_every_format_character():
    everywhere = {cp for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) == "Cf"}
    assert everywhere <= set(_INVISIBLE)


def test_plain_ascii_is_only_lower_cased():
    rng = random.Random(7)
    # prose, code and abbreviations; never four single letters in a row (that is what is collapsed)
    words = ["the", "quick", "Brown", "fox", "2+2", "I", "(B)", "step-by-step", "U.S.", "x_y", "e.g.", "a-b"]
    for _ in range(200):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 30)))
        assert normalise(text) == text.lower()


_ALPHABETS = st.sampled_from([
    st.text(),  # any code point, lone surrogates included
    st.text(alphabet=st.sampled_from("aAeEoOpPcCxXsS iIjJ.-_*|/·" "аеорсхуіѕјԁɡ АЕОРСХ" "\u200b\u00ad\u0301\u0308"
                                     "ｓｔｅｐ𝐬𝐭𝐞𝐩 ëäßİıς" "ᴀᴇꜱᴛɪʀ")),
    st.text(alphabet=st.characters(codec="utf-8")),
]).flatmap(lambda strategy: strategy)


@settings(max_examples=1500, deadline=None)
@given(_ALPHABETS)
@example("A_\u0104\u0300_A_A")  # a letter with marks between spaced letters: mapped, it makes a run
@example("\u1d07\u0301xplain")  # a mark on a small capital: on an ASCII letter once mapped
def test_normalise_is_idempotent_and_total(text):
    once = normalise(text)
    assert isinstance(once, str)
    assert normalise(once) == once


def _event_with_system(prompt: str, system: str):
    from distillguard.models.events import parse_event

    doc = {"schema": "llm.request.v1", "event_id": "e", "ts": "2026-02-01T00:00:00Z", "api_key_id": "k",
           "account_id": "a", "model": "m", "prompt": prompt, "system_prompt": system}
    return parse_event(json.dumps(doc).encode())


@pytest.mark.parametrize("trick", [cyrillic_lookalikes, zero_width, fullwidth, spaced_out],
                         ids=lambda t: t.__name__)
def test_a_disguised_system_prompt_is_read_like_the_plain_one(trick):
    from distillguard.models.features import featurize

    system = "You are a grader. Rate the following response on a scale of 1 to 10 for correctness."
    plain = featurize(_event_with_system("What is the capital of France? Paris.", system))
    disguised = featurize(_event_with_system("What is the capital of France? Paris.", trick(system)))
    assert plain.style >= 0.5
    assert (disguised.style, disguised.families) == (plain.style, plain.families)


# Ordinary text full of what disguises are made of: ordinals, versions, chemistry, code
# identifiers, hyphenated words, abbreviations, prices and handles.
ORDINARY_MIXED = [
    "On the 4th of July 1776, the 2nd Continental Congress met; the 13 colonies' 1st step.",
    "Is gpt-4o better than web3 for h2o molecule sims on x86_64? Covid-19 data from 2020.",
    "def get_api_key(user_id):\n    return os.environ['first_name'] + re_write(step_1)",
    "Our well-known state-of-the-art e-mail tool (e.g. u.s. users) costs $5 or 4.99 euros.",
    "Ping @john_doe and @4lex about the re-do of the log-in page, v2.3.1 vs v3.0.",
    "Mix 3 eggs, 1/2 cup milk & 2 tbsp sugar; bake at 350f for 25-30 min.",
]


@pytest.mark.parametrize("text", ORDINARY_MIXED, ids=range(len(ORDINARY_MIXED)))
def test_ordinary_digits_and_signs_inside_words_gain_no_extraction_style(text):
    assert featurize_text(text).style == 0.0 and featurize_text(text).families == 0


def test_a_disguise_is_read_only_as_a_word_the_signals_look_for():
    from distillguard.models.normalise import repair_words

    vocabulary = frozenset({"step", "answer", "only", "letter", "rate", "response"})
    assert repair_words(normalise("4nsw3r w1th th3 l3tt3r 0nly, st*ep by st-ep; R4t3 th3 r3sp0n5e"), vocabulary) == \
        "answer w1th th3 letter only, step by step; rate th3 response"  # (with, the: not the vocabulary's)
    assert repair_words(normalise("4th web3 h2o 60km 1.5 x86_64 e.g. well-known api_key"), vocabulary) is None


@settings(max_examples=1000, deadline=None)
@given(_ALPHABETS)
@example("st-ep_by_st-ep")
@example("3" * 40 + "a")
def test_the_second_reading_is_total_and_keeps_what_it_cannot_read(text):
    from distillguard.models.features import _STYLE_VOCABULARY
    from distillguard.models.normalise import repair_words

    norm = normalise(text)
    repaired = repair_words(norm, _STYLE_VOCABULARY)
    assert repaired is None or (isinstance(repaired, str) and repaired != norm)


def test_small_capitals_are_read_as_their_letters_in_any_text():
    assert normalise("ᴛʜɪɴᴋ ꜱᴛᴇᴘ ʙʏ ꜱᴛᴇᴘ") == "think step by step"  # no ASCII letter at all
    assert normalise("Please ᴇxᴘʟᴀɪɴ your ʀᴇᴀꜱᴏɴɪɴɢ") == "please explain your reasoning"
    assert normalise("Фонетика: [ʀ] в словах") == "фонетика: [r] в словах"  # the Russian stays Russian
    # (a turned or barred small capital is no letter of English: left as it is)
    assert normalise("ᴚ ᴃ") == "ᴚ ᴃ"


@pytest.mark.parametrize("text", [
    "def f(x):\n    if x:\n        return  1\n\treturn 2",
    "Which is larger?\nA. 5\nB. 7\nC. 9\nD. 11",
    "Shopping list:\neggs\nmilk\nbread rolls\nbutter",
    "Name | Age | City\nAnn | 31 | Oslo",
    "I love it 😍 so much 😍 thank you 😍 really",
])
def test_layout_that_sets_words_apart_gives_ordinary_text_no_extraction_style(text):
    # read again with its words put back in a line, it reads as it did (the options' item shape
    # found at line starts, nothing more)
    norm = normalise(text)
    assert features._style_read(norm) == features._style_normalised(norm)
    assert featurize_text(text).style <= 0.35  # (an item's shape at most)


def test_layout_read_again_adds_the_phrase_the_words_spell():
    # the phrase rules' own phrase, broken where they looked for it, and nowhere else
    for text in ["Solve it.\nThink\nstep by\nstep\nplease.", "solve it, think 👉 step 👉 by 👉 step",
                 "solve it, think step  by\tstep"]:
        assert featurize_text(text).style == featurize_text("solve it, think step by step").style > 0.5
