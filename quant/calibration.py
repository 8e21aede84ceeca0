"""The built-in calibration text for importance matrices (quant.imatrix): our own words.

A mix of registers, so the matrix sees the activations a chat model meets in use: prose, a
little reference text, code in a few languages, chat turns (rendered with the model's own
chat template when it has one) and several languages. It shares nothing with the quality
report's text (quant.quality.TEXT) or the tests' evaluation texts, so a conversion is never
measured on what it was calibrated on.
"""

from __future__ import annotations

from typing import Any

PROSE = (
    "The lighthouse keeper kept two logs. The first was the official one, with the wind, the "
    "visibility and the ships that passed, written in the neat hand the harbour office asked "
    "for. The second was a school exercise book in which she wrote whatever she liked: the "
    "colour of the sea at dawn, a seal that slept on the rocks for three days, the argument "
    "she had with the supply boat's captain about the price of paraffin. When she retired, "
    "the harbour office kept the first log in a filing cabinet. Her grandson kept the second, "
    "and read it aloud at her ninetieth birthday, to a great deal of laughter.",
    "Bread is one of the oldest prepared foods. Flour, water, salt and a leavening agent are "
    "mixed into a dough, which is kneaded to develop gluten, left to rise, shaped and baked. "
    "The rise comes from carbon dioxide produced by yeast or by the bacteria of a sourdough "
    "starter; the crust browns through the Maillard reaction between sugars and amino acids. "
    "A long, cool fermentation gives a more complex flavour, while a hot oven with steam in "
    "the first minutes lets the loaf expand before the crust sets.",
    "Dear Ms Okafor, thank you for your letter of 14 March. I am sorry to hear that the "
    "washing machine you bought from us stopped working after six weeks. Under the terms of "
    "the warranty we will collect it next Tuesday between 8 a.m. and 1 p.m. and either repair "
    "or replace it at no cost to you. If that time does not suit you, please reply to this "
    "message or call 0161 496 0732. Kind regards, Daniel Reyes, Customer Service.",
    "Photosynthesis turns light into chemical energy. In the thylakoid membranes of a "
    "chloroplast, chlorophyll absorbs red and blue light and uses its energy to split water, "
    "releasing oxygen and producing ATP and NADPH. In the stroma, the Calvin cycle spends that "
    "ATP and NADPH to fix carbon dioxide into three-carbon sugars. Roughly 6 CO2 + 6 H2O -> "
    "C6H12O6 + 6 O2, though the real chemistry takes dozens of steps and several enzymes, of "
    "which RuBisCO is the most abundant protein on Earth.",
    "Meeting notes, Thursday. Present: Priya, Tom, Mei, Jonas. 1) The release slips by one "
    "week because the installer still fails on older laptops; Jonas will test on the two "
    "machines in the storeroom. 2) Support tickets are down 18% since the new help page went "
    "live. 3) Mei proposes moving the weekly meeting to Monday at 10:30; nobody objected. "
    "Action items: Tom drafts the announcement, Priya updates the roadmap, Jonas reports back "
    "by Tuesday.",
    "It was raining when the train stopped at a station that was not on the timetable. A "
    "conductor walked through the carriages saying that a tree had fallen across the line and "
    "that buses were on their way. Nobody believed him about the buses. An hour later, three "
    "of them arrived together, their windows fogged, and the passengers climbed aboard with "
    "the patient resignation of people who had been promised worse.",
    "Q: How many bones are in the adult human body? A: Usually 206, although the number "
    "varies a little from person to person. Q: Which planet has the shortest day? A: Jupiter, "
    "which turns once in a little under ten hours. Q: What is the boiling point of water at "
    "the top of Mount Everest? A: About 70 degrees Celsius, because the air pressure there is "
    "only a third of that at sea level.",
)

