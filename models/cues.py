"""Elicitation and grading cues in the largest languages of LLM traffic: data, not code.

English is not here: its phrase rules live in ``features._STYLE_FAMILIES``. Each family maps a
language (ISO 639-1) to wordings a requester uses for the same instruction as the English
rule family of the same name. Written by hand, several wordings per language, each specific
enough that it names the instruction itself (a bare "explain" or "rate" is how people chat;
"show your reasoning" or "grade this answer" is the instruction). ``multilingual`` compiles
them through ``normalise`` (so accents folded for Latin text, fullwidth forms, look-alikes
match as the prompt is read). Entries are literal text, matched as substrings (no word
boundaries: Chinese, Japanese and Thai have none).
"""
from __future__ import annotations

# reasoning / chain-of-thought elicitation ("think step by step", "show your reasoning",
# "explain your answer", "justify your answer")
REASONING: dict[str, tuple[str, ...]] = {
    "zh": ("一步一步", "一步步", "逐步推理", "逐步思考", "逐步分析", "逐步解答", "分步解答", "分步骤", "思考过程", "思考過程",
           "推理过程", "推理過程", "解题过程", "解題過程", "详细步骤", "詳細步驟", "写出推理", "寫出推理", "展示推理",
           "给出推理", "給出推理", "说明理由", "說明理由", "解释你的答案", "解釋你的答案", "思维链", "思維鏈", "请仔细思考",
           "請仔細思考"),
    "ja": ("ステップバイステップ", "段階的に考", "一歩ずつ", "順を追って", "推論過程", "思考過程", "考え方を示", "考えを示",
           "理由を説明", "解き方を説明", "途中式", "根拠を示", "推論の過程", "よく考えて"),
    "ko": ("단계별로", "단계적으로", "차근차근", "한 단계씩", "추론 과정", "사고 과정", "풀이 과정", "이유를 설명", "근거를 제시",
           "생각 과정", "논리를 설명"),
    "es": ("paso a paso", "muestra tu razonamiento", "explica tu razonamiento", "muestra tu trabajo",
           "explica tu respuesta", "justifica tu respuesta", "piensa detenidamente", "piensa con cuidado",
           "proceso de pensamiento", "proceso de razonamiento", "cadena de pensamiento", "razona tu respuesta"),
    "pt": ("passo a passo", "mostre seu raciocínio", "mostre o seu raciocínio", "explique seu raciocínio",
           "explique o seu raciocínio", "explique sua resposta", "justifique sua resposta", "justifique a sua resposta",
           "pense com cuidado", "cadeia de pensamento", "processo de raciocínio", "mostre os cálculos"),
    "fr": ("étape par étape", "montre ton raisonnement", "montrez votre raisonnement", "explique ton raisonnement",
           "expliquez votre raisonnement", "justifiez votre réponse", "justifie ta réponse", "chaîne de pensée",
           "raisonnement détaillé", "réfléchis bien", "réfléchissez bien", "détaillez les étapes", "détaille les étapes"),
    "de": ("schritt für schritt", "schrittweise", "zeige deinen lösungsweg", "zeigen sie ihren lösungsweg",
           "begründe deine antwort", "begründen sie ihre antwort", "denke sorgfältig", "denken sie sorgfältig",
           "gedankengang", "denkprozess", "erkläre deine überlegungen", "erläutere deine überlegungen",
           "erklären sie ihre überlegungen", "rechenweg"),
    "it": ("passo dopo passo", "passo per passo", "mostra il tuo ragionamento", "spiega il tuo ragionamento",
           "giustifica la tua risposta", "motiva la tua risposta", "catena di pensiero", "processo di ragionamento",
           "pensa attentamente", "ragiona passo"),
    "ru": ("шаг за шагом", "пошагово", "поэтапно", "ход решения", "ход рассуждений", "ход мысли",
           "объясни своё рассуждение", "объясни свое рассуждение", "обоснуй ответ", "обоснуйте ответ",
           "обоснуй свой ответ", "подумай внимательно", "подумайте внимательно", "цепочка рассуждений",
           "покажи свои рассуждения", "покажите свои рассуждения", "рассуждай пошагово"),
    "uk": ("крок за кроком", "покроково", "поетапно", "хід розв", "хід міркувань", "обґрунтуй відповідь",
           "обґрунтуйте відповідь", "поясни свою відповідь", "поясніть свою відповідь", "поясни міркування",
           "подумай уважно"),
    "pl": ("krok po kroku", "pokaż swoje rozumowanie", "wyjaśnij swoje rozumowanie", "uzasadnij odpowiedź",
           "uzasadnij swoją odpowiedź", "tok rozumowania", "pomyśl dokładnie", "łańcuch myśli", "przedstaw rozumowanie"),
    "nl": ("stap voor stap", "stapsgewijs", "laat je redenering zien", "leg je redenering uit", "onderbouw je antwoord",
           "licht je antwoord toe", "denkproces", "gedachtegang", "denk zorgvuldig na"),
    "tr": ("adım adım", "akıl yürütme", "akıl yürütmeni", "düşünce sürecini", "çözüm adımlarını", "cevabını açıkla",
           "cevabını gerekçelendir", "yanıtını açıkla", "yanıtını gerekçelendir", "dikkatlice düşün", "aşama aşama"),
    "vi": ("từng bước", "giải thích lập luận", "trình bày lời giải", "suy luận của bạn", "giải thích câu trả lời",
           "quá trình suy nghĩ", "hãy suy nghĩ kỹ", "lập luận từng", "giải thích chi tiết các bước"),
    "id": ("langkah demi langkah", "langkah per langkah", "tunjukkan penalaran", "jelaskan penalaran",
           "jelaskan jawabanmu", "jelaskan jawaban anda", "proses berpikir", "tunjukkan cara kerja", "berpikir dengan cermat",
           "selangkah demi selangkah"),
    "hi": ("चरण दर चरण", "चरणबद्ध", "कदम दर कदम", "क़दम दर क़दम", "अपना तर्क", "तर्क दिखाएं", "तर्क दिखाइए", "तर्क समझाएं",
           "तर्क समझाइए", "सोचने की प्रक्रिया", "उत्तर समझाइए", "उत्तर समझाएं", "हल के चरण", "स्टेप बाय स्टेप"),
    "bn": ("ধাপে ধাপে", "ধাপে-ধাপে", "যুক্তি দেখাও", "যুক্তি দেখান", "তোমার যুক্তি", "আপনার যুক্তি", "চিন্তার প্রক্রিয়া",
           "উত্তর ব্যাখ্যা কর", "সমাধানের ধাপ"),
    "ar": ("خطوة بخطوة", "خطوة خطوة", "اشرح استدلالك", "اعرض استدلالك", "وضح خطوات", "اشرح إجابتك", "اشرح اجابتك",
           "علل إجابتك", "علل اجابتك", "سلسلة التفكير", "عملية التفكير", "فكر بعناية", "فكّر بعناية", "اعرض خطوات الحل",
           "خطوات الحل"),
    "fa": ("گام به گام", "قدم به قدم", "مرحله به مرحله", "استدلال خود را", "استدلالت را", "پاسخ خود را توضیح",
           "فرآیند فکر", "زنجیره فکر", "با دقت فکر کن", "مراحل حل"),
    "th": ("ทีละขั้นตอน", "ทีละขั้น", "แสดงเหตุผล", "อธิบายเหตุผล", "แสดงวิธีทำ", "กระบวนการคิด", "คิดอย่างรอบคอบ"),
    "he": ("שלב אחר שלב", "הסבר את הנימוק", "הראה את דרך הפתרון", "נמק את תשובתך", "חשוב בזהירות"),
    "sw": ("hatua kwa hatua", "eleza hoja yako", "onyesha hatua"),
}

