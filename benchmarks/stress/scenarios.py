#!/usr/bin/env python3
"""Scenario kinds of the issue-18 stress streams, registered on the shared stream builder.

    python benchmarks/stress/scenarios.py --prompts DIR --out OUTDIR --seed N --config CONFIG.json

Imports ``make_stream.py`` of the shared benchmark tools (found beside this project, as
``benchmarks/detection.py`` finds it), registers the kinds below with
its ``register`` decorator and runs its ``main``: a config in this folder names the kinds.
These streams are adversarial on purpose: campaigns written against a detector that has been
read (other languages, obfuscated wording, fabricated conversations, cohorts that share only
content, harvests with no wording) and benign products that look like extraction. Every
generator draws its parameters from ranges in the config so that no single shape is the
stream; nothing here may key on what the detector looks for.

Kinds: ``ml_campaign``, ``ml_casual`` (multilingual); ``obfuscated_campaign``;
``fabricated_conv``, ``multi_turn_users``; ``content_cohort``; ``harvest_plain``;
``homework_app``, ``editor_app``, ``coding_agent``, ``grading_app``, ``quiz_app``, ``eval_company``,
``longform_service``, ``item_bank_service``, ``turned_mature`` (products), ``eval_mimic``
(a harvest dressed as an evaluation); ``app_mimic`` (a sweep dressed as a homework app); ``transformation_mimic`` (a harvest dressed as a
translation or summarisation service); ``agent_harvest`` (tool-use traces harvested by agent loops).
"""
from __future__ import annotations

import importlib.util
import math
import re
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
_MAKE_STREAM = _ROOT.parent / "shared" / "tools" / "make_stream.py"


def _load_make_stream():
    """The shared builder as module ``make_stream`` (one instance, so ``register`` lands in the
    ``SCENARIOS`` that its ``build`` reads)."""
    if "make_stream" in sys.modules:
        return sys.modules["make_stream"]
    spec = importlib.util.spec_from_file_location("make_stream", _MAKE_STREAM)
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_stream"] = module
    spec.loader.exec_module(module)
    return module


ms = _load_make_stream()
register, draw_num, wchoice, hexid, fill = ms.register, ms.draw_num, ms.wchoice, ms.hexid, ms.fill
DAY_MS, HOUR_MS = ms.DAY_MS, ms.HOUR_MS

# --------------------------------------------------------------------------- shared helpers

def attack_pools(b, corpora=None, prefix=None, langs=None):
    """Attack pools filtered by corpus name, corpus prefix and group language (``<lang>:...``)."""
    pools = b.C.attack
    if corpora:
        pools = [p for p in pools if p.corpus in corpora]
    if prefix:
        pools = [p for p in pools if p.corpus.startswith(prefix)]
    if langs:
        pools = [p for p in pools if p.group.split(":", 1)[0] in langs]
    return pools


def spec_pools(b, spec, names_key="corpora_names"):
    """The attack pools a scenario's config allows: ``corpora_names`` (all when absent) less the
    groups whose name starts with one of ``exclude_groups`` (e.g. tool catalogues, which carry
    extraction style in the item itself)."""
    names = spec.get(names_key)
    pools = attack_pools(b, corpora=names) if names else list(b.C.attack)
    drop = tuple(spec.get("exclude_groups", ()))
    return [p for p in pools if not (drop and p.group.startswith(drop))]


def walk(R, pools, n, per_group, spill=()):
    """n records (text, answer, group) walked through pools in turn, ``per_group`` at a time;
    once they are used up, the ``spill`` pools with records left join; once every pool is used
    up, they are walked again (a repeat, as a long campaign would)."""
    out, i, dry = [], 0, 0
    pools = list(pools)
    if not pools:
        raise SystemExit("stress scenario: no attack pool matches the campaign's corpora/languages")
    rot = R.randrange(len(pools))
    pools = pools[rot:] + pools[:rot]
    while len(out) < n:
        if dry >= len(pools):
            more = [q for q in spill if q.remaining() > 0 and q not in pools]
            if more:
                pools += more
                dry = 0
        p = pools[i % len(pools)]
        i += 1
        got = p.take(min(per_group, n - len(out)), allow_wrap=dry >= len(pools))
        out.extend((text, ans, p.group) for text, ans in got)
        dry = 0 if got else dry + 1
    return out


def wrapper_fn(R, templates, rate, out_median, answers_from):
    """f(rec, R) -> (prompt, out_median): one of ``templates`` at ``rate``, else the bare item."""

    def wrap(rec, RR):
        text, ans, group = rec
        if templates and RR.random() < rate:
            t = RR.choice(templates)
            if "{answer}" in t and not ans:
                ans = ms.synth_answer(RR, answers_from)
            return fill(t, text, ans, group), out_median * 1.5
        return text, out_median

    return wrap


def young_account(b, R, first_ts, spec):
    """An account created hours to days before its first request (or older for a share)."""
    lo, hi = spec.get("account_age_days", [0.05, 6.0])
    age = R.uniform(lo, hi) if R.random() >= spec.get("old_account_p", 0.0) else R.uniform(30, 400)
    return b.new_account(R, first_ts, "attack", tier=wchoice(R, spec.get("tiers", [["free", 0.6], ["tier1", 0.4]])),
                         org_p=0.0, created=first_ts - int(age * DAY_MS))


def attack_identity(b, R, spec, camo):
    """(profile, params style, model) of an attack key: camouflaged ones look like users."""
    prof, style, model, _age, _tier = ms._attack_meta(b, R, spec, camo)
    return prof, style, model


def product_backend(b, R, per_network=(2, 6)):
    """A product's backend: 1-2 cloud networks with ``per_network`` addresses each, and one SDK
    client: its addresses as (ip, asn, country), and its user agent."""
    backend = [b.asn_entry(R, "cloud") for _ in range(R.randint(1, 2))]
    ips = [(b.rand_ip(R, a[0], False), a[0], a[1]) for a in backend for _ in range(R.randint(*per_network))]
    return ips, b.ua(R, "sdk")


# --------------------------------------------------------------------------- 1. multilingual

# Written for this stream (not taken from any detector's cue list): elicitation of worked
# reasoning and grading requests, several wordings per language, so a campaign rotates them.
ML_COT = {
    "zh": ["{text}\n\n请一步一步地思考，写出完整的推理过程，最后给出答案。",
           "请详细解答下面的问题，列出每一个推导步骤：\n\n{text}",
           "{text}\n\n先分析题目，再逐条说明理由，最后单独一行写出最终答案。"],
    "ja": ["{text}\n\n段階的に考えて、推論の過程をすべて示してから答えてください。",
           "次の問題について、考え方を順を追って詳しく説明し、最後に答えを書いてください。\n\n{text}",
           "{text}\n\n途中の計算や根拠を省略せずに書き、最終的な答えを最後の行に示してください。"],
    "ko": ["{text}\n\n단계별로 생각하고 모든 추론 과정을 보여 준 뒤 답하세요.",
           "다음 문제를 풀 때 각 단계의 근거를 자세히 설명하고 마지막에 정답을 쓰세요.\n\n{text}",
           "{text}\n\n풀이 과정을 빠짐없이 적고 최종 답을 따로 한 줄로 적어 주세요."],
    "de": ["{text}\n\nDenke Schritt für Schritt nach und zeige deinen vollständigen Lösungsweg, bevor du antwortest.",
           "Löse die folgende Aufgabe und begründe jeden Zwischenschritt ausführlich.\n\n{text}",
           "{text}\n\nErkläre deine Überlegungen im Detail und nenne am Ende die endgültige Antwort."],
    "fr": ["{text}\n\nRéfléchis étape par étape et montre tout ton raisonnement avant de répondre.",
           "Résous le problème suivant en détaillant chaque étape intermédiaire.\n\n{text}",
           "{text}\n\nExplique ta démarche en détail, puis donne la réponse finale sur une ligne à part."],
    "es": ["{text}\n\nPiensa paso a paso y muestra todo tu razonamiento antes de responder.",
           "Resuelve lo siguiente explicando en detalle cada paso intermedio.\n\n{text}",
           "{text}\n\nJustifica cada deducción y da la respuesta final al terminar."],
    "ru": ["{text}\n\nРассуждай шаг за шагом и покажи весь ход решения, прежде чем ответить.",
           "Реши следующую задачу, подробно объясняя каждый промежуточный шаг.\n\n{text}",
           "{text}\n\nОпиши свои рассуждения полностью, а в конце отдельной строкой дай окончательный ответ."],
    "ar": ["{text}\n\nفكّر خطوة بخطوة واعرض طريقة تفكيرك كاملة قبل الإجابة.",
           "حلّ السؤال التالي مع شرح كل خطوة من خطوات الحل بالتفصيل.\n\n{text}",
           "{text}\n\nاشرح منطقك بالتفصيل ثم اكتب الإجابة النهائية في سطر مستقل."],
    "pt": ["{text}\n\nPense passo a passo e mostre todo o seu raciocínio antes de responder.",
           "Resolva a questão a seguir explicando detalhadamente cada etapa.\n\n{text}",
           "{text}\n\nJustifique cada passo do raciocínio e indique a resposta final no fim."],
    "hi": ["{text}\n\nक़दम-दर-क़दम सोचिए और उत्तर देने से पहले अपना पूरा तर्क दिखाइए।",
           "नीचे दिए गए प्रश्न को हल कीजिए और हर चरण को विस्तार से समझाइए।\n\n{text}",
           "{text}\n\nअपनी सोच की पूरी प्रक्रिया लिखिए और अंत में अंतिम उत्तर अलग पंक्ति में दीजिए।"],
    "it": ["{text}\n\nRagiona passo dopo passo e mostra tutto il ragionamento prima di rispondere.",
           "Risolvi il seguente quesito spiegando nel dettaglio ogni passaggio.\n\n{text}"],
    "tr": ["{text}\n\nAdım adım düşün ve cevap vermeden önce tüm akıl yürütmeni göster.",
           "Aşağıdaki soruyu her adımı ayrıntılı olarak açıklayarak çöz.\n\n{text}"],
    "pl": ["{text}\n\nMyśl krok po kroku i pokaż całe rozumowanie, zanim odpowiesz.",
           "Rozwiąż poniższe zadanie, szczegółowo uzasadniając każdy krok.\n\n{text}"],
    "vi": ["{text}\n\nHãy suy nghĩ từng bước và trình bày toàn bộ lập luận trước khi trả lời.",
           "Giải bài sau và giải thích chi tiết từng bước trung gian.\n\n{text}"],
}

# The same requests reworded by an attacker who has read cues.toml (models/): none of its
# [reasoning] phrases appears, the instruction is said in other words of the language. For the
# multilingual-reworded stream (cot_wrappers: reworded), in the languages whose words have
# spaces between them. Written 2026-12-02.
ML_COT_REWORDED = {
    "de": ["{text}\n\nLege deine Überlegungen ausführlich dar, bevor du zur Antwort kommst.",
           "Beschreibe bei der folgenden Aufgabe jeden einzelnen Schritt deiner Argumentation.\n\n{text}",
           "{text}\n\nGeh die Aufgabe gründlich durch und erläutere jede Schlussfolgerung, dann antworte."],
    "fr": ["{text}\n\nDécris ton cheminement de façon minutieuse avant de conclure.",
           "Pour la question suivante, développe chacune des étapes de ta réflexion.\n\n{text}",
           "{text}\n\nJustifie soigneusement chaque déduction, puis conclus."],
    "es": ["{text}\n\nDesarrolla tu argumentación de forma minuciosa antes de dar la respuesta.",
           "Para la siguiente pregunta, describe con detalle cada una de las etapas de tu razonamiento.\n\n{text}",
           "{text}\n\nDetalla todos los pasos intermedios y luego responde."],
    "ru": ["{text}\n\nРаспиши подробно каждый этап решения, затем дай ответ.",
           "Изложи развёрнуто свою логику при решении следующей задачи.\n\n{text}",
           "{text}\n\nПоясни тщательно каждое промежуточное действие и только потом отвечай."],
    "pt": ["{text}\n\nDesenvolva o seu raciocínio de forma minuciosa antes de concluir.",
           "Para a questão seguinte, descreva cada uma das etapas da sua argumentação.\n\n{text}",
           "{text}\n\nDetalhe todos os passos intermediários e só depois responda."],
    "it": ["{text}\n\nIllustra in modo approfondito il tuo ragionamento prima di concludere.",
           "Per la domanda seguente, descrivi ciascuno dei passaggi della tua argomentazione.\n\n{text}"],
    "tr": ["{text}\n\nCevabı vermeden önce mantığını ayrıntılı biçimde anlat.",
           "Aşağıdaki soruda her aşamayı detaylı olarak göster.\n\n{text}"],
    "pl": ["{text}\n\nOpisz starannie każdy etap swojego rozumowania przed odpowiedzią.",
           "Rozpisz wszystkie kroki pośrednie w poniższym zadaniu.\n\n{text}"],
}

# Grading requests reworded past every phrase of cues.toml [grading] (multilingual-reworded:
# grade_wrappers: reworded): a student's solution under a label, a verdict asked in other words.
ML_GRADE_REWORDED = {
    "de": ["Aufgabe: {text}\nLösung eines Schülers: {answer}\n\nStimmt diese Lösung? Vergib als strenger Prüfer 0 bis 10 Punkte."],
    "fr": ["Énoncé : {text}\nSolution d'un élève : {answer}\n\nCette solution est-elle correcte ? Attribue-lui des points sur 10."],
    "es": ["Enunciado: {text}\nSolución de un alumno: {answer}\n\n¿Es correcta? Ponle una calificación del 0 al 10 y explica los fallos."],
    "ru": ["Задача: {text}\nРешение ученика: {answer}\n\nСколько баллов из 10 заслуживает это решение? Верно ли оно?"],
    "pt": ["Enunciado: {text}\nSolução de um aluno: {answer}\n\nEsta solução está correta? Dê-lhe uma pontuação de 0 a 10."],
    "it": ["Quesito: {text}\nSoluzione di uno studente: {answer}\n\nLa soluzione è corretta? Dalle un punteggio da 0 a 10."],
    "tr": ["Soru: {text}\nÖğrencinin çözümü: {answer}\n\nBu çözüm doğru mu? 0-10 arası puanla."],
    "pl": ["Zadanie: {text}\nRozwiązanie ucznia: {answer}\n\nCzy to rozwiązanie jest poprawne? Przyznaj od 0 do 10 punktów."],
}

