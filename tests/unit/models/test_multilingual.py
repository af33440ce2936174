"""Extraction style and topic sketch of prompts that are not English (small written examples)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distillguard.models import features, multilingual
from distillguard.models.detectors import ConversationClaims
from distillguard.models.events import parse_event
from distillguard.models.features import BENCHMARK_FORMAT, featurize_text, style_score

REASONING, GRADING = 1 << 0, 1 << 1

# The same instruction, "solve this step by step / show your reasoning", in other languages.
REASONING_PROMPTS = {
    "zh": "请一步一步地思考：一个数的三倍加五等于二十，这个数是多少？",
    "zh-hant": "請寫出推理過程：一列火車以每小時80公里行駛3小時，共行駛多少公里？",
    "ja": "ステップバイステップで考えてください。3つのリンゴと5つのリンゴを合わせるといくつですか？",
    "ko": "단계별로 풀어 주세요: 어떤 수에 3을 곱하고 5를 더하면 20입니다. 그 수는?",
    "es": "Resuelve paso a paso: si 2x + 3 = 11, ¿cuánto vale x?",
    "pt": "Explique seu raciocínio: qual é a capital da Austrália?",
    "fr": "Résous ce problème étape par étape : un train roule 3 heures à 80 km/h.",
    "de": "Löse Schritt für Schritt: Wie viele Primzahlen gibt es unter 20?",
    "it": "Mostra il tuo ragionamento: quanto fa 17 per 23?",
    "ru": "Решите шаг за шагом: сколько будет 17 умножить на 23?",
    "uk": "Поясни свою відповідь: чому небо блакитне?",
    "pl": "Rozwiąż krok po kroku: ile to jest 17 razy 23?",
    "nl": "Los stap voor stap op: hoeveel is 17 keer 23?",
    "tr": "Adım adım çöz: 17 çarpı 23 kaçtır?",
    "vi": "Giải từng bước: 17 nhân 23 bằng bao nhiêu?",
    "id": "Jelaskan penalaranmu langkah demi langkah: berapa 17 kali 23?",
    "hi": "चरण दर चरण हल करें: 17 गुणा 23 कितना है?",
    "bn": "ধাপে ধাপে সমাধান করো: ১৭ গুণ ২৩ কত?",
    "ar": "فكر خطوة بخطوة: ما حاصل ضرب 17 في 23؟",
    "fa": "گام به گام حل کن: حاصل ضرب ۱۷ در ۲۳ چیست؟",
    "th": "อธิบายเหตุผลทีละขั้นตอน: 17 คูณ 23 เท่ากับเท่าไร",
}

GRADING_PROMPTS = {
    "zh": "请给这个回答打分（1到10分）。\n问题：水的沸点是多少？\n回答：100摄氏度。",
    "ja": "次の回答を評価してください。10点満点で採点してください。\n回答: 東京です。",
    "es": "Califica esta respuesta en una escala del 1 al 10.\nRespuesta: París.",
    "de": "Bewerte die Antwort auf einer Skala von 1 bis 10.\nAntwort: Berlin.",
    "ru": "Оцените ответ по шкале от 1 до 10.\nОтвет: Париж.",
    "ko": "다음 답변을 평가해 주세요.\n답변: 서울입니다.",
}

# Benign chat in the same languages: no instruction to lay out reasoning, grade or answer an item.
BENIGN_CHAT = [
    "今天天气怎么样？我想去公园散步。",
    "帮我写一封给朋友的生日祝福。",
    "おすすめの京都の観光地を教えてください。",
    "주말에 서울에서 가볼 만한 곳을 추천해 줘.",
    "¿Me recomiendas una buena receta de paella?",
    "Wie spät ist es gerade in Tokio?",
    "Quelle est la meilleure saison pour visiter Lisbonne ?",
    "Какой фильм посмотреть сегодня вечером?",
    "Bana kısa bir doğum günü mesajı yazar mısın?",
    "मुझे दिल्ली में घूमने की अच्छी जगहें बताओ।",
    "ما هي أفضل طريقة لتعلم الطبخ؟",
    "Napisz krótki wiersz o jesieni.",
    "Thời tiết Hà Nội hôm nay thế nào?",
    "Tolong buatkan daftar belanja untuk makan malam.",
]


@pytest.mark.parametrize("lang", sorted(REASONING_PROMPTS))
def test_reasoning_elicitation_in_other_languages_scores_like_english(lang):
    f = featurize_text(REASONING_PROMPTS[lang])
    assert f.families & REASONING, lang
    # the alert can say which signal fired: a cue phrase, and in which language
    assert f.families & multilingual.OTHER_LANGUAGE_CUE and not f.families & multilingual.ITEM_STRUCTURE
    assert multilingual.cue_language(f.families) == lang.split("-")[0]
    assert f.style == style_score("Think step by step: what is 17 times 23?") == 1.0


@pytest.mark.parametrize("lang", sorted(GRADING_PROMPTS))
def test_grading_in_other_languages(lang):
    f = featurize_text(GRADING_PROMPTS[lang])
    assert f.families & GRADING, lang
    assert multilingual.cue_language(f.families) == lang.split("-")[0]
    assert f.style >= 0.85


@pytest.mark.parametrize("prompt", BENIGN_CHAT)
def test_benign_chat_in_other_languages_has_no_style(prompt):
    assert featurize_text(prompt).style == 0.0


@pytest.mark.parametrize("prompt", [
    "下列哪个是质数？\nA. 4\nB. 6\nC. 7\nD. 9",
    "Какое число простое?\nА) 4\nБ) 6\nВ) 7\nГ) 9",
    "次のうち素数はどれか。\nア．4\nイ．6\nウ．7\nエ．9",
    "다음 중 소수는?\n가. 4\n나. 6\n다. 7\n라. 9",
    "下列哪个是质数？①4 ②6 ③7 ④9\n答案：",
    "Welche Zahl ist eine Primzahl: 4, 6, 7 oder 9?\nAntwort: ___",
    "问题：水在多少度沸腾？\n答案：",
])
def test_exam_item_shape_in_any_script_is_a_benchmark_format(prompt):
    f = featurize_text(prompt)
    # the format family, and that an item's shape set it (no cue phrase, no language)
    assert f.families == BENCHMARK_FORMAT | multilingual.ITEM_STRUCTURE
    # answered at length, an item sweep harvests worked solutions, as in English
    assert features.answered_style(featurize_text(prompt, output_tokens=900)) == 0.7


def test_a_numbered_list_in_chat_is_not_an_item():
    assert featurize_text("周末计划：\n1. 买菜\n2. 打扫房间\n3. 看电影").families == 0
    assert featurize_text("Mein Plan für heute: einkaufen, kochen, lesen.").families == 0


def test_disguised_cue_is_read_through_normalisation():
    # fullwidth Latin and a zero-width space inside a German cue
    assert featurize_text("Ｓｃｈｒｉｔｔ für Schr\u200bitt: was ist 3 + 4?").families & REASONING


def test_chinese_prompts_get_distinct_topic_sketches():
    # Before: no word of a Chinese prompt matched, every one had SimHash 0 (one topic bucket).
    a = featurize_text("光合作用的原理是什么？植物如何把光能转化为化学能？")
    b = featurize_text("第二次世界大战是哪一年结束的？战后欧洲发生了什么变化？")
    a2 = featurize_text("请解释光合作用的原理，植物如何把光能转化为化学能")
    assert a.simhash != 0 and b.simhash != 0
    assert (a.simhash ^ a2.simhash).bit_count() < (a.simhash ^ b.simhash).bit_count()
    assert a.content_words > 0


def test_english_style_unchanged_by_the_multilingual_families():
    # the ASCII path only searches cue phrases whose words are present: English is untouched
    for text, style in (("Show your reasoning step by step.", 1.0), ("What's a good pasta recipe?", 0.0),
                        ("(A) 4 (B) 5 (C) 6. Answer with the letter only.", 0.35)):
        assert style_score(text) == style
    assert multilingual.families("what's a good pasta recipe? step 1: boil water") == 0


def test_a_cue_word_alone_is_not_the_instruction():
    # the ASCII path is gated by the cue phrases' words; the whole phrase must be present
    assert featurize_text("How do I dance a paso doble at a wedding?").style == 0.0
    assert featurize_text("Mi abuela me enseñó a cocinar paso por la tarde.").style == 0.0


def test_a_cue_in_pasted_material_does_not_count():
    # instructions sit at the start or the end of a prompt; the middle is pasted material
    middle = "这是一篇文章。" * 120 + "请一步一步地思考。" + "这是一篇文章。" * 120
    assert featurize_text("总结下面的文字：\n" + middle + "\n谢谢").families & REASONING == 0
    assert featurize_text("总结下面的文字，请一步一步地思考：\n" + middle).families & REASONING


def test_english_rules_set_no_multilingual_signal_bits():
    for prompt in ("Think step by step: what is 17 times 23?", "(A) 4 (B) 5 (C) 6. Answer with the letter only.",
                   "Rate this answer on a scale of 1 to 10.\nAnswer: Paris is in Spain."):
        found = featurize_text(prompt).families
        assert found and not found & (multilingual.OTHER_LANGUAGE_CUE | multilingual.ITEM_STRUCTURE), prompt
        assert multilingual.cue_language(found) == ""


# The instruction to lay out one's reasoning said in other words than any phrase of cues.toml
# [reasoning] (an attacker who has read it): the cue words of two or more [process] groups.
REWORDED_REASONING = {
    "es": "Antes de contestar, describe con detalle cada etapa de tu razonamiento: ¿cuánto es 17 por 23?",
    "pt": "Descreva cada etapa da sua argumentação antes de responder: quanto é 17 vezes 23?",
    "fr": "Développez votre cheminement, étape après étape, puis répondez : combien font 17 fois 23 ?",
    "de": "Lege deine Überlegungen ausführlich dar: wie viel ist 17 mal 23?",
    "it": "Descrivi ciascuno dei passaggi della tua argomentazione: quanto fa 17 per 23?",
    "nl": "Beschrijf elke stap van je redenering: hoeveel is 17 keer 23?",
    "pl": "Opisz starannie każdy etap obliczeń: ile to jest 17 razy 23?",
    "tr": "Cevaptan önce mantığını detaylı olarak anlat: 17 çarpı 23 kaçtır?",
    "id": "Uraikan penalaranmu secara rinci: berapa 17 kali 23?",
    "ru": "Распиши подробно каждый этап: сколько будет 17 умножить на 23?",
    "uk": "Поясни детально кожен крок: скільки буде 17 помножити на 23?",
}


@pytest.mark.parametrize("prompt", [
    "¿Qué pasó en la Revolución Francesa? Explica.",  # "pasó" (happened) is no step
    "Explique o que é a fotossíntese.",
    "Erkläre mir, wie ein Kühlschrank funktioniert.",
    "Объясни, как работает фотосинтез.",
    "Опиши свой идеальный отпуск.",
    "Décris-moi ta ville préférée.",
    "Jelaskan apa itu inflasi.",
])
def test_one_cue_word_of_another_language_is_how_people_chat(prompt):
    assert featurize_text(prompt).style == 0.0


# Grading said in other words than any phrase of cues.toml [grading]: a verdict word, a word
# for the judged output, and the output under a label of its own.
REWORDED_GRADING = {
    "es": "Pregunta: ¿capital de Francia?\nRespuesta del modelo: Lyon\n\n¿Es correcta? Ponle una calificación.",
    "pt": "Pergunta: capital da França?\nResposta do assistente: Lyon\n\nEstá correta? Dê uma pontuação.",
    "fr": "Question : capitale de la France ?\nRéponse de l'assistant : Lyon\n\nEst-elle correcte ? Notez-la.",
    "de": "Frage: Hauptstadt Frankreichs?\nAntwort des Modells: Lyon\n\nIst das richtig? Kurz benoten.",
    "it": "Domanda: capitale della Francia?\nRisposta del modello: Lione\n\nÈ corretta? Dai un voto.",
    "nl": "Vraag: hoofdstad van Frankrijk?\nAntwoord van het model: Lyon\n\nIs dit juist? Geef een cijfer.",
    "pl": "Pytanie: stolica Francji?\nOdpowiedź modelu: Lyon\n\nCzy jest poprawna? Podaj ocena 0-10.",
    "tr": "Soru: Fransa'nın başkenti?\nModelin cevabı: Lyon\n\nDoğru mu? 0-10 arası puanla.",
    "id": "Pertanyaan: ibu kota Prancis?\nJawaban model: Lyon\n\nApakah benar? Nilailah.",
    "ru": "Вопрос: столица Франции?\nОтвет ассистента: Лион\n\nВерно ли? Сколько баллов из 10?",
    "uk": "Питання: столиця Франції?\nВідповідь асистента: Ліон\n\nЧи правильно? Скільки балів?",
}


@pytest.mark.parametrize("signal,lang", [("process", lang) for lang in sorted(REWORDED_REASONING)]
                         + [("judging", lang) for lang in sorted(REWORDED_GRADING)])
def test_an_instruction_reworded_in_another_language_is_read_by_its_cue_words(signal, lang):
    prompt = (REWORDED_REASONING if signal == "process" else REWORDED_GRADING)[lang]
    assert not multilingual.families(features.normalise_prompt(prompt)) & multilingual.FAMILY_BITS, \
        "no cue phrase: the cue words alone must read it"
    f = featurize_text(prompt)
    bit, least = (features.PROCESS_ELICITATION, 0.6) if signal == "process" else (features.JUDGING, 0.85)
    assert f.families & bit and f.style >= least, lang


@pytest.mark.parametrize("prompt", [
    "¿Es correcta mi respuesta? Creo que la capital de Francia es París.",  # no section holding an output
    "Ist meine Antwort richtig, dass Berlin die Hauptstadt ist?",
    "Верен ли мой ответ, что столица Франции — Париж?",
    "Respuesta: París.",  # a section, no verdict asked
])
def test_a_question_about_ones_own_answer_is_not_grading(prompt):
    assert not featurize_text(prompt).families & features.JUDGING


MIXED = ("Resuelve paso a paso, luego Schritt für Schritt, и наконец шаг за шагом: 17 x 23?",
         "Schritt für Schritt bitte, dann paso a paso: 17 x 23?",
         "Шаг за шагом, потом paso a paso: 17 x 23?")


@pytest.mark.parametrize("prompt, lang", list(zip(MIXED, ("es", "de", "ru"))))
def test_the_cue_language_of_mixed_text_is_its_first_cues(prompt, lang):
    f = featurize_text(prompt)
    assert f.families & REASONING and multilingual.cue_language(f.families) == lang


def test_the_cue_language_does_not_depend_on_the_process_string_hashes():
    # A worker and replay are processes with their own hash seeds: an alert's cue_language
    # must be the same in both (it came from the order of a set of words or letters).
    code = ("from distillguard.models.features import featurize_text as f\n"
            "from distillguard.models.multilingual import cue_language as c\n"
            f"print([c(f(p).families) for p in {list(MIXED)!r}])")
    seen = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in range(1, 7)}
    assert seen == {"['es', 'de', 'ru']\n"}


def follow_up(prompt: str) -> features.EventFeatures:
    """Features of ``prompt`` sent as turn 1 of a conversation (a follow-up's length is counted)."""
    doc = {"schema": "llm.request.v1", "event_id": "e", "ts": "2026-01-01T00:00:00Z", "api_key_id": "k",
           "account_id": "a", "model": "m", "prompt": prompt, "conversation_id": "c", "turn_index": 1}
    return features.featurize(parse_event(json.dumps(doc).encode()))


# What a student types after an explanation, in other languages: "I don't get the second step",
# "how do I remember this for the test", "my teacher did it differently", "why is that?" ...
FEW_WORDS = {
    "de": ["den zweiten Schritt verstehe ich nicht", "meine Lehrerin hat das anders gemacht",
           "kannst du das noch einmal einfacher erklären?"],
    "pl": ["nie rozumiem drugiego kroku", "a dlaczego tak jest?", "możesz to wyjaśnić prościej?"],
    "fr": ["je ne comprends pas la deuxième étape", "pourquoi est-ce que c'est comme ça ?"],
    "es": ["no entiendo el segundo paso", "¿y por qué se hace así?"],
    "tr": ["sınav için bunu nasıl hatırlarım", "ikinci adımı anlamadım"],
    "ru": ["не понял второй шаг", "а почему так получается?", "учительница решала по-другому"],
    "uk": ["я не зрозумів другий крок", "а чому саме так?"],
    "vi": ["mình không hiểu bước hai", "làm sao nhớ cái này để thi", "tại sao lại như vậy?"],
    "zh": ["考试的时候怎么记住这个", "老师的做法不一样", "为什么是这样？"],
    "ja": ["テストのためにどう覚えればいい？", "二つ目のところがわからない", "先生のやり方と違う"],
    "ko": ["두 번째 단계가 이해가 안 돼요", "왜 그렇게 되는 거예요?", "다시 설명해 주세요"],
    "ar": ["لم أفهم الخطوة الثانية", "لماذا هذا صحيح؟"],
    "hi": ["मुझे दूसरा चरण समझ नहीं आया", "ऐसा क्यों होता है?", "फिर से समझाइए"],
    "th": ["ไม่เข้าใจขั้นตอนที่สอง", "ทำไมถึงเป็นแบบนั้น"],
}
# Items of the kind a sweep sends as its next "turn", in the same languages.
ITEMS = {
    "de": "Welche Organelle der Pflanzenzelle wandelt Lichtenergie in chemische Energie um? A) Mitochondrium "
          "B) Chloroplast C) Zellkern D) Ribosom",
    "pl": "Oblicz pole trójkąta prostokątnego o przyprostokątnych długości 6 cm i 8 cm oraz podaj długość "
          "przeciwprostokątnej.",
    "fr": "Quelle est la principale cause des saisons sur Terre : la distance au Soleil ou l'inclinaison de l'axe ?",
    "es": "Explica las causas económicas y sociales de la Revolución francesa y sus consecuencias en Europa.",
    "tr": "Osmanlı İmparatorluğu'nun kuruluş döneminde uygulanan iskân politikasının amaçları nelerdir?",
    "ru": "Какой химический элемент имеет наибольшую электроотрицательность по шкале Полинга? "
          "Варианты: фтор, кислород, хлор, азот.",
    "uk": "Поясніть, чому під час фотосинтезу рослини виділяють кисень, і запишіть рівняння реакції.",
    "vi": "Cho biết thủ đô của nước Pháp là thành phố nào và giải thích lý do thành phố đó trở thành thủ đô.",
    "zh": "光合作用的光反应阶段发生在叶绿体的哪个部位？请选择正确答案并说明理由。",
    "ja": "次のうち、日本の国会で法律案の議決について衆議院の優越が認められている理由として最も適切なものを選びなさい。",
    "ko": "다음 중 조선 시대 과거 제도에 대한 설명으로 옳은 것을 고르시오.",
    "ar": "ما هي العوامل الرئيسية التي أدت إلى قيام الثورة الصناعية في بريطانيا خلال القرن الثامن عشر؟",
    "hi": "प्रकाश संश्लेषण की प्रक्रिया को विस्तार से समझाइए और उसके मुख्य चरण बताइए।",
    "th": "อธิบายกระบวนการสังเคราะห์แสงของพืชอย่างละเอียดและบอกปัจจัยที่มีผลต่ออัตราการสังเคราะห์แสง",
}


@pytest.mark.parametrize("lang", sorted(FEW_WORDS))
def test_a_persons_few_words_are_few_in_every_language_and_an_item_is_not(lang):
    # A follow-up of at most 3 content words is a person's (ConversationClaims.person_words):
    # counted with English stop words only, half these turns were "items" (a Vietnamese
    # homework app lost its evidence and was paged, stress-product-negatives-j).
    # Not every such turn: the stop word lists miss some pronouns and auxiliaries, and Korean
    # keeps its particles on its words ("두 번째 단계가 이해가 안 돼요" reads 4, "मुझे दूसरा चरण
    # समझ नहीं आया" 5); a key's share of a person's follow-ups needs only some of them.
    claims = ConversationClaims()
    few = [follow_up(text).turn_words <= claims.person_words for text in FEW_WORDS[lang]]
    assert sum(few) * 2 > len(few), FEW_WORDS[lang]
    assert follow_up(ITEMS[lang]).turn_words > claims.person_words


def test_the_english_only_count_made_most_of_those_follow_ups_items():
    # Guard: the count turn_words replaced (content_words) reads these turns as more than a
    # person's few words; if it did not, the test above would prove nothing.
    turns = [text for texts in FEW_WORDS.values() for text in texts]
    longer = [text for text in turns if follow_up(text).content_words > ConversationClaims().person_words]
    assert len(longer) >= len(turns) // 2


def test_only_a_follow_up_pays_for_its_length_in_words():
    assert featurize_text("den zweiten Schritt verstehe ich nicht").turn_words == 0  # a first turn
    assert follow_up("why?").turn_words == 0 and follow_up("I don't get the second step").turn_words == 3


def test_an_english_item_wearing_vietnamese_marks_counts_its_words():
    # Vietnamese stop syllables are dropped only as Vietnamese writes them: marks put on an
    # English item ("Nạme thrẹe primạry colọrs") take none of its words away, as halving
    # every syllable of a text holding a Vietnamese letter did.
    plain, marked = follow_up("Name three primary colors and explain each"), follow_up(
        "Nạme thrẹe primạry colọrs ạnd ẹxplain ẹach")
    assert marked.turn_words == plain.turn_words > ConversationClaims().person_words
    assert follow_up("mình không hiểu bước hai").turn_words <= ConversationClaims().person_words


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("ạđơư光のテひ한ทไ "), max_size=120))
def test_a_follow_ups_word_count_never_fails_and_never_exceeds_its_characters(text):
    # any text a client sends as a turn is counted (a worker never dies on a record)
    f = follow_up(text)
    assert 0 <= f.turn_words <= len(text)