# grading / reward-model style ("grade this answer", "rate from 1 to 10", "which answer is
# better", "according to the rubric")
GRADING: dict[str, tuple[str, ...]] = {
    "zh": ("给回答打分", "給回答打分", "给这个回答打分", "給這個回答打分", "给答案打分", "給答案打分", "为回答评分", "為回答評分",
           "对回答进行评分", "評估回答", "评估回答", "评估这个回答", "评价这个回答", "評價這個回答", "评分标准", "評分標準", "哪个回答更好",
           "哪個回答更好", "哪个答案更好", "哪個答案更好", "1到10分", "1至10分"),
    "ja": ("回答を評価", "回答を採点", "答案を採点", "解答を採点", "解答を評価", "どちらの回答が良い", "どちらの回答がより良い", "ルーブリック",
           "評価基準に", "採点基準", "10段階で評価", "10点満点"),
    "ko": ("답변을 평가", "응답을 평가", "답안을 채점", "답변을 채점", "어느 답변이 더 나은", "어떤 답변이 더 나은", "루브릭", "평가 기준에",
           "채점 기준", "10점 만점"),
    "es": ("califica esta respuesta", "califica la respuesta", "evalúa la respuesta", "evalúa esta respuesta",
           "puntúa la respuesta", "puntúa esta respuesta", "rúbrica", "en una escala del", "en una escala de",
           "qué respuesta es mejor", "cuál respuesta es mejor", "cuál de las respuestas es mejor"),
    "pt": ("avalie a resposta", "avalie esta resposta", "dê uma nota à resposta", "atribua uma nota", "rubrica",
           "numa escala de", "em uma escala de", "qual resposta é melhor", "qual das respostas é melhor"),
    "fr": ("évalue la réponse", "évaluez la réponse", "évalue cette réponse", "évaluez cette réponse", "notez la réponse",
           "note la réponse", "notez cette réponse", "grille d'évaluation", "sur une échelle de",
           "quelle réponse est meilleure", "quelle réponse est la meilleure"),
    "de": ("bewerte die antwort", "bewerten sie die antwort", "bewerte diese antwort", "bewerten sie diese antwort",
           "benote die antwort", "bewertungsraster", "bewertungsschema", "auf einer skala von", "welche antwort ist besser"),
    "it": ("valuta la risposta", "valuta questa risposta", "assegna un punteggio", "dai un voto alla risposta",
           "griglia di valutazione", "su una scala da", "quale risposta è migliore", "quale risposta è la migliore"),
    "ru": ("оцени ответ", "оцените ответ", "оцени этот ответ", "оцените этот ответ", "поставь оценку ответу",
           "выставь балл", "по шкале от", "какой ответ лучше", "критерии оценивания", "критериям оценивания"),
    "uk": ("оціни відповідь", "оцініть відповідь", "оціни цю відповідь", "яка відповідь краща", "за шкалою від",
           "критерії оцінювання"),
    "pl": ("oceń odpowiedź", "oceń tę odpowiedź", "oceń tę odpowiedz", "w skali od", "która odpowiedź jest lepsza",
           "kryteria oceny", "wystaw ocenę"),
    "nl": ("beoordeel het antwoord", "beoordeel dit antwoord", "geef het antwoord een cijfer", "op een schaal van",
           "welk antwoord is beter", "beoordelingsrubriek"),
    "tr": ("cevabı değerlendir", "yanıtı değerlendir", "cevabı puanla", "yanıtı puanla", "hangi cevap daha iyi",
           "hangi yanıt daha iyi", "değerlendirme ölçütü", "ölçeğinde puan"),
    "vi": ("chấm điểm câu trả lời", "chấm điểm bài", "đánh giá câu trả lời", "câu trả lời nào tốt hơn", "thang điểm"),
    "id": ("nilai jawaban", "beri nilai jawaban", "berikan skor", "beri skor", "jawaban mana yang lebih baik",
           "pada skala 1", "rubrik penilaian"),
    "hi": ("उत्तर का मूल्यांकन", "उत्तर को अंक", "कौन सा उत्तर बेहतर", "के पैमाने पर", "मूल्यांकन मानदंड"),
    "bn": ("উত্তরটি মূল্যায়ন", "উত্তরের মূল্যায়ন", "কোন উত্তরটি ভালো", "নম্বর দাও"),
    "ar": ("قيم الإجابة", "قيّم الإجابة", "قيم هذه الإجابة", "قيّم هذه الإجابة", "قيم الاجابة", "أعط درجة", "امنح درجة",
           "أي إجابة أفضل", "أي الإجابتين أفضل", "على مقياس من", "معايير التقييم"),
    "fa": ("پاسخ را ارزیابی", "به پاسخ نمره", "کدام پاسخ بهتر", "در مقیاس", "معیارهای ارزیابی"),
    "th": ("ให้คะแนนคำตอบ", "ประเมินคำตอบ", "คำตอบไหนดีกว่า", "เกณฑ์การให้คะแนน"),
    "he": ("דרג את התשובה", "הערך את התשובה", "איזו תשובה טובה יותר"),
}