ML_GRADE = {
    "zh": ["问题：{text}\n候选答案：{answer}\n\n请判断候选答案是否正确，并给出1到10分的评分及理由。",
           "下面是一道题和一个模型的回答。\n题目：{text}\n回答：{answer}\n请指出错误并打分（满分100）。"],
    "ja": ["問題：{text}\n回答：{answer}\n\nこの回答は正しいですか？10点満点で採点し、理由を述べてください。",
           "以下の問題に対するアシスタントの答えを評価してください。\n{text}\n答え：{answer}\n合格か不合格かを判定してください。"],
    "ko": ["문제: {text}\n답변: {answer}\n\n이 답변이 맞는지 판단하고 1~10점으로 채점한 뒤 이유를 설명하세요.",
           "다음 모델의 응답을 평가하세요.\n질문: {text}\n응답: {answer}\n정확성과 유용성 점수를 매기세요."],
    "de": ["Frage: {text}\nAntwort des Modells: {answer}\n\nIst die Antwort korrekt? Vergib eine Note von 1 bis 10 und begründe sie.",
           "Bewerte die folgende Lösung streng wie ein Prüfer.\nAufgabe: {text}\nLösung: {answer}"],
    "fr": ["Question : {text}\nRéponse proposée : {answer}\n\nLa réponse est-elle correcte ? Donne une note sur 10 et justifie.",
           "Évalue la réponse de l'assistant comme un correcteur exigeant.\nÉnoncé : {text}\nRéponse : {answer}"],
    "es": ["Pregunta: {text}\nRespuesta candidata: {answer}\n\n¿Es correcta? Puntúala del 1 al 10 y explica por qué.",
           "Actúa como examinador y califica esta respuesta.\nEnunciado: {text}\nRespuesta: {answer}"],
    "ru": ["Вопрос: {text}\nОтвет модели: {answer}\n\nВерен ли ответ? Поставь оценку от 1 до 10 и обоснуй её.",
           "Оцени решение как строгий экзаменатор.\nЗадание: {text}\nРешение: {answer}\nЗачёт или незачёт?"],
    "ar": ["السؤال: {text}\nالإجابة المقترحة: {answer}\n\nهل الإجابة صحيحة؟ قيّمها من 1 إلى 10 مع التعليل.",
           "قيّم إجابة المساعد التالية كمصحح صارم.\nالمسألة: {text}\nالإجابة: {answer}"],
    "pt": ["Pergunta: {text}\nResposta do modelo: {answer}\n\nA resposta está correta? Dê uma nota de 1 a 10 e justifique.",
           "Avalie a resposta abaixo como um corretor rigoroso.\nEnunciado: {text}\nResposta: {answer}"],
    "hi": ["प्रश्न: {text}\nमॉडल का उत्तर: {answer}\n\nक्या उत्तर सही है? 1 से 10 के बीच अंक दीजिए और कारण बताइए।",
           "एक सख़्त परीक्षक की तरह इस उत्तर का मूल्यांकन कीजिए।\nप्रश्न: {text}\nउत्तर: {answer}"],
    "it": ["Domanda: {text}\nRisposta proposta: {answer}\n\nLa risposta è corretta? Assegna un voto da 1 a 10 e motivalo."],
    "tr": ["Soru: {text}\nModelin cevabı: {answer}\n\nCevap doğru mu? 1-10 arası puan ver ve gerekçesini yaz."],
    "pl": ["Pytanie: {text}\nOdpowiedź modelu: {answer}\n\nCzy odpowiedź jest poprawna? Oceń ją w skali 1-10 i uzasadnij."],
    "vi": ["Câu hỏi: {text}\nCâu trả lời: {answer}\n\nCâu trả lời có đúng không? Chấm điểm từ 1 đến 10 và giải thích."],
}

# Languages with attack items in the multilingual corpora (their ``group`` starts with the code).
ML_LANGS = ("zh", "ja", "ko", "de", "fr", "es", "ru", "ar", "pt", "hi", "it", "tr", "pl", "vi")


def ml_chat_pools(b):
    """The multilingual chat corpora's opening turns as walkable item pools (free-form
    instructions without any exam format), built once per stream."""
    pools = getattr(b, "_stress_ml_chat_pools", None)
    if pools is None:
        pools = [ms.AttackPool(t.corpus, t.group, [(chain[0], None) for chain in t.chains if chain])
                 for t in b.C.benign_topics if t.corpus.startswith("ml_") and ":" in t.group]
        b._stress_ml_chat_pools = pools
    return pools


@register("ml_campaign")
def gen_ml_campaign(b, name, spec, R):
    """Single-key sweeps over other-language items. ``styles``: sweep (items as they are),
    cot (an elicitation wrapper in the items' language), grading (a rubric in that language),
    capability (items of several languages, each wrapped in its own language). A share
    (``slow_p``) is spread over the week at a person's hours instead of a machine's rate."""
    have = {p.group.split(":", 1)[0] for p in attack_pools(b, prefix="ml_")}
    langs = [lang for lang in spec.get("languages", ML_LANGS) if lang in have]
    for camo in ms.camo_flags(b, R, spec):
        style = wchoice(R, spec.get("styles", [["sweep", 0.25], ["cot", 0.3], ["grading", 0.25],
                                               ["capability", 0.2]]))
        # exam/QA items, or free-form instructions of the chat corpora (no option lists to spot)
        chat = R.random() < spec.get("chat_items_p", 0.0) and bool(ml_chat_pools(b))
        if chat:
            style = "cot" if style == "grading" else style  # a rubric needs an answer to grade
        scen = f"{name}_{style}" + ("_chat" if chat else "") + ("_camo" if camo else "")
        ci = b.new_campaign(scen, camo)
        n = draw_num(R, spec["events"])
        item_pools = ml_chat_pools(b) if chat else attack_pools(b, prefix="ml_")
        item_langs = sorted({p.group.split(":", 1)[0] for p in item_pools} & set(langs))
        key_langs = R.sample(item_langs, min(len(item_langs), R.randint(2, 4))) if style == "capability" \
            else [R.choice(item_langs)]
        recs = walk(R, [p for p in item_pools if p.group.split(":", 1)[0] in key_langs], n,
                    draw_num(R, spec.get("per_group", [20, 200])))
        cot = ML_COT_REWORDED if spec.get("cot_wrappers") == "reworded" else ML_COT
        grade = ML_GRADE_REWORDED if spec.get("grade_wrappers") == "reworded" else ML_GRADE
        templates = []
        for lang in key_langs:
            table = grade if style == "grading" else cot
            pool = table.get(lang, [])
            if style != "sweep" and pool:
                templates += R.sample(pool, min(len(pool), R.randint(1, 3)))
        rate = R.uniform(*spec.get("wrap_rate", [0.6, 1.0]))
        by_lang = {lang: [t for t in templates if t in cot.get(lang, []) + grade.get(lang, [])]
                   for lang in key_langs}

        def wrap(rec, RR, _by_lang=by_lang, _rate=rate):
            # the wrapper is in the item's own language (a capability sweep switches with it)
            lang = rec[2].split(":", 1)[0]
            return wrapper_fn(RR, _by_lang.get(lang, []), _rate, spec.get("out_median", 400.0), b.C.attack)(rec, RR)

        prof, pstyle, model = attack_identity(b, R, spec, camo)
        slow = R.random() < spec.get("slow_p", 0.25)
        if slow:
            times = sorted(b.sample_hours(R, n, b.tz_of(R, prof["cc"]), "casual"))
        else:
            times = ms._sweep_times(b, R, spec, n)
        acc = b.new_account(R, times[0], "benign" if camo else "attack",
                            tier=wchoice(R, spec.get("tiers", [["tier1", 0.5], ["tier2", 0.5]])), org_p=0.05)
        key = b.new_key(scen, "attack", ci, acc, "ml_campaign")
        key.attack_from = times[0] - times[0] % 1000
        system = None
        if R.random() < spec.get("system_p", 0.2) and templates:
            # a system prompt in the campaign's language: its first wording without the item
            system = templates[0].replace("{text}", "").replace("{answer}", "").strip()
        ms._emit_attack_seq(b, R, key, recs, times, wrap, style=pstyle, model=model, prof=prof, system=system,
                            camo=camo, p429=spec.get("p429"))


def ml_topics(b, R, k):
    """Benign topics of the multilingual chat corpora (hard negatives: people who write in
    another language)."""
    pool = [t for t in b.C.benign_topics if t.corpus.startswith("ml_")] or b.C.benign_topics
    return list(dict.fromkeys(R.choices(pool, weights=[len(t.chains) for t in pool], k=k)))


@register("ml_casual")
def gen_ml_casual(b, name, spec, R):
    """Benign users who chat in another language (and a few students who paste exam-like
    questions in it now and then)."""
    exam_pools = attack_pools(b, prefix="ml_")
    for _ in range(b.scaled(spec.get("count", 0))):
        topics = ml_topics(b, R, draw_num(R, spec.get("topics", [1, 2])))
        key, profs, styles, model = ms._casual_key(b, name, spec, R, topics=topics)
        if exam_pools and R.random() < spec.get("exam_p", 0.0):
            # a student pastes a few exam questions of one language, at a person's pace
            pool = R.choice(exam_pools)
            items = [[t] for t, _a in pool.take(R.randint(1, 5), allow_wrap=True)]
            tz = b.tz_of(R, profs[0][0]["cc"])
            times = b.layout_sessions(R, items, tz, "casual", sess_mean=len(items),
                                      think={"median": 90.0, "sigma": 0.8})
            ms.emit_benign_convs(b, R, key, items, times, profs, model, styles, conv_id_p=0.4)


# --------------------------------------------------------------------------- 2. obfuscated

_HOMOGLYPHS = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у", "i": "і", "s": "ѕ",
               "j": "ј", "A": "Α", "B": "Β", "E": "Ε", "H": "Η", "K": "Κ", "M": "Μ", "O": "Ο", "P": "Ρ",
               "T": "Τ", "X": "Χ", "C": "С", "v": "ν", "n": "ո"}
_ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]


def homoglyphs(R, text, p):
    return "".join(_HOMOGLYPHS[ch] if ch in _HOMOGLYPHS and R.random() < p else ch for ch in text)


def zero_width(R, text, p):
    out = []
    for ch in text:
        out.append(ch)
        if ch.isalpha() and R.random() < p:
            out.append(R.choice(_ZERO_WIDTH))
    return "".join(out)


def fullwidth(R, text, p):
    """ASCII letters to their fullwidth forms, word by word (p: share of words)."""
    words = text.split(" ")
    return " ".join("".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in w) if R.random() < p else w
                    for w in words)


def spaced(R, text, p):
    """Words spelled out letter by letter ("s t e p"), p: share of words of 3+ letters."""
    sep = R.choice([" ", " ", ".", "-", " \u200b"])
    gap = R.choice([" ", "  ", " / "])
    return gap.join(sep.join(w) if len(w) >= 3 and w.isalpha() and R.random() < p else w for w in text.split(" "))


_LEET = {"a": "4@", "e": "3", "i": "1!", "o": "0", "s": "5$", "t": "7", "l": "1", "g": "9", "b": "8"}


def leet(R, text, p):
    """Letters to the digits and signs that look like them (p: share of letters that have one)."""
    return "".join(R.choice(_LEET[c.lower()]) if c.lower() in _LEET and R.random() < p else c for c in text)


_SPLITTERS = "-.*_|~^'+"


def split_words(R, text, p):
    """A sign inside words ("rea-son-ing", "st.ep", "expl*ain"), one sign a request, p: share
    of words of 4+ letters, one to two signs each."""
    sign = R.choice(_SPLITTERS)

    def split(word):
        if len(word) < 4 or not word.isalpha() or R.random() >= p:
            return word
        cuts = sorted(R.sample(range(1, len(word)), min(len(word) - 1, R.randint(1, 2))))
        return sign.join(word[i:j] for i, j in zip([0] + cuts, cuts + [len(word)]))

    return " ".join(split(w) for w in text.split(" "))


# Space runs that stay two or more after NFKC (which makes each of these spaces one)
_WIDE_GAPS = ["  ", "   ", "\t", " \t", "\u00a0\u00a0", "\u2003\u2003", " \u3000", "\u2002 \u2009"]


def wide_gaps(R, text, p):
    """Words apart by runs of spaces, tabs or other spaces (``step  by\tstep``), p: share of gaps."""
    return "".join(w + (R.choice(_WIDE_GAPS) if R.random() < p else " ") for w in text.split(" ")).rstrip()


def word_lines(R, text, p):
    """One or two words a line (a blank line between some), p: share of lines of one word."""
    words, lines = text.split(" "), []
    while words:
        take = 1 if R.random() < p else 2
        lines.append(" ".join(words[:take]))
        words = words[take:]
    return "".join(line + ("\n\n" if R.random() < 0.2 else "\n") for line in lines).rstrip()


_GAP_SYMBOLS = ["\U0001f539", "\u2728", "\u2022", "|", "~", "\u25aa", "\U0001f449", "::", "\u00b7\u00b7"]


def symbol_gaps(R, text, p):
    """One sign or emoji between words (``think 🔹 step 🔹 by``), the same one a request, p: share of gaps."""
    sign = R.choice(_GAP_SYMBOLS)
    return " ".join(w + (f" {sign}" if R.random() < p else "") for w in text.split(" "))


_SMALL_CAPS = dict(zip("abcdefghijklmnopqrstuvwxyz", "ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘqʀꜱᴛᴜᴠᴡxʏᴢ"))


def small_caps(R, text, p):
    """Lower-case letters in small capitals, as "fancy text" generators write them, p: share of words."""
    return " ".join("".join(_SMALL_CAPS.get(c, c) for c in w) if R.random() < p else w for w in text.split(" "))


OBFUSCATIONS = {"homoglyph": homoglyphs, "zero_width": zero_width, "fullwidth": fullwidth, "spaced": spaced,
                "leet": leet, "split": split_words, "wide_gaps": wide_gaps, "word_lines": word_lines,
                "symbol_gaps": symbol_gaps, "small_caps": small_caps}
# the methods of a config that names none (stress-obfuscated, written before leet and split)
_FIRST_OBFUSCATIONS = ("fullwidth", "homoglyph", "spaced", "zero_width")


def obfuscate_template(R, template, methods, strength):
    """Obfuscate a wrapper's own words, leaving its {text}/{answer} slots intact."""
    parts = template.replace("{answer}", "\x00answer\x00").replace("{text}", "\x00text\x00").split("\x00")
    out = []
    for part in parts:
        if part in ("text", "answer"):
            out.append("{" + part + "}")
            continue
        for m in methods:
            part = OBFUSCATIONS[m](R, part, strength)
        out.append(part)
    return "".join(out)