CODE = (
    "import csv\nfrom collections import Counter\n\n\ndef top_words(path, n=10):\n"
    '    """The n most common words in the text column of a CSV file."""\n'
    "    counts = Counter()\n    with open(path, newline='', encoding='utf-8') as fh:\n"
    "        for row in csv.DictReader(fh):\n"
    "            counts.update(w.lower().strip('.,;:!?') for w in row['text'].split())\n"
    "    return counts.most_common(n)\n\n\nif __name__ == '__main__':\n"
    "    for word, count in top_words('reviews.csv'):\n        print(f'{word:>15} {count}')\n",
    "function debounce(fn, wait = 200) {\n  let timer = null;\n  return (...args) => {\n"
    "    clearTimeout(timer);\n    timer = setTimeout(() => fn.apply(this, args), wait);\n"
    "  };\n}\n\nconst search = document.querySelector('#search');\n"
    "search.addEventListener('input', debounce(async (event) => {\n"
    "  const res = await fetch(`/api/items?q=${encodeURIComponent(event.target.value)}`);\n"
    "  render(await res.json());\n}));\n",
    "SELECT c.name, COUNT(o.id) AS orders, SUM(o.total) AS spent\nFROM customers AS c\n"
    "LEFT JOIN orders AS o ON o.customer_id = c.id AND o.created_at >= DATE '2024-01-01'\n"
    "GROUP BY c.name\nHAVING COUNT(o.id) > 2\nORDER BY spent DESC\nLIMIT 20;\n",
    "#include <stdio.h>\n#include <stdlib.h>\n\nstruct node { int value; struct node *next; };\n\n"
    "static struct node *push(struct node *head, int value) {\n"
    '    struct node *n = malloc(sizeof *n);\n    if (!n) { perror("malloc"); exit(1); }\n'
    "    n->value = value;\n    n->next = head;\n    return n;\n}\n\nint main(void) {\n"
    "    struct node *list = NULL;\n    for (int i = 0; i < 5; i++) list = push(list, i * i);\n"
    '    for (struct node *p = list; p; p = p->next) printf("%d\\n", p->value);\n'
    "    return 0;\n}\n",
    "#!/bin/sh\nset -eu\n# back up the photos folder, keeping the last seven archives\n"
    'dest="$HOME/backups"\nmkdir -p "$dest"\n'
    'tar -czf "$dest/photos-$(date +%Y%m%d).tar.gz" -C "$HOME" Photos\n'
    'ls -1t "$dest"/photos-*.tar.gz | tail -n +8 | xargs -r rm --\n',
    "fn mean(values: &[f64]) -> Option<f64> {\n    if values.is_empty() {\n        return None;\n"
    "    }\n    Some(values.iter().sum::<f64>() / values.len() as f64)\n}\n\n"
    'fn main() {\n    let xs = vec![2.5, 3.0, 4.5];\n    println!("{:?}", mean(&xs));\n}\n',
    '{\n  "name": "weather-widget",\n  "version": "1.4.2",\n  "settings": {\n'
    '    "units": "metric",\n    "refresh_minutes": 15,\n    "locations": ["Lisbon", "Nairobi", '
    '"Osaka"]\n  }\n}\n',
)

CHATS: tuple[tuple[tuple[str, str], ...], ...] = (
    (
        ("system", "You are a helpful assistant."),
        ("user", "Can you suggest a simple dinner I can make in twenty minutes?"),
        (
            "assistant",
            "Sure. Try a vegetable stir-fry: slice a pepper, a carrot and an onion, fry them "
            "in a hot pan with a little oil for five minutes, add a spoon of soy sauce and a "
            "crushed garlic clove, and serve over rice or noodles. Add tofu or an egg for "
            "protein.",
        ),
        ("user", "I don't have soy sauce. What else works?"),
        (
            "assistant",
            "A pinch of salt with a squeeze of lemon, or a spoon of miso or fish sauce if you "
            "have them. Even a little stock cube dissolved in hot water gives a savoury note.",
        ),
    ),
    (
        ("user", "Explain what a hash table is in two sentences."),
        (
            "assistant",
            "A hash table stores key-value pairs in an array, using a hash function to turn "
            "each key into the index where its value lives. This makes looking up, adding and "
            "removing an entry take roughly constant time on average.",
        ),
        ("user", "And what happens when two keys land on the same index?"),
        (
            "assistant",
            "That is a collision. Common fixes are chaining, where each slot holds a small list "
            "of entries, and open addressing, where the table probes the next free slot.",
        ),
    ),
    (
        ("user", "Write a haiku about a bicycle in the rain."),
        (
            "assistant",
            "Wet spokes catch the light,\npuddles split beneath my wheels,\nbell rings, "
            "no one hears.",
        ),  # fmt: skip
        ("user", "Translate 'thank you very much' into Spanish and German."),
        ("assistant", "Spanish: muchas gracias. German: vielen Dank."),
    ),
)