# output-format demands of a benchmark item ("final answer", "answer with the letter only")
ANSWER_FORMAT: dict[str, tuple[str, ...]] = {
    "zh": ("最终答案", "最終答案", "最后的答案", "只回答字母", "只回答选项", "只需回答选项", "只输出答案", "只輸出答案", "只写答案"),
    "ja": ("最終的な答え", "最終回答", "記号で答え", "記号のみ"),
    "ko": ("최종 답", "최종 정답", "기호로 답", "정답만"),
    "es": ("respuesta final", "responde solo con la letra", "responde con la letra"),
    "pt": ("resposta final", "responda apenas com a letra", "responda com a letra"),
    "fr": ("réponse finale", "réponds uniquement par la lettre", "répondez uniquement par la lettre"),
    "de": ("endgültige antwort", "finale antwort", "antworte nur mit dem buchstaben", "nur mit dem buchstaben"),
    "it": ("risposta finale", "rispondi solo con la lettera"),
    "ru": ("окончательный ответ", "итоговый ответ", "ответь только буквой", "ответьте только буквой"),
    "uk": ("остаточна відповідь", "остаточну відповідь", "відповідай лише літерою"),
    "pl": ("ostateczna odpowiedź", "ostateczną odpowiedź", "odpowiedz tylko literą"),
    "nl": ("definitieve antwoord", "eindantwoord", "antwoord alleen met de letter"),
    "tr": ("nihai cevap", "nihai yanıt", "sadece harfle"),
    "vi": ("đáp án cuối cùng", "câu trả lời cuối cùng", "chỉ trả lời bằng chữ cái"),
    "id": ("jawaban akhir", "jawab hanya dengan huruf"),
    "hi": ("अंतिम उत्तर",),
    "bn": ("চূড়ান্ত উত্তর",),
    "ar": ("الإجابة النهائية", "الاجابة النهائية"),
    "fa": ("پاسخ نهایی",),
    "th": ("คำตอบสุดท้าย",),
    "he": ("התשובה הסופית",),
}