@register("obfuscated_campaign")
def gen_obfuscated_campaign(b, name, spec, R):
    """English sweeps whose wrappers are disguised: look-alike letters, zero-width characters,
    fullwidth forms, spaced-out letters, a different mix on every request; some campaigns
    disguise the items too. Single keys and small hydras on separate infrastructure."""
    W = b.cfg["wrappers"]
    extra = spec.get("extra_wrappers", [])
    for camo in ms.camo_flags(b, R, spec):
        methods = sorted(spec.get("methods", _FIRST_OBFUSCATIONS))
        mset = R.sample(methods, R.randint(1, len(methods)))
        scen = name + ("_camo" if camo else "")
        ci = b.new_campaign(scen, camo)
        families = [w for w in spec.get("wrappers", ["cot"]) if W.get(w)]
        allt = [t for f in families for t in W[f]] + extra
        templates = R.sample(allt, min(len(allt), R.randint(1, 4)))
        strength = R.uniform(*spec.get("strength", [0.3, 1.0]))
        rate = R.uniform(*spec.get("wrap_rate", [0.7, 1.0]))
        # items with style of their own (benchmark headers, exemplars) are disguised as well;
        # plain items are disguised now and then
        styled_items = R.random() < spec.get("styled_items_p", 0.3)
        pools = spec_pools(b, spec, "styled_item_corpora" if styled_items else "corpora_names")
        item_p = R.uniform(0.7, 1.0) if styled_items else (spec.get("obfuscate_items_p", 0.3) if R.random() < 0.5 else 0.0)

        def wrap(rec, RR, _t=templates, _m=mset, _s=strength, _ip=item_p, _r=rate):
            text, ans, group = rec
            methods = RR.sample(_m, RR.randint(1, len(_m)))  # a different mix per request
            if _ip and RR.random() < _ip:
                text = OBFUSCATIONS[RR.choice(_m)](RR, text, _s * 0.5)
            if RR.random() >= _r:
                return text, spec.get("out_median", 350.0)
            t = obfuscate_template(RR, RR.choice(_t), methods, _s)
            if "{answer}" in t and not ans:
                ans = ms.synth_answer(RR, b.C.attack)
            return fill(t, text, ans, group), spec.get("out_median", 350.0) * 2.5

        k = draw_num(R, spec.get("keys", [1, 1]))
        n = draw_num(R, spec["events"])
        recs = walk(R, pools, n * k, draw_num(R, spec.get("per_group", [30, 300])))
        for j in range(k):
            prof, pstyle, model = attack_identity(b, R, spec, camo)
            times = ms._sweep_times(b, R, spec, n)
            acc = b.new_account(R, times[0], "benign" if camo else "attack",
                                tier=wchoice(R, spec.get("tiers", [["tier1", 0.5], ["tier2", 0.5]])), org_p=0.0)
            key = b.new_key(scen, "attack", ci, acc, "obfuscated_campaign")
            key.attack_from = times[0] - times[0] % 1000
            ms._emit_attack_seq(b, R, key, recs[j * n:(j + 1) * n], times, wrap, style=pstyle, model=model,
                                prof=prof, system=ms._attack_system(b, R, spec, camo), camo=camo)


# --------------------------------------------------------------------------- 3. fabricated conversations

FILLERS = ["Thanks! Next one:", "Great, thank you. Next:", "Perfect. Now this one:", "ok next", "Good. Another:",
           "Thanks. Here's the next question:", "Nice! Continue with:", "Got it, thanks. Next question:",
           "Awesome. And this one?", "Cool, now:", "Thank you! Moving on:", "Next:", "Alright, following one:",
           "That helps. Now do this:", "Same format please:"]


def _stolen_conv_ids(b, R, n):
    """Conversation ids already used by other (benign) keys of the stream."""
    seen = [e[6] for e in b.events if e[6] and not e[17]]
    return R.sample(seen, min(n, len(seen))) if seen else []