LANGUAGES = (
    "Le marché du samedi ouvre à sept heures. On y trouve des fromages de la région, du pain "
    "encore chaud et des fraises qui sentent vraiment la fraise. Les vendeurs se connaissent "
    "tous et discutent de la météo en rendant la monnaie.",
    "Gestern habe ich endlich das alte Fahrrad repariert. Die Kette war verrostet und der "
    "hintere Reifen hatte ein Loch, aber nach zwei Stunden in der Garage fährt es wieder, "
    "und zwar besser als je zuvor.",
    "La biblioteca del barrio organiza cada jueves un club de lectura. Este mes leen una "
    "novela sobre una familia de pescadores y, según dicen, la discusión de la semana pasada "
    "duró hasta que cerraron las puertas.",
    "Il treno per Firenze parte dal binario quattro alle nove e un quarto. Ricordatevi di "
    "convalidare il biglietto prima di salire, altrimenti il controllore può fare la multa.",
    "O rio atravessa a cidade de leste a oeste, e à noite as pontes iluminadas refletem-se na "
    "água. Nos dias de verão, as pessoas sentam-se nas margens a conversar até tarde.",
    "Vandaag is het koud en winderig, dus we blijven binnen. De kinderen bouwen een hut van "
    "dekens en stoelen, en ik maak soep met de laatste groenten uit de tuin.",
    "Зимой в нашем городе рано темнеет, но на главной площади ставят большую ёлку, и по "
    "вечерам там играет музыка. Дети катаются на коньках, а взрослые пьют горячий чай.",
    "今天早上下了一场小雨，空气特别清新。我在公园里散步，看见几位老人在打太极拳，"
    "还有一个小孩在追着鸽子跑。",
    "駅前の小さなパン屋は毎朝六時に開きます。焼きたてのメロンパンが人気で、"
    "八時にはほとんど売り切れてしまいます。",
    "مرحباً، اسمي سارة وأعمل معلمة في مدرسة ابتدائية. أحب القراءة والمشي في الصباح الباكر، "
    "وفي عطلة نهاية الأسبوع أزور جدتي في القرية.",
    "आज बाज़ार में बहुत भीड़ थी। त्योहार से पहले सब लोग मिठाइयाँ और नए कपड़े खरीद रहे थे।",
    "Bugün hava çok güzeldi, bu yüzden arkadaşlarımla sahilde uzun bir yürüyüş yaptık ve "
    "akşam balık yedik.",
    "오늘은 친구와 함께 도서관에 가서 시험 공부를 했다. 저녁에는 근처 식당에서 김치찌개를 먹었다.",
)


def _plain_chat(turns: tuple[tuple[str, str], ...]) -> str:
    return "\n".join(f"{role.capitalize()}: {text}" for role, text in turns) + "\n"


def render_chat(tokenizer: Any, turns: tuple[tuple[str, str], ...]) -> str:
    """One conversation in the model's own chat template, or as plain "Role: text" lines."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": role, "content": text} for role, text in turns]
        try:
            text = tokenizer.apply_chat_template(messages, tokenize=False)
        except Exception:  # a template that refuses a system turn, or raises for any reason:
            text = None  # the plain form is still a fair calibration text
        if isinstance(text, str) and text:
            return text
    return _plain_chat(turns)


def calibration_texts(tokenizer: Any = None) -> list[str]:
    """The calibration pieces, interleaved by kind (so a short run still sees every kind)."""
    chats = [render_chat(tokenizer, c) if tokenizer else _plain_chat(c) for c in CHATS]
    kinds = [list(PROSE), list(CODE), chats, list(LANGUAGES)]
    out: list[str] = []
    while any(kinds):
        for kind in kinds:
            if kind:
                out.append(kind.pop(0))
    return out


DATASET_NAME = "fireside built-in calibration text v1"