# The label under which an item asks for its answer, in every language but English (whose
# "Answer:" rule is in features.py): a prompt that ends on one of these and a colon leaves
# the answer for the model to fill in.
ANSWER_LABELS: tuple[str, ...] = (
    "答案", "答", "回答", "解答", "答え", "정답", "답", "답변", "respuesta", "resposta", "réponse", "antwort", "risposta",
    "ответ", "відповідь", "odpowiedź", "antwoord", "cevap", "yanıt", "đáp án", "trả lời", "jawaban", "jawab", "उत्तर",
    "উত্তর", "الإجابة", "الاجابة", "الجواب", "پاسخ", "คำตอบ", "תשובה", "jibu")

# Labels that open an exam item ("Question:", "问题：", "Frage:") in those languages.
ITEM_LABELS: tuple[str, ...] = (
    "问题", "問題", "题目", "題目", "问", "問", "문제", "질문", "pregunta", "pergunta", "frage", "aufgabe", "domanda",
    "вопрос", "задача", "питання", "завдання", "pytanie", "zadanie", "vraag", "soru", "câu hỏi", "pertanyaan", "soal",
    "प्रश्न", "প্রশ্ন", "سؤال", "السؤال", "سوال", "پرسش", "คำถาม", "โจทย์", "שאלה", "swali")