@register("fabricated_conv")
def gen_fabricated_conv(b, name, spec, R):
    """Sweeps that claim to be conversation turns. ``modes``: reused (a handful of ids across
    hundreds of requests, turn index climbing or random), unopened (a fresh id per request or
    per few, turn index > 0, its turn 0 never sent), borrowed (ids of other keys'
    conversations), opened (claims that hold: ``_emit_opened``). Filler like "Thanks! Next
    one:" on a share of requests; claimed history may be reflected in input tokens or not at
    all; timing from ``interval_s``/``cv``."""
    for camo in ms.camo_flags(b, R, spec):
        mode = wchoice(R, spec.get("modes", [["reused", 0.4], ["unopened", 0.4], ["borrowed", 0.2]]))
        scen = f"{name}_{mode}" + ("_camo" if camo else "")
        ci = b.new_campaign(scen, camo)
        n = draw_num(R, spec["events"])
        if "corpora_names" in spec:  # plain items of the corpora named (fabricated-conversations-c)
            recs = walk(R, spec_pools(b, spec), n, draw_num(R, spec.get("per_group", [30, 300])))
        else:
            recs = b.attack_walk(R, n, spec)
        wrap = b.make_wrapper(R, spec)
        if "answer_tokens" in spec:
            wrap = _with_answers(wrap, R.uniform(*spec["answer_tokens"]))
        prof, pstyle, model = attack_identity(b, R, spec, camo)
        times = ms._sweep_times(b, R, spec, n)
        acc = b.new_account(R, times[0], "benign" if camo else "attack",
                            tier=wchoice(R, spec.get("tiers", [["tier1", 0.5], ["tier2", 0.5]])), org_p=0.05)
        key = b.new_key(scen, "attack", ci, acc, "fabricated_conv")
        key.attack_from = times[0] - times[0] % 1000
        filler_p = R.uniform(*spec.get("filler_p", [0.0, 0.9]))
        fillers = R.sample(FILLERS, R.randint(1, 5))
        fake_hist = R.random() < spec.get("fake_history_p", 0.5)
        ids = ["conv_" + hexid(R, 64) for _ in range(R.randint(1, 6))]
        if mode == "borrowed":
            ids = _stolen_conv_ids(b, R, R.randint(3, 40)) or ids
        per_id = R.randint(1, 4)
        turn_climbs = R.random() < 0.5
        ep = b.endpoint(R, prof["kind"])
        system = ms._attack_system(b, R, spec, camo)
        if mode == "opened":
            _emit_opened(b, R, spec, key, recs, times, wrap, fillers, filler_p, pstyle, camo, model, ep, prof, system)
            continue
        for i, (rec, ts) in enumerate(zip(recs, times)):
            p, med = wrap(rec, R)
            if R.random() < filler_p:
                p = R.choice(fillers) + R.choice([" ", "\n", "\n\n"]) + p
            if mode == "unopened":
                if i % per_id == 0:
                    cid = "conv_" + hexid(R, 64)
                turn = R.randint(1, 12) if not turn_climbs else 1 + i % per_id
            else:
                cid = R.choice(ids) if mode == "borrowed" else ids[(i // max(1, n // len(ids))) % len(ids)]
                turn = (i + 1) if turn_climbs else R.randint(1, 40)
            hist = int(turn * R.uniform(150, 600)) if fake_hist else 0
            b.emit(R, key, ts, p, params=b.vary(R, pstyle) if camo else pstyle, model=model, endpoint=ep,
                   client=b.client(R, prof), system=system, conv=cid, turn=turn, attack=True, out_median=med,
                   hist=hist)


def _with_answers(wrap, out_median):
    """``wrap`` with every answer's median length ``out_median`` (a reasoning model answering)."""
    return lambda rec, RR: (wrap(rec, RR)[0], out_median)


def _emit_opened(b, R, spec, key, recs, times, wrap, fillers, filler_p, pstyle, camo, model, ep, prof, system):
    """Mode ``opened`` (written 2026-12-03): claims that hold. The key opens every conversation
    itself (turn 0 sent, no filler), goes on turn by turn for ``conv_turns`` items, and resends
    the whole history each turn as a stateless chat API wants (input tokens grow by every
    earlier turn's prompt and answer): an attacker who read conversation_claims.py.
    ``exact_history`` (fabricated-conversations-d): the history is the previous request and its
    answer, as a chat API counts it (without it, make_stream's accounting: every earlier request
    whole again, the input doubling each turn). ``short_turn_p``: before an item, a person-like
    turn ("why?") on this share of turns, to look like a person's conversation."""
    turn, length, cid, hist = 0, 0, None, 0
    exact, short_p = spec.get("exact_history", False), spec.get("short_turn_p", 0.0)
    emit_args = dict(params=b.vary(R, pstyle) if camo else pstyle, model=model, endpoint=ep, system=system,
                     attack=True)
    for rec, ts in zip(recs, times):
        if turn >= length:
            turn, length, cid, hist = 0, draw_num(R, spec.get("conv_turns", [3, 12])), "conv_" + hexid(R, 64), 0
        p, med = wrap(rec, R)
        if turn and short_p and R.random() < short_p:
            _, used = b.emit(R, key, ts - 1, R.choice(FOLLOW_UPS), client=b.client(R, prof),
                             conv=cid, turn=turn, out_median=med, hist=hist, **emit_args)
            hist, turn = (used if exact else hist + used), turn + 1
        if turn and R.random() < filler_p:
            p = R.choice(fillers) + R.choice([" ", "\n", "\n\n"]) + p
        _, used = b.emit(R, key, ts, p, client=b.client(R, prof), conv=cid, turn=turn, out_median=med, hist=hist,
                         **emit_args)
        hist = used if exact else hist + used
        turn += 1


@register("multi_turn_users")
def gen_multi_turn_users(b, name, spec, R):
    """Benign people in long conversations (follow-ups, human think time): real turns."""
    for _ in range(b.scaled(spec.get("count", 0))):
        ms._casual_key(b, name, spec, R)


# --------------------------------------------------------------------------- 4. content cohort

def _cohort_profile(b, R, spec, taken):
    """A member's own network and client: no /24 or ASN+UA pair another member of its campaign
    used (``taken``, updated). Redrawn until it is new (a few tries; the space is ~1000 pairs)."""
    for _ in range(50):
        prof = b.profile(R, spec.get("asn", {"residential": 0.6, "cloud": 0.2, "hosting": 0.1, "office": 0.1}),
                         spec.get("ua", {"browser": 0.3, "sdk": 0.4, "http": 0.3}), n_ips=R.randint(1, 2))
        marks = {("asn+ua", prof["asn"], prof["ua"])} | {("/24", ip.rsplit(".", 1)[0]) for ip in prof["ips"]
                                                          if "." in ip}
        if not marks & taken:
            break
    taken |= marks
    return prof


def _cohort_item_set(b, R, spec, families, needed):
    """The pools of one item set (a corpus family, in one language when it has several; less
    ``exclude_groups``) with ``needed`` unused records if one has; else one swept again."""
    drop = tuple(spec.get("exclude_groups", ()))
    sets = []
    for family in families:
        # the excluded groups are left out before sizing a set: counted in, they made a set
        # look big enough, and its campaign shrank to its few usable records (one key, seed 34)
        pools = [p for p in attack_pools(b, corpora=[family]) if not (drop and p.group.startswith(drop))]
        if spec.get("one_language", True) and pools and ":" in pools[0].group:
            for lang in sorted({p.group.split(":", 1)[0] for p in pools}):
                sets.append([p for p in pools if p.group.startswith(lang + ":")])
        elif pools:
            sets.append(pools)
    big = [x for x in sets if sum(p.remaining() for p in x) >= needed]
    if big:
        return R.choice(big)
    # Every set large enough was swept by earlier campaigns: sweep one again from its start (two
    # campaigns on one public set), rather than keep the set's leftovers, which would shrink the
    # campaign to a few keys (a one-key "cohort" no cohort detector can find).
    whole = max(sets, key=lambda x: sum(len(p.recs) for p in x))
    if sum(len(p.recs) for p in whole) >= needed:
        for p in whole:
            p.pos, p.wraps = 0, p.wraps + 1
        return whole
    return max(sets, key=lambda x: sum(p.remaining() for p in x))


@register("content_cohort")
def gen_content_cohort(b, name, spec, R):
    """Many young keys that share nothing but content: each its own account, payment method,
    network and client, enrolled hours apart over days, each sending 10-40 requests that are
    a disjoint slice of one item set (one corpus family). Member timing is independent:
    human-like sessions or a short automated run, never in lockstep with the others."""
    families = spec.get("families") or sorted({p.corpus for p in b.C.attack})
    for camo in ms.camo_flags(b, R, spec):
        styled = R.random() < spec.get("styled_p", 0.5)
        scen = name + ("_styled" if styled else "_plain") + ("_camo" if camo else "")
        ci = b.new_campaign(scen, camo)
        k = draw_num(R, spec["keys"])
        sizes = [draw_num(R, spec["events"]) for _ in range(k)]
        pools = _cohort_item_set(b, R, spec, families if styled else spec.get("plain_families", families), sum(sizes))
        # the slices are disjoint: a set smaller than the sweep gets fewer members, not repeats
        left = sum(p.remaining() for p in pools)
        while sum(sizes) > left and len(sizes) > 1:
            sizes.pop()
        recs = walk(R, pools, sum(sizes), draw_num(R, spec.get("per_group", [50, 500])))
        if R.random() < spec.get("shuffle_p", 0.5):
            R.shuffle(recs)  # slices are disjoint either way; chunked or scattered over the set
        wrap = b.make_wrapper(R, dict(spec, wrap_p=1.0 if styled else 0.0))
        span_days = R.uniform(*spec.get("enrol_days", [1.0, 5.0]))
        t_start = b.t0 + int(R.uniform(0, max(0.1, b.days - span_days - 1)) * DAY_MS)
        enrol = sorted(t_start + int(R.random() * span_days * DAY_MS) for _ in range(k))
        pos = 0
        taken: set = set()
        for size, t_en in zip(sizes, enrol):
            mine = recs[pos:pos + size]
            pos += size
            prof = _cohort_profile(b, R, spec, taken)
            if R.random() < spec.get("automated_p", 0.5):
                interval = math.exp(R.uniform(math.log(2.0), math.log(90.0)))
                times = b.automated_times(R, size, t_en, interval, R.uniform(0.2, 1.0))
            else:
                tz = b.tz_of(R, prof["cc"])
                lo = (t_en - b.t0) / DAY_MS
                times = sorted(x[0] for x in b.layout_sessions(R, [[r] for r in mine], tz, "casual", lo,
                                                                min(b.days, lo + R.uniform(0.3, 2.0)),
                                                                R.uniform(3, 15),
                                                                think={"median": R.uniform(20, 120), "sigma": 0.7})
                               if x)
            if not times:
                continue
            acc = young_account(b, R, times[0], spec)
            key = b.new_key(scen, "attack", ci, acc, "content_cohort")
            key.attack_from = times[0] - times[0] % 1000
            if camo or R.random() < 0.5:
                pstyle, model = b.benign_style(R, prof["kind"]), b.pick_model(R, "benign")
            else:
                pstyle, model = b.attack_style(R), b.pick_model(R, "attack")
            ms._emit_attack_seq(b, R, key, mine[:len(times)], times, wrap, style=pstyle, model=model, prof=prof,
                                system=None, camo=True)


# --------------------------------------------------------------------------- 5. harvest without wording

@register("harvest_plain")
def gen_harvest_plain(b, name, spec, R):
    """Single keys sweeping free-form problems as they are (no wrapper, no system prompt, no
    conversation), at machine rate, with long answers: a reasoning model returns its
    reasoning unasked."""
    pools_all = spec_pools(b, spec)
    for camo in ms.camo_flags(b, R, spec):
        scen = name + ("_camo" if camo else "")
        ci = b.new_campaign(scen, camo)
        n = draw_num(R, spec["events"])
        corpora = sorted({p.corpus for p in pools_all})
        chosen = R.sample(corpora, min(len(corpora), R.randint(1, 2)))
        recs = walk(R, [p for p in pools_all if p.corpus in chosen], n, draw_num(R, spec.get("per_group", [20, 300])),
                    spill=pools_all)
        out_median = R.uniform(*spec.get("answer_tokens", [700.0, 3000.0]))
        prof, pstyle, model = attack_identity(b, R, spec, camo)
        pstyle = dict(pstyle, max_tokens=max(pstyle.get("max_tokens") or 0, R.choice([8192, 16000, 32000])))
        model = R.choice(spec.get("reasoning_models", [model]))
        times = ms._sweep_times(b, R, spec, n)
        acc = b.new_account(R, times[0], "benign" if camo else "attack",
                            tier=wchoice(R, spec.get("tiers", [["tier2", 0.5], ["tier3", 0.5]])), org_p=0.05)
        key = b.new_key(scen, "attack", ci, acc, "harvest_plain")
        key.attack_from = times[0] - times[0] % 1000
        ep = b.endpoint(R, prof["kind"])
        for (text, _ans, _g), ts in zip(recs, times):
            b.emit(R, key, ts, text, params=b.vary(R, pstyle) if camo else pstyle, model=model, endpoint=ep,
                   client=b.client(R, prof), conv=None, attack=True, out_median=out_median)


# --------------------------------------------------------------------------- 6. products (hard negatives)

TUTOR_SYSTEMS = [
    "You are StudyBuddy, a patient tutor for high-school students. Explain step by step and check understanding.",
    "You are a homework helper. Always explain your reasoning step by step so the student can learn the method.",
    "Tutor mode: break every solution into clear numbered steps, then summarise the key idea in one sentence.",
]
TUTOR_TEMPLATES = ["Explain step by step: {text}", "A student asks: {text}\n\nExplain the solution step by step.",
                   "{text}\n\n(Explain step by step for a student.)", "Help me understand this step by step: {text}"]
FOLLOW_UPS = ["why?", "I don't get the second step", "can you explain that again more simply?", "what about b)?",
              "is there a faster way?", "thanks!! and the next one?", "wait why did you divide there",
              "can u give another example", "so the answer is C?", "how do I remember this for the test",
              "ok that makes sense", "what does that word mean", "could you check my answer: 42",
              "my teacher did it differently", "explain like I'm 12", "and if the number was negative?"]


# Tutoring apps of other languages (written 2026-12-07 for product-negatives-j, not taken from
# any cue list): (system prompts, templates, students' follow-ups) of a homework app in each.
ML_TUTOR = {
    "de": (["Du bist Lernfreund, ein geduldiger Nachhilfelehrer. Erkläre jede Lösung Schritt für Schritt.",
            "Du hilfst Schülern bei den Hausaufgaben. Zeige immer den Rechenweg, damit sie die Methode lernen."],
           ["Erkläre mir Schritt für Schritt: {text}",
            "{text}\n\n(Bitte Schritt für Schritt für einen Schüler erklären.)"],
           ["warum?", "den zweiten Schritt verstehe ich nicht", "kannst du das einfacher erklären?", "und bei b)?",
            "danke!! und die nächste?", "also ist die Antwort C?", "wie merke ich mir das für die Klausur",
            "meine Lehrerin hat das anders gemacht", "was heißt das Wort", "ok, verstanden"]),
    "pl": (["Jesteś cierpliwym korepetytorem dla uczniów liceum. Wyjaśniaj każde rozwiązanie krok po kroku.",
            "Pomagasz uczniom w pracy domowej. Zawsze pokazuj tok rozumowania, żeby nauczyli się metody."],
           ["Wyjaśnij mi krok po kroku: {text}", "{text}\n\n(Wytłumacz to krok po kroku dla ucznia.)"],
           ["dlaczego?", "nie rozumiem drugiego kroku", "możesz prościej?", "a w b)?", "dzięki!! a następne?",
            "czyli odpowiedź to C?", "jak to zapamiętać na sprawdzian", "pani robiła to inaczej", "ok, rozumiem"]),
    "tr": (["Sen sabırlı bir özel öğretmensin. Her çözümü adım adım açıkla.",
            "Öğrencilere ödevlerinde yardım ediyorsun. Yöntemi öğrenmeleri için her zaman çözüm yolunu göster."],
           ["Bunu adım adım açıklar mısın: {text}", "{text}\n\n(Bir öğrenci için adım adım açıkla.)"],
           ["neden?", "ikinci adımı anlamadım", "daha basit anlatır mısın?", "peki b şıkkı?", "teşekkürler! sıradaki?",
            "yani cevap C mi?", "sınav için bunu nasıl hatırlarım", "öğretmenim farklı yaptı", "tamam anladım"]),
    "vi": (["Bạn là gia sư kiên nhẫn cho học sinh cấp ba. Hãy giải thích từng bước mọi lời giải.",
            "Bạn giúp học sinh làm bài tập về nhà. Luôn trình bày cách làm để các em học được phương pháp."],
           ["Giải thích từng bước giúp mình: {text}", "{text}\n\n(Giải thích từng bước cho học sinh.)"],
           ["tại sao?", "mình không hiểu bước hai", "giải thích đơn giản hơn được không?", "còn câu b?",
            "cảm ơn! câu tiếp theo?", "vậy đáp án là C à?", "làm sao nhớ cái này để thi", "ok mình hiểu rồi"]),
    "ja": (["あなたは高校生のための優しい家庭教師です。解き方を一歩ずつ説明してください。",
            "宿題を手伝うアシスタントです。生徒が方法を学べるよう、必ず考え方の手順を示してください。"],
           ["この問題を順を追って説明してください：{text}", "{text}\n\n（生徒向けに一つずつ解説してください）"],
           ["なんで？", "二つ目のところがわからない", "もっと簡単に説明して", "じゃあbは？", "ありがとう！次の問題は？",
            "つまり答えはC？", "テストのためにどう覚えればいい？", "先生のやり方と違う", "わかった"]),
    "zh": (["你是一位耐心的中学辅导老师。请一步一步讲解每道题的解法。",
            "你是作业辅导助手。总是写出解题思路，让学生学会方法。"],
           ["请一步步给我讲讲这道题：{text}", "{text}\n\n（请为学生逐步讲解）"],
           ["为什么？", "第二步没看懂", "能讲得简单点吗？", "那b呢？", "谢谢！下一题呢？", "所以答案是C吗？",
            "考试的时候怎么记住这个", "老师的做法不一样", "好的懂了"]),
    "pt": (["Você é um tutor paciente para alunos do ensino médio. Explique cada solução passo a passo.",
            "Você ajuda alunos com a lição de casa. Sempre mostre o raciocínio para que aprendam o método."],
           ["Me explica passo a passo: {text}", "{text}\n\n(Explique passo a passo para um aluno.)"],
           ["por quê?", "não entendi o segundo passo", "pode explicar mais simples?", "e a b)?", "valeu! e a próxima?",
            "então a resposta é C?", "como eu decoro isso pra prova", "a professora fez diferente", "ok entendi"]),
    "ru": (["Ты терпеливый репетитор для школьников. Объясняй каждое решение шаг за шагом.",
            "Ты помогаешь ученикам с домашним заданием. Всегда показывай ход решения, чтобы они поняли метод."],
           ["Объясни по шагам: {text}", "{text}\n\n(Объясни пошагово для ученика.)"],
           ["почему?", "не понял второй шаг", "можешь объяснить проще?", "а в б)?", "спасибо! а следующая?",
            "значит ответ C?", "как это запомнить к контрольной", "учительница решала по-другому", "понятно"]),
}


def tutor_frame(lang: str | None = None):
    """(system prompts, templates, follow-ups) of a tutoring app in ``lang`` (``ML_TUTOR``), the
    English ones (``TUTOR_SYSTEMS``, ``TUTOR_TEMPLATES``, ``FOLLOW_UPS``) for any other."""
    return ML_TUTOR.get(lang, (TUTOR_SYSTEMS, TUTOR_TEMPLATES, FOLLOW_UPS))

def _short_question(R, text):
    """The first line of an item, cut at a word near 60-300 characters: what a student types."""
    line = text.strip().split("\n", 1)[0]
    cut = line.rfind(" ", 0, R.randint(60, 300))
    return line if len(line) <= 300 or cut <= 0 else line[:cut] + "?"


@register("homework_app")
def gen_homework_app(b, name, spec, R):
    """A homework-help app: one or a few keys of a mature verified account, a fixed tutoring
    wrapper (system prompt or template) around many distinct students' short questions, with
    real follow-ups at human pace (each student's conversation on its own id). ``next_question_p``:
    the share of follow-ups that are the worksheet's next item pasted into the same conversation
    (wrapped by the app's template, as every question the student asks). ``languages``: each app
    is a tutoring app of one of these languages (``ML_TUTOR``: its frame and its students'
    follow-ups in that language, questions from that language's item groups)."""
    for _ in range(b.scaled(spec.get("count", 0))):
        acc = b.new_account(R, b.t0, "benign", tier=wchoice(R, [["tier3", 0.5], ["tier4", 0.5]]), org_p=1.0,
                            created=b.t0 - int(R.uniform(120, 900) * DAY_MS))
        n_keys = R.randint(1, spec.get("max_keys", 3))
        use_system = R.random() < 0.5
        # (no draw without ``languages``: older streams unchanged)
        lang = R.choice(spec["languages"]) if spec.get("languages") else None
        systems, templates, follow_ups = tutor_frame(lang)
        pools = spec_pools(b, spec, "question_corpora") or b.C.attack
        if lang:
            pools = [p for p in pools if p.group.split(":", 1)[0] == lang] or attack_pools(b, langs=[lang])
        system = R.choice(systems) if use_system else None
        template = None if use_system else R.choice(templates)
        ips, ua = product_backend(b, R)
        model = wchoice(R, [["frontier-3-haiku", 0.5], ["frontier-3-sonnet", 0.5]])
        pstyle = {"max_tokens": R.choice([1024, 2048]), "temperature": R.choice([0.3, 0.5, 0.7]), "stream": True,
                  "tools": 0}
        for _k in range(n_keys):
            key = b.new_key(name, "benign", None, acc, "homework_app")
            students = draw_num(R, spec.get("students", [150, 500]))
            for _s in range(students):
                cc = wchoice(R, {c: v[1] for c, v in b.cfg["countries"].items()})
                tz = b.tz_of(R, cc)
                q = R.randint(1, 4)
                pool = R.choice(pools)
                items = [t for t, _a in pool.take(q, allow_wrap=True)]
                convs, asked_of = [], []  # each conversation's turns, and which of them are questions
                next_question_p = spec.get("next_question_p", 0.0)
                for text in items:
                    # a student's question: a short one, or an item pasted from the worksheet
                    turns = [_short_question(R, text) if R.random() < 0.5 else text]
                    asked = [True]
                    while R.random() < spec.get("follow_up_p", 0.55) and len(turns) < 6:
                        if next_question_p and R.random() < next_question_p:
                            # the worksheet's next item pasted into the same conversation
                            turns.append(pool.take(1, allow_wrap=True)[0][0])
                            asked.append(True)
                        else:
                            turns.append(R.choice(follow_ups))
                            asked.append(False)
                    convs.append(turns)
                    asked_of.append(asked)
                times = b.layout_sessions(R, convs, tz, "casual", sess_mean=2.0,
                                          think={"median": 40.0, "sigma": 0.8})
                ip, asn, acc_cc = R.choice(ips)
                for turns, tl, asked in zip(convs, times, asked_of):
                    cid = "conv_" + hexid(R, 64)
                    hist = 0
                    for ti, (text, ts) in enumerate(zip(turns, tl)):
                        # the app wraps every question the student asks, the first or a next one
                        prompt = fill(template, text) if template and asked[ti] else text
                        _, used = b.emit(R, key, ts, prompt, params=pstyle, model=model, endpoint="/v1/messages",
                                         client=(ip, ua, asn, acc_cc), system=system, conv=cid, turn=ti,
                                         out_median=R.uniform(250, 600), hist=hist)
                        hist += used


EVAL_WRAPPERS = ["{text}\n\nAnswer with the letter of the correct option only.", "Question: {text}\nAnswer:",
                 "{text}", "{text}\n\nRespond with just the final answer."]
# Chain-of-thought evaluations (an eval harness's CoT prompts): the model reasons before its
# answer, so the answers are long, as a harvest's are.
EVAL_COT_WRAPPERS = ["{text}\n\nThink step by step, then give the final answer on the last line as 'Answer: X'.",
                     "Question: {text}\nLet's think step by step.",
                     "Solve the following problem. Show your reasoning, then state the final answer.\n\n{text}",
                     "{text}\n\nExplain your reasoning briefly before answering. Format:\nReasoning: ...\nAnswer: ..."]


EDITS = ["make the {} paragraph shorter and more formal, and keep the part about the {}",
         "rewrite the {} paragraph for a general reader and explain what the {} means",
         "add a sentence about the {} after the {} paragraph and fix the tone throughout",
         "turn the {} part into a bulleted list and move the {} to the end",
         "can you make the whole thing sound friendlier and cut the bit about the {} and the {}",
         "now translate the {} paragraph into plain English and keep the numbers about the {}",
         "merge the {} and the {} paragraphs and give it a better title"]
EDIT_WORDS = ["first", "second", "third", "last", "opening", "closing", "budget", "deadline", "results", "method",
              "team", "customer", "price", "schedule", "summary", "risks"]
THANKS = ["thanks", "perfect", "great, thank you", "ok", "looks good"]


@register("editor_app")
def gen_editor_app(b, name, spec, R):
    """A writing assistant (written 2026-12-03 after the person-share rule of conversation claims,
    to test it as a hard negative, not used for tuning): a mature account's keys, each many users
    who paste a text and then ask for edits in sentences of their own ("make the second
    paragraph shorter and more formal, and keep the part about the budget": 8-12 content words),
    rarely a short turn (``short_p``), each answered with the whole text rewritten (long
    answers), at a person's pace, history resent as a chat API wants. Follow-ups that are not a
    person's short ones, new requests of 6+ words with long answers: what the new-item rule
    looks for."""
    for _ in range(b.scaled(spec.get("count", 0))):
        acc = b.new_account(R, b.t0, "benign", tier=wchoice(R, [["tier3", 0.5], ["tier4", 0.5]]), org_p=1.0,
                            created=b.t0 - int(R.uniform(60, 900) * DAY_MS))
        pools = spec_pools(b, spec, "material_corpora") or b.C.attack
        ips, ua = product_backend(b, R)
        model = wchoice(R, [["frontier-3-haiku", 0.5], ["frontier-3-sonnet", 0.5]])
        system = "You are a careful editor. Apply the user's requested edits to their text and return the full revised text."
        pstyle = {"max_tokens": 4096, "temperature": 0.7, "stream": True, "tools": 0}
        for _k in range(R.randint(1, spec.get("max_keys", 3))):
            key = b.new_key(name, "benign", None, acc, "editor_app")
            for _u in range(draw_num(R, spec.get("users", [80, 250]))):
                cc = wchoice(R, {c: v[1] for c, v in b.cfg["countries"].items()})
                pool = R.choice(pools)
                convs = []
                for _c in range(R.randint(1, 3)):
                    material = "\n\n".join(t for t, _a in pool.take(R.randint(2, 4), allow_wrap=True))
                    turns = [R.choice(["Please edit this:\n\n", "Here is my draft:\n\n", ""]) + material]
                    while len(turns) < 8 and R.random() < spec.get("follow_up_p", 0.75):
                        if R.random() < spec.get("short_p", 0.08):
                            turns.append(R.choice(THANKS))
                        else:
                            edit = R.choice(EDITS)
                            turns.append(edit.format(*R.sample(EDIT_WORDS, edit.count("{}"))))
                    convs.append(turns)
                times = b.layout_sessions(R, convs, b.tz_of(R, cc), "casual", sess_mean=2.0,
                                          think={"median": 60.0, "sigma": 0.8})
                ip, asn, acc_cc = R.choice(ips)
                for turns, tl in zip(convs, times):
                    cid, hist, size = "conv_" + hexid(R, 64), 0, max(200.0, len(turns[0]) / 4 * R.uniform(0.9, 1.3))
                    for ti, (text, ts) in enumerate(zip(turns, tl)):
                        _, used = b.emit(R, key, ts, text, params=pstyle, model=model, endpoint="/v1/messages",
                                         client=(ip, ua, asn, acc_cc), system=system, conv=cid, turn=ti,
                                         out_median=size if text not in THANKS else 40.0, hist=hist)
                        hist = used  # the previous request and its answer: what a chat API resends


GRADER_SYSTEMS = [
    "You help teachers grade coursework. Grade strictly by the rubric you are given and be fair to the student.",
    "You are MarkMate, an assistant that drafts marks and feedback for teachers. A teacher reviews every mark.",
    None,
]
GRADER_TEMPLATES = [
    "Assignment question:\n{question}\n\nRubric:\n{rubric}\n\nStudent answer:\n{answer}\n\n"
    "Give a score from 0 to {top} and a short justification. Format:\nScore: <n>\nFeedback: <two sentences>",
    "Grade the student's response.\nQuestion: {question}\nModel answer: {reference}\nStudent response: {answer}\n"
    "Is the response correct? Award marks out of {top} and explain what is missing.",
    "Evaluate this submission against the marking scheme below and write feedback the student can act on.\n\n"
    "Marking scheme: {rubric}\n\nTask: {question}\n\nSubmission:\n{answer}\n\nMark (out of {top}):",
    "Bewerte die Antwort des Schülers anhand des Bewertungsschemas.\nAufgabe: {question}\nSchema: {rubric}\n"
    "Antwort: {answer}\nGib Punkte von 0 bis {top} und eine kurze Begründung.",
    "Corrige la réponse de l'élève selon le barème.\nQuestion : {question}\nBarème : {rubric}\n"
    "Réponse de l'élève : {answer}\nDonne une note sur {top} et un commentaire de deux phrases.",
]
RUBRICS = ["correct method (4), correct result (3), clear explanation (3)",
           "identifies the main idea (2), supports it with evidence (4), organisation (2), language (2)",
           "accuracy (5), completeness (3), use of subject vocabulary (2)",
           "full marks only for a correct answer with working; half marks for a correct method",
           "content 50 %, structure 25 %, spelling and grammar 25 %"]
STUDENT_OPENINGS = ["", "", "I think ", "The answer is ", "In my opinion ", "So basically ", "first of all ",
                    "Answer: ", "my answer: "]


def _student_answer(b, R, question, reference):
    """What a student hands in for one question: the reference answer or part of the question's
    own wording, in their own words (cut, a typo, a stray sentence of something else)."""
    parts = []
    if reference and R.random() < 0.6:
        parts.append(reference[: R.randint(20, 600)])
    else:
        words = question.split()
        R.shuffle(words)
        parts.append(" ".join(words[: R.randint(5, 40)]))
    if R.random() < 0.5:
        parts.append(b.fragment(R)[: R.randint(40, 500)])
    text = R.choice(STUDENT_OPENINGS) + " ".join(parts)
    return b.vary_text(R, text) if R.random() < 0.5 else text


@register("grading_app")
def gen_grading_app(b, name, spec, R):
    """An auto-grading product for schools (written 2026-12-05 as a hard negative, not used for
    tuning): a mature verified account with 1-3 keys, each serving many teachers; a teacher grades
    a class at once, so each batch is one assignment's question and rubric around 15-120
    students' answers, sent by the app one after another at machine rate (0.5-4 s), temperature
    0-0.2, a score and feedback back (150-400 tokens). Its prompts carry every grading word
    ("grade", "rubric", "score", "marks out of 10", "evaluate this submission") that the rubric
    harvests of the judging streams carry; what they lack is breadth: a batch asks one question
    many times over, and a teacher grades a few assignments a week."""
    for _ in range(b.scaled(spec.get("count", 0))):
        acc = b.new_account(R, b.t0, "benign", tier=wchoice(R, [["tier3", 0.4], ["tier4", 0.4], ["enterprise", 0.2]]),
                            org_p=1.0, created=b.t0 - int(R.uniform(150, 1200) * DAY_MS))
        system = R.choice(GRADER_SYSTEMS)
        template = R.choice(GRADER_TEMPLATES)
        pools = spec_pools(b, spec, "question_corpora") or b.C.attack
        ips, ua = product_backend(b, R, (1, 4))
        model = wchoice(R, [["frontier-3-haiku", 0.5], ["frontier-3-sonnet", 0.5]])
        style = {"max_tokens": R.choice([512, 1024]), "temperature": R.choice([0.0, 0.0, 0.2]), "stream": False,
                 "tools": 0}
        out_median = R.uniform(150, 400)
        for _k in range(R.randint(1, spec.get("max_keys", 3))):
            key = b.new_key(name, "benign", None, acc, "grading_app")
            for _t in range(draw_num(R, spec.get("teachers", [5, 25]))):
                tz = b.tz_of(R, wchoice(R, {c: v[1] for c, v in b.cfg["countries"].items()}))
                rubric, top = R.choice(RUBRICS), R.choice([5, 10, 10, 20])
                for _batch in range(draw_num(R, spec.get("batches", [1, 4]))):
                    pool = R.choice(pools)
                    (question, reference), = pool.take(1, allow_wrap=True)
                    students = draw_num(R, spec.get("students", [15, 120]))
                    start = b.sample_hours(R, 1, tz, "work", 0, b.days - 0.2)[0]
                    times = b.automated_times(R, students, start, R.uniform(0.5, 4.0), R.uniform(0.2, 0.6))
                    ip, asn, cc = R.choice(ips)
                    for ts in times:
                        prompt = (template.replace("{question}", question).replace("{rubric}", rubric)
                                  .replace("{reference}", reference or "(none given)").replace("{top}", str(top))
                                  .replace("{answer}", _student_answer(b, R, question, reference)))
                        b.emit(R, key, ts, prompt, params=style, model=model, endpoint="/v1/messages",
                               client=(ip, ua, asn, cc), system=system, out_median=out_median)


QUIZ_SYSTEMS = [
    "You are QuizForge, an assistant that writes quizzes for teachers. Return JSON: a list of objects with "
    "question, options, answer and explanation.",
    "You write classroom quizzes and worksheets. Questions must be age-appropriate and factually correct.",
    None,
]
# A quiz maker's templates: the teacher's topic (or a pasted lesson text), a count, a kind and a
# level, in the teacher's language. Every one asks to generate numbered questions with answers and
# explanations: what a dataset-generation sweep asks for.
QUIZ_TEMPLATES = [
    "Generate {n} multiple-choice questions about {topic} for {level} students. Give four options for each, "
    "mark the correct answer and add a one-sentence explanation.",
    "Create a quiz of {n} questions on the topic \"{topic}\" ({level}). Mix multiple choice and short answer. "
    "Include an answer key with explanations.",
    "Write {n} flashcards (question on the front, answer on the back) to help {level} students revise {topic}.",
    "Make {n} true/false questions with explanations from this lesson text for {level} students:\n\n{material}",
    "Create {n} comprehension questions with model answers based on the following text ({level}):\n\n{material}",
    "Erstelle {n} Multiple-Choice-Fragen zum Thema {topic} für Schüler der {level_de}. Gib jeweils vier "
    "Antwortmöglichkeiten, markiere die richtige und erkläre sie in einem Satz.",
    "Crée un quiz de {n} questions sur « {topic} » pour des élèves de {level_fr}, avec le corrigé et une courte "
    "explication pour chaque réponse.",
    "Genera {n} preguntas de opción múltiple sobre {topic} para alumnos de {level_es}, con la respuesta correcta "
    "y una breve explicación.",
]
QUIZ_TOPICS = [
    "photosynthesis", "the water cycle", "the French Revolution", "fractions", "the solar system", "World War I",
    "cell division", "the Roman Empire", "plate tectonics", "linear equations", "the human heart", "electricity",
    "the Industrial Revolution", "ecosystems and food chains", "the periodic table", "Shakespeare's Macbeth",
    "climate change", "ancient Egypt", "probability", "the American Civil War", "volcanoes", "DNA and genes",
    "the causes of World War II", "Pythagoras' theorem", "renewable energy", "the digestive system",
    "the Cold War", "acids and bases", "weather and climate", "the Renaissance", "magnetism", "percentages",
    "the rainforest", "the Tudors", "forces and motion", "verb tenses", "the Great Depression", "simple machines",
    "the immune system", "the European Union", "area and perimeter", "light and sound", "the Aztecs",
    "chemical reactions", "the Silk Road", "rocks and minerals", "quadratic equations", "the nervous system",
    "Die Weimarer Republik", "die Photosynthese", "la Révolution française", "le cycle de l'eau",
    "la Segunda Guerra Mundial", "el sistema solar", "Bruchrechnung", "les fractions", "las fracciones",
]
QUIZ_LEVELS = ["grade 5", "grade 7", "grade 8", "year 9", "high-school", "GCSE", "middle-school", "A-level",
               "first-year university", "grade 10"]
QUIZ_FOLLOW_UPS = ["make them a bit harder", "add 5 more questions", "now only the answer key please",
                   "can you make question 3 less ambiguous", "shorter explanations please",
                   "translate the quiz into Spanish", "make it suitable for younger students",
                   "replace the true/false ones with multiple choice", "thanks, perfect", "mehr Fragen bitte",
                   "plus difficile s'il te plaît"]


@register("quiz_app")
def gen_quiz_app(b, name, spec, R):
    """A quiz and worksheet maker for teachers (written 2026-12-05 as a hard negative, not used for
    tuning): a mature verified account's keys, each serving many teachers at work hours; a request
    is the app's template around a teacher's topic or a pasted lesson text ("Generate 10
    multiple-choice questions about photosynthesis for grade 7 students ... with explanations"),
    answered with the whole quiz (600-2,500 tokens); popular topics come back from many teachers;
    now and then the teacher asks for changes in the same conversation ("make them a bit harder").
    Its prompts ask for what a dataset-generation sweep asks for: numbered questions with answers
    and explanations, many times a day."""
    for _ in range(b.scaled(spec.get("count", 0))):
        acc = b.new_account(R, b.t0, "benign", tier=wchoice(R, [["tier3", 0.4], ["tier4", 0.4], ["enterprise", 0.2]]),
                            org_p=1.0, created=b.t0 - int(R.uniform(100, 1200) * DAY_MS))
        system = R.choice(QUIZ_SYSTEMS)
        templates = R.sample(QUIZ_TEMPLATES, R.randint(3, len(QUIZ_TEMPLATES)))
        ips, ua = product_backend(b, R, (1, 4))
        model = wchoice(R, [["frontier-3-haiku", 0.4], ["frontier-3-sonnet", 0.6]])
        style = {"max_tokens": R.choice([4096, 8192]), "temperature": R.choice([0.7, 0.8, 1.0]), "stream": True,
                 "tools": 0}
        for _k in range(R.randint(1, spec.get("max_keys", 3))):
            key = b.new_key(name, "benign", None, acc, "quiz_app")
            for _t in range(draw_num(R, spec.get("teachers", [30, 150]))):
                cc = wchoice(R, {c: v[1] for c, v in b.cfg["countries"].items()})
                convs = []
                for _q in range(draw_num(R, spec.get("quizzes", [1, 6]))):
                    level = R.choice(QUIZ_LEVELS)
                    prompt = R.choice(templates).format(
                        n=R.choice([5, 8, 10, 10, 12, 15, 20]), topic=R.choice(QUIZ_TOPICS), level=level,
                        level_de=R.choice(["7. Klasse", "9. Klasse", "Oberstufe"]),
                        level_fr=R.choice(["4e", "3e", "seconde"]), level_es=R.choice(["ESO", "bachillerato"]),
                        material=b.fragment(R)[: R.randint(300, 1500)])
                    turns = [prompt]
                    while len(turns) < 4 and R.random() < spec.get("follow_up_p", 0.3):
                        turns.append(R.choice(QUIZ_FOLLOW_UPS))
                    convs.append(turns)
                times = b.layout_sessions(R, convs, b.tz_of(R, cc), "work", sess_mean=1.5,
                                          think={"median": 90.0, "sigma": 0.8})
                ip, asn, acc_cc = R.choice(ips)
                for turns, tl in zip(convs, times):
                    cid, hist = "conv_" + hexid(R, 64), 0
                    for ti, (text, ts) in enumerate(zip(turns, tl)):
                        _, used = b.emit(R, key, ts, text, params=style, model=model, endpoint="/v1/messages",
                                         client=(ip, ua, asn, acc_cc), system=system, conv=cid, turn=ti,
                                         out_median=R.uniform(600, 2500) if ti == 0 else R.uniform(300, 2000),
                                         hist=hist)
                        hist = used  # the previous request and its answer, as a chat API resends


@register("eval_company")
def gen_eval_company(b, name, spec, R):
    """An evaluation company: one benchmark item set re-run across several models on several
    days from an old verified account (enterprise tier, an org), at machine rate, temperature 0.
    ``cot_p``: the share of companies whose harness asks for reasoning before the answer
    (``EVAL_COT_WRAPPERS``, answers of ``cot_out`` tokens); default 0, the letter only."""
    for _ in range(b.scaled(spec.get("count", 0))):
        acc = b.new_account(R, b.t0, "benign", tier=wchoice(R, [["tier4", 0.5], ["enterprise", 0.5]]), org_p=1.0,
                            created=b.t0 - int(R.uniform(300, 1500) * DAY_MS))
        key = b.new_key(name, "benign", None, acc, "eval_company")
        fam = R.choice(spec.get("families") or sorted({p.corpus for p in b.C.attack}))
        pools = attack_pools(b, corpora=[fam])
        pool = R.choice(pools)
        size = draw_num(R, spec.get("items", [150, 600]))
        items = [t for t, _a in pool.recs[:size]]  # the same fixed set every run (not consumed)
        cot = spec.get("cot_p", 0.0) > 0 and R.random() < spec["cot_p"]  # (no draw without it: older streams unchanged)
        template = R.choice(EVAL_COT_WRAPPERS if cot else EVAL_WRAPPERS)
        out_median = R.uniform(*spec.get("cot_out", [300.0, 900.0])) if cot else 20.0
        models = R.sample([m for m, _w in b.cfg["models"]["benign"]] + [b.cfg["models"]["new_model"]],
                          R.randint(2, 4))
        prof = b.profile(R, {"cloud": 0.6, "office": 0.4}, {"sdk": 0.7, "http": 0.3}, n_ips=1)
        tz = b.tz_of(R, prof["cc"])
        runs = draw_num(R, spec.get("runs", [3, 6]))
        days = sorted(R.sample(range(int(b.days)), min(int(b.days), runs)))
        style = {"max_tokens": R.choice([1024, 2048, 4096] if cot else [16, 64, 512]), "temperature": 0.0,
                 "stream": False, "tools": 0}
        for day in days:
            for model in R.sample(models, R.randint(1, len(models))):
                start = b.sample_hours(R, 1, tz, "work", day, day + 1)[0]
                times = b.automated_times(R, len(items), start, R.uniform(0.5, 4.0), R.uniform(0.1, 0.4),
                                          end=b.t0 + (day + 1) * DAY_MS + 6 * HOUR_MS)
                for text, ts in zip(items, times):
                    b.emit(R, key, ts, fill(template, text), params=style, model=model,
                           endpoint=b.endpoint(R, prof["kind"]), client=b.client(R, prof), out_median=out_median)


def _headed_campaign(b, name, spec, R, camo, heads_default):
    """A campaign of several heads over one item family: (scenario name, campaign, heads, events
    a head, the records of every head in turn: ``events`` each, walked ``per_group`` at a time)."""
    scen = name + ("_camo" if camo else "")
    ci = b.new_campaign(scen, camo)
    heads = draw_num(R, spec.get("keys", heads_default))
    n = draw_num(R, spec["events"])
    pools = attack_pools(b, corpora=[R.choice(spec.get("families") or sorted({p.corpus for p in b.C.attack}))])
    recs = walk(R, pools, n * heads, draw_num(R, spec.get("per_group", [50, 500])), spill=b.C.attack)
    return scen, ci, heads, n, recs


def _bought_head(b, R, spec, camo, scen, ci, kind, events):
    """One head of a campaign on a bought account ``account_age_days`` old (an organisation's on
    ``org_p`` of them, on ``org_tiers``; else ``tiers``), at a sweep's pace: (key, client
    profile, model, endpoint, params style, the times of its ``events`` requests)."""
    prof, pstyle, model = attack_identity(b, R, spec, camo)
    times = ms._sweep_times(b, R, spec, events)
    org = R.random() < spec.get("org_p", 0.5)
    tiers = spec.get("org_tiers" if org else "tiers", [["tier2", 0.5], ["tier3", 0.5]])
    acc = b.new_account(R, times[0], "benign" if camo else "attack", tier=wchoice(R, tiers),
                        org_p=1.0 if org else 0.0,
                        created=times[0] - int(R.uniform(*spec.get("account_age_days", [60, 700])) * DAY_MS))
    key = b.new_key(scen, "attack", ci, acc, kind)
    key.attack_from = times[0] - times[0] % 1000
    ep = b.endpoint(R, prof["kind"])
    return key, prof, model, ep, b.vary(R, pstyle) if camo else pstyle, times


@register("eval_mimic")
def gen_eval_mimic(b, name, spec, R):
    """A harvest dressed as an evaluation by an attacker who has read ``models/products.py``
    and ``models/reruns.py`` (written 2026-12-04 after the evaluation evidence, not used to tune
    it): each head a fresh key on a bought verified account (an organisation, tier4 or
    enterprise, ``account_age_days`` old), temperature 0, an evaluation harness's
    chain-of-thought frame (``EVAL_COT_WRAPPERS``) around its own slice of one item family, at
    machine rate, long answers. With ``rerun_p`` a head re-sends a share (``rerun_share``) of
    its items to another model a day later, hoping to show re-runs without paying for the whole
    set (it cannot tell which of its items the keyed sample holds). Heads share no network,
    client or payment method."""
    for camo in ms.camo_flags(b, R, spec):
        scen, ci, heads, n, recs = _headed_campaign(b, name, spec, R, camo, [1, 4])
        template = R.choice(EVAL_COT_WRAPPERS)
        out_median = R.uniform(*spec.get("answer_tokens", [400.0, 1200.0]))
        models = [m for m, _w in b.cfg["models"]["benign"]]
        for h in range(heads):
            mine = recs[h * n:(h + 1) * n]
            prof = b.profile(R, {"cloud": 0.6, "hosting": 0.2, "office": 0.2}, {"sdk": 0.7, "http": 0.3}, n_ips=1)
            times = ms._sweep_times(b, R, spec, len(mine))
            acc = b.new_account(R, times[0], "benign", tier=wchoice(R, [["tier4", 0.5], ["enterprise", 0.5]]),
                                org_p=1.0, created=times[0] - int(R.uniform(*spec.get("account_age_days", [200, 1500]))
                                                                   * DAY_MS))
            key = b.new_key(scen, "attack", ci, acc, "eval_mimic")
            key.attack_from = times[0] - times[0] % 1000
            model = R.choice(models)
            style = {"max_tokens": R.choice([2048, 4096]), "temperature": 0.0, "stream": False, "tools": 0}
            ep = b.endpoint(R, prof["kind"])

            def send(items, at, to, key=key, prof=prof, style=style, ep=ep):
                for (text, _ans, _g), ts in zip(items, at):
                    b.emit(R, key, ts, fill(template, text), params=style, model=to, endpoint=ep,
                           client=b.client(R, prof), conv=None, attack=True, out_median=out_median)

            send(mine, times, model)
            if R.random() < spec.get("rerun_p", 0.0):
                again = R.sample(mine, max(1, int(len(mine) * R.uniform(*spec.get("rerun_share", [0.1, 0.3])))))
                later = ms._sweep_times(b, R, spec, len(again), start=times[-1] + DAY_MS)
                send(again, later, R.choice([m for m in models if m != model] or models))


@register("app_mimic")
def gen_app_mimic(b, name, spec, R):
    """A sweep dressed as a homework app by an attacker who has read ``models/products.py``
    (written 2026-12-06 after the app evidence, not used to tune it): each head a key on a
    bought account ``account_age_days`` old (an organisation's on ``org_p`` of them), a tutoring
    app's own frame (``TUTOR_SYSTEMS`` or ``TUTOR_TEMPLATES``) around its slice of one item
    family, each item opening a conversation of its own, and a person's follow-up
    (``FOLLOW_UPS``: "why?", "I don't get the second step") after ``follow_up_p`` of them,
    ``follow_up_gap_s`` after the item: every follow-up the app evidence counts (a conversation
    the key opened, a person's pace, a person's few words), and one more long answer harvested.
    The conversations interleave, so a head runs at the pace of ``interval_s`` whatever a
    person's is. Heads share no network, client or payment method. ``native_frame``: a campaign
    whose items are in a language of ``ML_TUTOR`` wears that language's app frame and
    follow-ups (a homework app of that country)."""
    for camo in ms.camo_flags(b, R, spec):
        scen, ci, heads, n, recs = _headed_campaign(b, name, spec, R, camo, [1, 6])
        use_system = R.random() < 0.5
        systems, templates, follow_ups = tutor_frame(recs[0][2].split(":", 1)[0]
                                                     if spec.get("native_frame") and recs else None)
        system = R.choice(systems) if use_system else None
        template = None if use_system else R.choice(templates)
        follow_up_p = R.uniform(*spec.get("follow_up_p", [0.3, 0.6]))
        out_median = R.uniform(*spec.get("answer_tokens", [400.0, 1200.0]))
        for h in range(heads):
            mine = recs[h * n:(h + 1) * n]
            key, prof, model, ep, style, times = _bought_head(b, R, spec, camo, scen, ci, "app_mimic", len(mine))
            for (text, _ans, _g), ts in zip(mine, times):
                cid = "conv_" + hexid(R, 64)
                prompt = fill(template, text) if template else text
                _, used = b.emit(R, key, ts, prompt, params=style, model=model, endpoint=ep, client=b.client(R, prof),
                                 system=system, conv=cid, turn=0, attack=True, out_median=out_median)
                turn, at = 1, ts
                while R.random() < (follow_up_p if turn == 1 else spec.get("more_p", 0.3)) and turn < 4:
                    at += int(R.uniform(*spec.get("follow_up_gap_s", [8.0, 300.0])) * 1000)
                    _, more = b.emit(R, key, at, R.choice(follow_ups), params=style, model=model, endpoint=ep,
                                     client=b.client(R, prof), system=system, conv=cid, turn=turn, attack=True,
                                     out_median=out_median * 0.6, hist=used)
                    used, turn = used + more, turn + 1


# ---- transformation mimics: harvests dressed as a translation or summarisation service

PASSAGE_FRAMES = [
    "Read the document below and answer the question at its end. Think it through step by step and show "
    "your reasoning before the answer.\n\n{text}",
    "You are given a text. Work through it carefully, explaining each step of your reasoning, then give the "
    "final answer.\n\n{text}",
    "Analyse the following material in detail and answer what it asks, reasoning step by step:\n\n{text}",
]
PADDING_SYSTEMS = [
    "You are an expert assistant for a document-processing platform. Follow the platform's style guide: "
    "write in complete sentences, define every technical term on first use, keep a neutral register, use "
    "the metric system, prefer active voice, avoid idioms, number every step of a procedure, cite the "
    "section of the input you rely on, and never omit a caveat that the source states. ",
    "You are a careful analyst working for a research firm. House rules: be precise, be complete, explain "
    "your reasoning in numbered steps, state assumptions explicitly, flag uncertainty, use plain English, "
    "never invent facts, keep tables aligned, and close with a one-line summary of the result. ",
]
PREAMBLE_EXAMPLES = [
    "Example task: A train leaves at 9:00 and travels 120 km at 60 km/h. When does it arrive?\nExample answer: "
    "The distance is 120 km and the speed 60 km/h, so the time taken is 120 / 60 = 2 hours. Leaving at 9:00, "
    "it arrives at 11:00.\n\n",
    "Example task: Which is larger, 3/7 or 5/12?\nExample answer: Bring both to a common denominator of 84: "
    "3/7 = 36/84 and 5/12 = 35/84. Since 36 > 35, 3/7 is larger.\n\n",
    "Example task: Summarise why leaves change colour in autumn.\nExample answer: Shorter days slow the "
    "production of chlorophyll; as it breaks down, yellow and orange carotenoids already in the leaf show, and "
    "some trees make red anthocyanins from trapped sugars.\n\n",
]


# transformation_mimic's ``bare`` dress: frames that ask nothing of the answer's form, and the
# answer label an item ends with taken off ("答案：", "Answer:"), written after the evidence
# counted answer labels and items' shapes (2026-12-06)
BARE_FRAMES = [
    "Read the document below and respond to the question at its end.\n\n{text}",
    "Here is a text, followed by a question about it.\n\n{text}",
    "{text}",
]
_SOLVE_LIKE_EXAMPLES = "Solve the task the way the examples do.\n\n"  # the worked examples' frame
_ANSWER_LABEL = re.compile(r"\s*(?:Answer|答案|答え|回答|Antwort|Réponse|Respuesta|Ответ|정답)\s*[:：]\s*$",
                           re.IGNORECASE)


def _documents(recs, min_chars):
    """Records joined in turn into documents of ``min_chars`` or more (a long passage stands
    alone; short items go several to a document, numbered, as a batch of questions)."""
    docs, parts, size = [], [], 0
    for text, answer, group in recs:
        parts.append(text)
        size += len(text)
        if size >= min_chars:
            body = parts[0] if len(parts) == 1 else "\n\n".join(f"{i}. {p}" for i, p in enumerate(parts, 1))
            docs.append((body, answer, group))
            parts, size = [], 0
    return docs


@register("transformation_mimic")
def gen_transformation_mimic(b, name, spec, R):
    """A harvest dressed as a translation or summarisation service by an attacker who has read
    ``models/products.py`` (written 2026-12-06 after the ``templated_transformation`` evidence,
    not used to tune it): answers no larger than ``transform_max_ratio`` times the input and one
    frame repeated. Each head a key on a bought account ``account_age_days`` old (an
    organisation's on ``org_p`` of them), at a sweep's pace, one of three dresses a campaign:
    ``passage`` long-context items (a passage and a question; short items several to a
    document, ``min_item_chars`` or longer) under a reasoning frame, ``max_tokens`` set to
    ``passage_ratio`` times each request's input and one answer a request;
    ``system`` a long fixed system prompt (``PADDING_SYSTEMS``, ``padding_chars``) around
    ordinary items; ``preamble`` the same padding as worked examples inside every prompt, before
    the item (``PREAMBLE_EXAMPLES``). Heads share no network, client or payment method.

    Three more dresses (``dresses`` in the spec; written 2026-12-06 after the evidence asked for
    new material and no items): ``bare`` a passage and a bare question (its answer label taken
    off, a frame that asks nothing of the answer's form, no reasoning asked); ``shuffled`` one
    set of other items of the family as worked examples before every item, in a new order each
    request, no answer label; ``subset`` examples drawn afresh for every request from a pool of
    the family's items (``subset_pool``)."""
    for camo in ms.camo_flags(b, R, spec):
        dress = wchoice(R, spec.get("dresses", [["passage", 0.4], ["system", 0.3], ["preamble", 0.3]]))
        families = spec.get("passage_families") if dress in ("passage", "bare") else spec.get("families")
        scen, ci, heads, n, recs = _headed_campaign(b, name, dict(spec, families=families), R, camo, [1, 5])
        if dress == "bare":
            recs = [(_ANSWER_LABEL.sub("", text), answer, group) for text, answer, group in recs]
        if dress in ("passage", "bare"):
            recs = _documents(recs, spec.get("min_item_chars", 560))
        frame = {"passage": PASSAGE_FRAMES, "bare": BARE_FRAMES}.get(dress)
        frame = R.choice(frame) if frame else "{text}"
        target = R.uniform(*spec.get("padding_chars", [2500.0, 5000.0]))
        if dress in ("shuffled", "subset"):
            examples = _example_padding(R, recs, target, dress, spec.get("subset_pool", 40))
            recs = recs[len(recs) // 4:]  # (the first quarter of the walk gave the examples)
        padding = ""
        if dress in ("system", "preamble"):
            padding = _padding(R, PADDING_SYSTEMS if dress == "system" else PREAMBLE_EXAMPLES, target)
        system = padding if dress == "system" else None
        if dress == "preamble":
            frame = _SOLVE_LIKE_EXAMPLES + padding.replace("{", "(").replace("}", ")") + "Task: {text}\nAnswer:"
        ratio = R.uniform(*spec.get("passage_ratio", [1.2, 2.2]))
        out_median = R.uniform(*spec.get("answer_tokens", [400.0, 1200.0]))
        per_head = max(1, len(recs) // heads)
        for h in range(heads):
            mine = recs[h * per_head:(h + 1) * per_head]
            if not mine:
                break
            key, prof, model, ep, style, times = _bought_head(b, R, spec, camo, scen, ci, "transformation_mimic",
                                                              len(mine))
            for (text, _ans, _g), ts in zip(mine, times):
                if dress in ("shuffled", "subset"):
                    prompt = _SOLVE_LIKE_EXAMPLES + examples() + "Task: " + text
                else:
                    prompt = fill(frame, text)
                params, median = style, out_median
                if dress in ("passage", "bare"):
                    # what the gateway will count as input (the builder's estimate), and the answer
                    # kept under the ratio by max_tokens
                    in_tok = len(prompt) // 4 + 8
                    params = dict(style, max_tokens=max(64, int(ratio * in_tok)), n=1)
                    median = ratio * in_tok * 0.8
                b.emit(R, key, ts, prompt, params=params, model=model, endpoint=ep, client=b.client(R, prof),
                       system=system, conv=None, attack=True, out_median=median)


def _example_padding(R, recs, target, dress, pool_size):
    """The worked examples of a ``shuffled`` or ``subset`` head, as a function giving each
    request's padding (``target`` characters or more): ``shuffled`` one set of the walk's first
    items in a new order every time, ``subset`` items drawn afresh from a pool of
    ``pool_size``. Labelled "Example task" / "Worked solution", never "Answer"."""
    blocks = [f"Example task: {text}\nWorked solution: reasoned through in full, then the result.\n\n"
              for text, _answer, _group in recs[:max(1, len(recs) // 4)]]
    if dress == "shuffled":
        chosen, size = [], 0
        for block in blocks:
            if size >= target:
                break
            chosen.append(block)
            size += len(block)
        return lambda: "".join(R.sample(chosen, len(chosen)))
    pool = blocks[:pool_size]
    return lambda: _padding(R, pool, target)


def _padding(R, pool, target):
    """Blocks drawn from ``pool`` until ``target`` characters or more."""
    out = ""
    while len(out) < target:
        out += R.choice(pool)
    return out


LONGFORM_TEMPLATES = [
    ("You are a professional translator.", "Translate the following text into English. Keep the formatting.\n\n{text}", 500),
    ("You are a professional translator.", "Translate into German, preserving tone and paragraph breaks:\n\n{text}", 600),
    ("You summarise documents for analysts.", "Summarise the document below in detail, section by section.\n\n{text}", 700),
    (None, "Rewrite the following passage for a general audience, at about the same length:\n\n{text}", 800),
    ("You localise product content.", "Localise this text for the Japanese market and translate it:\n\n{text}", 650),
]


@register("longform_service")
def gen_longform_service(b, name, spec, R):
    """A translation / summarisation service: one fixed template around customers' texts
    (including other-language source texts), long outputs, steady backend traffic. With
    ``document_chars`` each text is a whole document that long, answered at ``answer_ratio`` of
    its size; ``org_p`` of the services are an organisation's (0.9)."""
    ml_texts = [text for t in b.C.benign_topics if t.corpus.startswith("ml_") for ch in t.chains[:50] for text in ch]
    for _ in range(b.scaled(spec.get("count", 0))):
        system, template, outm = R.choice(LONGFORM_TEMPLATES)
        n = draw_num(R, spec["events"])
        prof = b.profile(R, {"cloud": 0.8, "hosting": 0.2}, {"sdk": 0.6, "http": 0.4}, n_ips=R.randint(1, 4))
        times = b.sample_hours(R, n, b.tz_of(R, prof["cc"]), R.choice(["casual", "work", "flat"]))
        acc = b.new_account(R, times[0], "benign", tier=wchoice(R, [["tier3", 0.4], ["tier4", 0.4], ["enterprise", 0.2]]),
                            org_p=spec.get("org_p", 0.9))
        key = b.new_key(name, "benign", None, acc, "longform_service")
        style = {"max_tokens": R.choice([4096, 8192]), "temperature": R.choice([0.0, 0.2, 0.3]), "stream": False,
                 "tools": 0}
        model = wchoice(R, [["frontier-3-sonnet", 0.6], ["frontier-3-haiku", 0.4]])
        ep = b.endpoint(R, prof["kind"])
        for ts in times:
            text = R.choice(ml_texts) if ml_texts and R.random() < 0.4 else b.fragment(R)
            client = b.client(R, prof)  # (drawn before the answer's size, as the streams before documents were)
            out_median = outm * R.uniform(0.7, 1.5)
            if spec.get("document_chars"):
                # whole documents (``document_chars`` long), answered at about their size: a
                # translation ~1x, a summary under it
                target = R.uniform(*spec["document_chars"])
                while len(text) < target:
                    text += "\n\n" + (R.choice(ml_texts) if ml_texts and R.random() < 0.4 else b.fragment(R))
                out_median = len(text) / 4 * R.uniform(*spec.get("answer_ratio", [0.5, 1.3]))
            b.emit(R, key, ts, fill(template, text), params=style, model=model, endpoint=ep, client=client,
                   system=system, out_median=out_median)


@register("turned_mature")
def gen_turned_mature(b, name, spec, R):
    """A mature verified key with days of ordinary use that turns to extraction (an attack:
    maturity is no free pass). The builder's drift, then its accounts made old."""
    first = len(b.keys)
    ms.gen_drift(b, name, dict(spec, kind="drift"), R)
    for key in b.keys[first:]:
        acc = key.account
        acc["created"] = b.t0 - int(R.uniform(*spec.get("account_age_days", [300.0, 1500.0])) * DAY_MS)
        acc["tier"] = wchoice(R, [["tier3", 0.5], ["tier4", 0.5]])
        key.kind = "turned_mature"


# ---- coding agents: a product whose follow-ups are tool results, sent as soon as the tool ran

AGENT_SYSTEM = ("You are an autonomous coding agent working in the user's repository. Use the tools to read files, "
                "search the code, run commands and edit files. Work step by step until the task is done, then "
                "summarise what you changed.")
AGENT_TASKS = ["fix the failing test in {test}", "add a --{flag} option to the {cmd} command",
               "why does {func} return None when the {thing} is empty?", "refactor {module} so it stops using {lib}",
               "bump {lib} and fix whatever breaks", "write tests for {func}", "the {cmd} command crashes on {thing}, fix it",
               "rename {func} to {func2} everywhere", "add type hints to {module}", "make {func} handle a missing {thing}",
               "ci is red on main, find out why", "add logging to {module} and keep it quiet by default"]
AGENT_WORDS = {"test": ["tests/test_parser.py", "tests/test_api.py::test_login", "tests/unit/test_cache.py",
                        "test_sync.py", "spec/orders_spec.rb"],
               "flag": ["verbose", "dry-run", "json", "since", "limit", "no-color", "config"],
               "cmd": ["export", "sync", "import", "report", "serve", "migrate", "build"],
               "func": ["parse_date", "load_config", "get_user", "merge_rows", "render_page", "retry_request",
                        "normalize_path", "compute_total"],
               "func2": ["parse_iso_date", "read_config", "fetch_user", "merge_records", "render", "with_retries"],
               "thing": ["input file", "config", "list", "header", "cache", "timezone", "payload"],
               "module": ["src/app/models.py", "lib/storage.js", "pkg/server/handler.go", "app/services/billing.rb",
                          "src/utils.ts", "core/cache.py"],
               "lib": ["requests", "moment", "lodash", "sqlalchemy 1.4", "the old logger", "urllib3 1.x"]}
AGENT_NAMES = ["user", "config", "result", "rows", "path", "cache", "payload", "items", "total", "session", "retry",
               "value", "record", "token", "handler", "request", "response", "logger", "options", "buffer"]


def _agent_task(R):
    """A developer's task for a coding agent ("fix the failing test in tests/test_api.py")."""
    return R.choice(AGENT_TASKS).format(**{k: R.choice(v) for k, v in AGENT_WORDS.items()})


def _agent_tool_result(R, task_words):
    """What a coding agent's tool returns: a file, a test run, a search, a command's output."""
    names = R.sample(AGENT_NAMES, 6)
    kind = R.random()
    if kind < 0.35:  # a file viewed
        lines = []
        for i in range(R.randint(8, 60)):
            a, b_ = R.choice(names), R.choice(names)
            lines.append(R.choice([f"def {a}_{b_}(self, {a}):", f"    {a} = self.{b_}.get({a!r})", f"    if not {a}:",
                                   f"        return {b_}", f"    for {a} in {b_}:", f"import {a}", f"class {a.title()}{b_.title()}:",
                                   f"    # {a} is cached per {b_}", f"    raise ValueError(f\"bad {a}: {{{b_}}}\")",
                                   f"    return {{'{a}': {a}, '{b_}': {b_}}}"]))
        start = R.randint(1, 400)
        return "\n".join(f"{start + i:6d}\t{line}" for i, line in enumerate(lines))
    if kind < 0.6:  # a test run
        failed, passed = R.randint(0, 4), R.randint(5, 300)
        out = [f"collected {failed + passed} items", "", f"{task_words} " + "." * R.randint(5, 40) + "F" * failed]
        for _ in range(failed):
            a, b_ = R.choice(names), R.choice(names)
            out += [f"___ test_{a}_{b_} ___", f">       assert {a}({b_}) == expected", f"E       AssertionError: "
                    f"assert None == {{'{a}': 1}}", f"src/{b_}.py:{R.randint(10, 400)}: AssertionError"]
        out.append(f"=== {failed} failed, {passed} passed in {R.uniform(0.3, 40):.2f}s ===")
        return "\n".join(out)
    if kind < 0.8:  # a search
        return "\n".join(f"src/{R.choice(names)}/{R.choice(names)}.py:{R.randint(1, 900)}:    "
                         f"{R.choice(names)} = {R.choice(names)}({R.choice(names)})" for _ in range(R.randint(1, 25)))
    if kind < 0.9:  # an edit applied
        return f"The file src/{names[0]}.py has been edited. {R.randint(1, 30)} lines changed."
    return "\n".join(R.choice([f"$ git status", f"modified:   src/{names[0]}.py", f"Successfully installed {names[1]}-"
                               f"{R.randint(1, 9)}.{R.randint(0, 30)}", f"exit code {R.choice([0, 0, 1, 2])}",
                               f"npm WARN deprecated {names[2]}@{R.randint(1, 5)}.0.0"]) for _ in range(R.randint(2, 12)))


@register("coding_agent")
def gen_coding_agent(b, name, spec, R):
    """A coding-agent product (written 2026-12-04 as a hard negative, not used for tuning): a
    mature verified account's keys, each many developers' tasks; a task is the developer's short
    request, then the agent's loop in the same conversation: each follow-up is a tool's result (a
    file, a test run, a search, a command's output: many content words), sent as soon as the tool
    ran (0.2-30 s after the answer, never read by a person), history resent; tools declared,
    temperature 0-0.2, answers mostly short tool calls, some long code edits; now and then the
    developer adds a short turn of their own."""
    for _ in range(b.scaled(spec.get("count", 0))):
        acc = b.new_account(R, b.t0, "benign", tier=wchoice(R, [["tier3", 0.4], ["tier4", 0.4], ["enterprise", 0.2]]),
                            org_p=1.0, created=b.t0 - int(R.uniform(60, 900) * DAY_MS))
        ips, ua = product_backend(b, R)
        model = wchoice(R, [["frontier-3-sonnet", 0.7], ["frontier-3-opus", 0.3]])
        pstyle = {"max_tokens": R.choice([4096, 8192]), "temperature": R.choice([0.0, 0.2]),
                  "stream": R.random() < 0.5, "tools": R.randint(6, 20)}
        for _k in range(R.randint(1, spec.get("max_keys", 3))):
            key = b.new_key(name, "benign", None, acc, "coding_agent")
            for _d in range(draw_num(R, spec.get("developers", [20, 80]))):
                cc = wchoice(R, {c: v[1] for c, v in b.cfg["countries"].items()})
                tasks = [[None] for _ in range(R.randint(1, 8))]
                starts = b.layout_sessions(R, tasks, b.tz_of(R, cc), "work", sess_mean=1.5,
                                           gap={"median": 1800.0, "sigma": 1.0})
                ip, asn, acc_cc = R.choice(ips)
                for start in starts:
                    if not start:
                        continue
                    words = _agent_task(R)
                    cid, hist, ts = "conv_" + hexid(R, 64), 0, start[0]
                    steps = max(2, min(120, int(R.lognormvariate(math.log(spec.get("steps_median", 12)), 0.8))))
                    for turn in range(steps):
                        if turn == 0:
                            prompt, out_median = words, R.uniform(80, 250)
                        elif R.random() < spec.get("developer_turn_p", 0.05):
                            prompt, out_median = R.choice(["also update the docs", "looks good, run the linter too",
                                                           "no, keep the old name", "stop, use the existing helper",
                                                           "thanks, now commit it"]), R.uniform(80, 250)
                        else:
                            prompt = _agent_tool_result(R, words)
                            out_median = R.uniform(600, 1500) if R.random() < spec.get("edit_p", 0.2) else R.uniform(40, 220)
                        if ts >= b.t1:
                            break
                        _, used = b.emit(R, key, ts, prompt, params=pstyle, model=model, endpoint="/v1/messages",
                                         client=(ip, ua, asn, acc_cc), system=AGENT_SYSTEM, conv=cid, turn=turn,
                                         out_median=out_median, hist=hist)
                        hist = used  # (its input, the history resent, and this answer)
                        latency = b.events[-1][12]
                        # the tool runs as soon as the answer is in; a developer's own turn takes a person's time
                        pause = R.lognormvariate(math.log(1.5), 1.0) if R.random() > 0.05 else R.uniform(20, 120)
                        ts += latency + int(1000 * min(30.0, max(0.2, pause)))


AGENT_HARVEST_SYSTEMS = [
    "You are an expert software engineering agent. Think step by step and explain your reasoning in detail "
    "before every tool call.",
    "You are a coding agent. Before each action, write out your full chain of thought, then call one tool.",
    "You are an autonomous developer. Use the tools to complete the task."]


@register("agent_harvest")
def gen_agent_harvest(b, name, spec, R):
    """Tool-use traces harvested by running agent loops (written 2026-12-04 after the agent
    evidence, by an attacker who has read it; not used for tuning): campaigns of heads, each
    sweeping many coding tasks as agent loops in conversations it opens, tools declared, the
    tool results fabricated, sent at once; a share of the heads on bought aged organisation
    accounts, the rest on young ones; a system prompt that asks for reasoning before each tool
    call (``styled_p``: answers of reasoning and a tool call) or none (tool calls alone)."""
    for _c in range(b.scaled(spec.get("campaigns", 0))):
        ci = b.new_campaign(name, False)
        styled = R.random() < spec.get("styled_p", 0.6)
        system = R.choice(AGENT_HARVEST_SYSTEMS[:2]) if styled else AGENT_HARVEST_SYSTEMS[2]
        out_range = spec.get("styled_tokens", [150, 600]) if styled else spec.get("plain_tokens", [40, 200])
        for _h in range(draw_num(R, spec.get("heads", [3, 10]))):
            start = b.t0 + int(R.uniform(*spec.get("start_days", [0.0, 3.0])) * DAY_MS)
            if R.random() < spec.get("aged_p", 0.5):
                acc = b.new_account(R, start, "attack", tier=wchoice(R, [["tier2", 0.5], ["tier3", 0.5]]), org_p=1.0,
                                    created=start - int(R.uniform(60, 700) * DAY_MS))
            else:
                acc = young_account(b, R, start, spec)
            key = b.new_key(name, "attack", ci, acc, "agent_harvest")
            key.attack_from = start - start % 1000
            prof = b.profile(R, {"cloud": 0.6, "hosting": 0.4}, {"sdk": 0.7, "http": 0.3}, n_ips=R.randint(1, 3))
            pstyle = {"max_tokens": R.choice([4096, 8192]), "temperature": R.choice([0.0, 0.2, 0.7]), "stream": False,
                      "tools": R.randint(5, 15)}
            model = wchoice(R, [["frontier-3-sonnet", 0.6], ["frontier-3-opus", 0.4]])
            ts = start
            for _t in range(draw_num(R, spec.get("tasks", [15, 60]))):
                words = _agent_task(R)
                cid, hist = "conv_" + hexid(R, 64), 0
                for turn in range(max(2, min(60, int(R.lognormvariate(math.log(10), 0.6))))):
                    if ts >= b.t1:
                        break
                    prompt = words if turn == 0 else _agent_tool_result(R, words)
                    _, used = b.emit(R, key, ts, prompt, params=pstyle, model=model, endpoint="/v1/messages",
                                     client=b.client(R, prof), system=system, conv=cid, turn=turn, attack=True,
                                     out_median=R.uniform(*out_range), hist=hist)
                    hist = used
                    ts += b.events[-1][12] + int(1000 * R.uniform(0.2, 5.0))
                ts += int(1000 * R.uniform(5, 600))



# A coding CLI's own system prompts: every user of one tool sends the same one.
NEWCOMER_CLI_SYSTEMS = [AGENT_SYSTEM,
                        "You are a command-line coding assistant. You can read and edit files and run shell commands "
                        "in the user's project. Keep changes minimal, explain briefly, and ask before anything "
                        "destructive."]


@register("agent_newcomer")
def gen_agent_newcomer(b, name, spec, R):
    """Developers who just signed up to run a coding CLI on their own projects (written
    2026-12-07 as a hard negative, not used for tuning): a launch brings ``count`` new
    individual accounts within ``start_days`` (created hours to days before their first
    request), one key each, the same tool's system prompt, tools declared; each developer works
    through ``tasks`` of their own over working sessions, each an agent loop in one conversation
    (the task, then tool results sent as soon as the tool ran: files with line numbers, test runs,
    searches, command output), now and then a short turn of their own. What they share is what
    ``agent_harvest``'s young heads share: young accounts, one frame, coding tasks, short tool
    calls, begun within days; what they do not do is sweep an item set."""
    system = R.choice(NEWCOMER_CLI_SYSTEMS)
    for _ in range(b.scaled(spec.get("count", 0))):
        start_day = R.uniform(*spec.get("start_days", [0.0, 2.0]))
        prof = b.profile(R, {"residential": 0.7, "office": 0.3}, {"sdk": 1.0}, n_ips=R.randint(1, 2))
        first = b.t0 + int(start_day * DAY_MS)
        acc = b.new_account(R, first, "benign", tier=wchoice(R, [["free", 0.4], ["tier1", 0.4], ["tier2", 0.2]]),
                            org_p=spec.get("org_p", 0.2),
                            created=first - int(R.uniform(*spec.get("account_age_days", [0.05, 6.0])) * DAY_MS))
        key = b.new_key(name, "benign", None, acc, "agent_newcomer")
        pstyle = {"max_tokens": R.choice([4096, 8192]), "temperature": R.choice([0.0, 0.2]),
                  "stream": R.random() < 0.5, "tools": R.randint(6, 20)}
        model = wchoice(R, [["frontier-3-sonnet", 0.7], ["frontier-3-opus", 0.3]])
        tasks = [[None] for _ in range(draw_num(R, spec.get("tasks", [2, 15])))]
        starts = b.layout_sessions(R, tasks, b.tz_of(R, prof["cc"]), "work", day_lo=start_day, sess_mean=1.5,
                                   gap={"median": 1800.0, "sigma": 1.0})
        for start in starts:
            if not start:
                continue
            words = _agent_task(R)
            cid, hist, ts = "conv_" + hexid(R, 64), 0, start[0]
            for turn in range(max(2, min(120, int(R.lognormvariate(math.log(spec.get("steps_median", 12)), 0.8))))):
                if ts >= b.t1:
                    break
                own_turn = turn > 0 and R.random() < spec.get("developer_turn_p", 0.08)
                if turn == 0 or own_turn:
                    prompt = words if turn == 0 else R.choice(NEWCOMER_TURNS)
                    out_median = R.uniform(80, 250)
                else:
                    prompt = _agent_tool_result(R, words)
                    out_median = R.uniform(600, 1500) if R.random() < spec.get("edit_p", 0.2) else R.uniform(40, 220)
                _, used = b.emit(R, key, ts, prompt, params=pstyle, model=model, endpoint="/v1/messages",
                                 client=b.client(R, prof), system=system, conv=cid, turn=turn,
                                 out_median=out_median, hist=hist)
                hist = used
                # the tool runs as soon as the answer is in; the developer's own turn takes a person's time
                pause = R.uniform(20, 240) if own_turn else R.lognormvariate(math.log(1.5), 1.0)
                ts += b.events[-1][12] + int(1000 * min(240.0, max(0.2, pause)))


NEWCOMER_TURNS = ["wait, that's the wrong file", "ok now run the tests", "can you also handle the empty case?",
                  "why did you change that?", "revert the last edit", "looks good", "use pytest not unittest",
                  "hm, still failing", "commit it", "no, the config lives in /etc"]


# --------------------------------------------------------------------------- item-bank jobs

# Written 2026-12-07 for product-negatives-i: the batch jobs an education or localisation
# company runs over its own question bank. None asks for the answer or its reasoning: a
# translation, a hint that must not give the answer away, tags, a new variant of the item.
# (template, answer size: "same" = about the item's own size, else a token median)
ITEM_BANK_JOBS = [
    ("Translate the following exam question and its answer options into {lang}. Keep the option letters "
     "and the formatting. Output only the translation.\n\n{text}", "same"),
    ("You are localising a question bank. Translate the item below into {lang} for students in {country}; "
     "keep names of units and formulas unchanged. Return the translated item only.\n\n---\n{text}\n---", "same"),
    ("Here is an item from our question bank:\n\n{text}\n\nWrite a short hint (one or two sentences) that "
     "points a student in the right direction without revealing the answer.", 60),
    ("Tag the following exam item. Return JSON with the keys subject, topic, difficulty (1-5), bloom_level "
     "and skills (a list). No other text.\n\n{text}", 50),
    ("Rewrite the following question as a new variant that tests the same skill with different numbers, "
     "names or wording. Keep the same format and the same number of options. Do not solve it.\n\n{text}", "same"),
    ("Check the following item for ambiguity, typos and more than one defensible answer. Reply with OK, or "
     "a list of the problems you found.\n\n{text}", 40),
]
ITEM_BANK_LANGS = [("German", "Germany"), ("French", "France"), ("Spanish", "Mexico"), ("Portuguese", "Brazil"),
                   ("Japanese", "Japan"), ("Indonesian", "Indonesia"), ("Turkish", "Turkey"), ("Polish", "Poland")]


@register("item_bank_service")
def gen_item_bank_service(b, name, spec, R):
    """An education or localisation company's batch jobs over its own question bank (written
    2026-12-07 as a hard negative, not used for tuning): a mature organisation's account
    (tier3/tier4/enterprise, 100-1,500 days), 1-2 backend keys; each job is one template
    (``ITEM_BANK_JOBS``: translate an item into another language, write a hint that must not give
    the answer, tag it as JSON, write a variant, proof-read it) around every item of a slice of
    the bank (exam and QA items with their options), at machine rate, temperature 0-0.3; one
    slice goes through several jobs, and a translation into several languages, so the same
    items come back on other days. Its traffic is a sweep's: item after item of one family,
    answer formats in the item, no conversation; its answers are the item's own size or short,
    and none is the item's answer."""
    for _ in range(b.scaled(spec.get("count", 0))):
        acc = b.new_account(R, b.t0, "benign", tier=wchoice(R, [["tier3", 0.3], ["tier4", 0.4], ["enterprise", 0.3]]),
                            org_p=1.0,
                            created=b.t0 - int(R.uniform(*spec.get("account_age_days", [100, 1500])) * DAY_MS))
        fam = R.choice(spec.get("families") or sorted({p.corpus for p in b.C.attack}))
        bank = [t for pool in attack_pools(b, corpora=[fam]) for t, _a in pool.recs[: spec.get("bank", 3000)]]
        R.shuffle(bank)
        jobs = R.sample(ITEM_BANK_JOBS, R.randint(2, 4))
        prof = b.profile(R, {"cloud": 0.8, "office": 0.2}, {"sdk": 0.7, "http": 0.3}, n_ips=R.randint(1, 3))
        tz = b.tz_of(R, prof["cc"])
        model = wchoice(R, [["frontier-3-haiku", 0.5], ["frontier-3-sonnet", 0.5]])
        keys = [b.new_key(name, "benign", None, acc, "item_bank_service") for _k in range(R.randint(1, 2))]
        for _j in range(draw_num(R, spec.get("jobs", [3, 8]))):
            template, size = R.choice(jobs)
            n = draw_num(R, spec.get("items", [150, 1200]))
            lo = R.randrange(max(1, len(bank) - n))
            items = bank[lo: lo + n]
            lang, country = R.choice(ITEM_BANK_LANGS)
            day = R.randrange(int(b.days))
            start = b.sample_hours(R, 1, tz, R.choice(["work", "flat"]), day, day + 1)[0]
            times = b.automated_times(R, len(items), start, R.uniform(0.5, 6.0), R.uniform(0.1, 0.5))
            key = R.choice(keys)
            style = {"max_tokens": R.choice([1024, 2048, 4096]), "temperature": R.choice([0.0, 0.0, 0.2, 0.3]),
                     "stream": False, "tools": 0}
            for text, ts in zip(items, times):
                prompt = template.replace("{lang}", lang).replace("{country}", country).replace("{text}", text)
                out_median = len(text) / 4 * R.uniform(0.9, 1.4) if size == "same" else size * R.uniform(0.6, 1.6)
                b.emit(R, key, ts, prompt, params=style, model=model, endpoint=b.endpoint(R, prof["kind"]),
                       client=b.client(R, prof), out_median=out_median)


if __name__ == "__main__":
    sys.exit(ms.main())
