#!/usr/bin/env python3
"""Generate data/prompts/prompts.csv.

The prompt set is used to measure the speed and output quality of small
LLaMA-style models while they are pruned at run time. Every prompt is written
for this project: hand-written facts, passages, code snippets, templates and
fill-in banks, combined deterministically with a seeded random generator.
No third-party text is used.

Columns: prompt, category, subject, context_dependency
  context_dependency: low    - self-contained; answerable from general knowledge or skill
                      medium - the prompt supplies specific details that the answer must use
                      high   - the answer depends on a substantial context in the prompt
                               (a passage, code, a conversation, a data table)

Standard library only. Running it twice yields a byte-identical CSV.
Usage: python3 data/prompts/make_prompts.py
"""

import csv
import math
import os
import random

SEED = 20240917
CATEGORIES = [
    "knowledge",
    "math",
    "programming",
    "creative",
    "instruction",
    "reading",
    "commonsense",
    "dialogue",
    "long",
]
DEPENDENCY_LEVELS = ("low", "medium", "high")
OUT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prompts.csv")


def rng_for(index):
    """An independent, fixed random stream per category, so that editing one
    category's builder never changes the rows generated for another."""
    return random.Random(SEED * 1000 + index)


class Bucket:
    """Collects the rows of one category and rejects duplicate prompt texts."""

    def __init__(self, category):
        self.category = category
        self.rows = []
        self._seen = set()

    def add(self, subject, dependency, text):
        text = text.strip()
        assert dependency in DEPENDENCY_LEVELS, dependency
        assert subject and subject == subject.lower(), subject
        if text in self._seen:
            return False
        self._seen.add(text)
        self.rows.append((text, self.category, subject, dependency))
        return True

    def __len__(self):
        return len(self.rows)


def fill(bucket, rng, generators, target, dependency, max_tries=20000):
    """Call generators round-robin (each returns (subject, text)) until the bucket
    has grown by `target` distinct prompts."""
    start = len(bucket)
    tries = 0
    i = 0
    while len(bucket) - start < target:
        tries += 1
        assert tries < max_tries, "generator bank too small for target"
        subject, text = generators[i % len(generators)](rng)
        i += 1
        bucket.add(subject, dependency, text)


# ---------------------------------------------------------------------------
# knowledge
# ---------------------------------------------------------------------------

KNOWLEDGE_SHORT = [
    ("history", "Who was the first emperor of Rome?"),
    ("history", "In what year did the Berlin Wall fall?"),
    ("history", "Which civilisation built the city of Machu Picchu?"),
    ("history", "What was the main purpose of the Silk Road?"),
    ("history", "Who drafted most of the United States Declaration of Independence?"),
    ("history", "Why is the Magna Carta considered historically significant?"),
    ("history", "Which event is usually said to have triggered the First World War?"),
    ("history", "What was the capital of the Byzantine Empire?"),
    ("history", "What did the Rosetta Stone help scholars to decipher?"),
    ("history", "In which year did humans first land on the Moon?"),
    ("history", "Who was Genghis Khan and what did he found?"),
    ("history", "What were the main causes of the Great Depression?"),
    ("history", "What were the main causes of the French Revolution?"),
    ("history", "Which Roman city was buried by Mount Vesuvius in 79 AD?"),
    ("history", "Who was Mansa Musa and why is he remembered?"),
    ("history", "What was the Cold War, in a few sentences?"),
    ("geography", "What is the longest river in South America?"),
    ("geography", "What is the capital city of Australia?"),
    ("geography", "Which desert is the largest hot desert on Earth?"),
    ("geography", "Which ocean lies between Africa and Australia?"),
    ("geography", "What is the highest mountain in Africa?"),
    ("geography", "Which strait separates Spain from Morocco?"),
    ("geography", "What is the capital city of Canada?"),
    ("geography", "Why is the Dead Sea so salty?"),
    ("geography", "How did the Himalayas form?"),
    ("geography", "Which line of latitude divides the Northern and Southern Hemispheres?"),
    ("geography", "What is a fjord and how is one formed?"),
    ("geography", "What is the smallest country in the world by area?"),
    ("geography", "Which continent has the most countries?"),
    ("geography", "What is the difference between a bay and a gulf?"),
    ("biology", "What is the main function of red blood cells?"),
    ("biology", "How many chambers does the human heart have?"),
    ("biology", "Which part of a cell produces most of its energy?"),
    ("biology", "What is the difference between a virus and a bacterium?"),
    ("biology", "How do bees help flowering plants reproduce?"),
    ("biology", "What are the four bases found in DNA?"),
    ("biology", "Why do the leaves of many trees change colour in autumn?"),
    ("biology", "What is the largest organ of the human body?"),
    ("biology", "What do white blood cells do in the body?"),
    ("biology", "What is natural selection, in simple terms?"),
    ("biology", "How do fish get oxygen from water?"),
    ("biology", "What role does chlorophyll play in plants?"),
    ("biology", "Why do humans need vitamin C in their diet?"),
    ("physics", "What is the speed of light in a vacuum?"),
    ("physics", "Why does ice float on liquid water?"),
    ("physics", "What does Newton's third law of motion say?"),
    ("physics", "What is the difference between mass and weight?"),
    ("physics", "Why does the sky look blue during the day?"),
    ("physics", "What does a transformer do in an electricity network?"),
    ("physics", "What is the SI unit of electrical resistance?"),
    ("physics", "How does a rainbow form after rain?"),
    ("physics", "What is absolute zero on the Celsius scale?"),
    ("physics", "Why do astronauts in orbit feel weightless?"),
    ("physics", "Why can sound not travel through a vacuum?"),
    ("physics", "What is the difference between conduction and convection?"),
    ("chemistry", "What is the chemical formula for table salt?"),
    ("chemistry", "What is the pH of pure water at 25 degrees Celsius?"),
    ("chemistry", "Which element has the chemical symbol Fe?"),
    ("chemistry", "What is an isotope of an element?"),
    ("chemistry", "Why does iron rust when left outside?"),
    ("chemistry", "Which gas do plants absorb from the air for photosynthesis?"),
    ("chemistry", "What is the most abundant gas in Earth's atmosphere?"),
    ("chemistry", "What happens when baking soda is mixed with vinegar?"),
    ("chemistry", "What does a catalyst do in a chemical reaction?"),
    ("chemistry", "What is the difference between an acid and a base?"),
    ("chemistry", "Why are the noble gases so unreactive?"),
    ("astronomy", "Which planet is closest to the Sun?"),
    ("astronomy", "What is a light-year a measure of?"),
    ("astronomy", "Why does the Moon appear to change shape during the month?"),
    ("astronomy", "What is the largest planet in our solar system?"),
    ("astronomy", "What causes the seasons on Earth?"),
    ("astronomy", "What is a black hole, in simple terms?"),
    ("astronomy", "Roughly how long does sunlight take to reach Earth?"),
    ("astronomy", "What kind of galaxy is the Milky Way?"),
    ("astronomy", "Which planet is best known for its bright rings?"),
    ("astronomy", "What happens during a total solar eclipse?"),
    ("literature", "Who wrote the novel Pride and Prejudice?"),
    ("literature", "Who is the author of One Hundred Years of Solitude?"),
    ("literature", "How many lines does a traditional sonnet have?"),
    ("literature", "Which ancient poet is traditionally credited with the Odyssey?"),
    ("literature", "What are the main themes of Orwell's Nineteen Eighty-Four?"),
    ("literature", "Who wrote the novel Don Quixote?"),
    ("literature", "What is magical realism in literature?"),
    ("literature", "Which author created the detective Sherlock Holmes?"),
    ("literature", "What makes a poem an epic?"),
    ("literature", "In which language did Dante write the Divine Comedy?"),
    ("economics", "What is inflation, in plain words?"),
    ("economics", "What does a country's GDP measure?"),
    ("economics", "How does the law of supply and demand work?"),
    ("economics", "What is the main job of a central bank?"),
    ("economics", "What is meant by opportunity cost?"),
    ("economics", "What is the difference between a stock and a bond?"),
    ("economics", "How does compound interest differ from simple interest?"),
    ("economics", "Why do countries trade with one another?"),
    ("art", "Who painted the Mona Lisa?"),
    ("art", "What is Impressionism in painting?"),
    ("art", "Which Dutch artist painted The Starry Night?"),
    ("art", "What is a fresco and how is it made?"),
    ("music", "How many keys does a standard modern piano have?"),
    ("music", "Who composed the set of violin concertos called The Four Seasons?"),
    ("music", "What is the difference between a major and a minor key?"),
    ("music", "To which family of instruments does the oboe belong?"),
    ("technology", "What does the abbreviation CPU stand for?"),
    ("technology", "What is the difference between RAM and disk storage?"),
    ("technology", "How does a GPS receiver work out its position?"),
    ("technology", "What is an IP address used for?"),
    ("technology", "What is machine learning, in one paragraph?"),
    ("technology", "What is a semiconductor and why is it useful?"),
    ("technology", "Who is credited with inventing the World Wide Web?"),
    ("technology", "How does a refrigerator keep food cold?"),
]

KNOWLEDGE_CONCEPTS = [
    ("photosynthesis", "biology"),
    ("plate tectonics", "geology"),
    ("the water cycle", "geography"),
    ("inflation", "economics"),
    ("the greenhouse effect", "climate"),
    ("how vaccines work", "medicine"),
    ("the Industrial Revolution", "history"),
    ("the Renaissance", "history"),
    ("black holes", "astronomy"),
    ("simple electric circuits", "physics"),
    ("chemical bonding", "chemistry"),
    ("evolution by natural selection", "biology"),
    ("the immune system", "biology"),
    ("supply and demand", "economics"),
    ("the Cold War", "history"),
    ("ocean tides", "geography"),
    ("the invention of the printing press", "history"),
    ("antibiotic resistance", "medicine"),
    ("democracy in ancient Athens", "history"),
    ("the structure of an atom", "chemistry"),
    ("the phases of the Moon", "astronomy"),
    ("earthquakes", "geology"),
    ("how volcanoes erupt", "geology"),
    ("compound interest", "economics"),
    ("the nitrogen cycle", "biology"),
    ("the human digestive system", "biology"),
    ("renewable energy", "technology"),
    ("how data travels across the internet", "technology"),
    ("public-key encryption", "technology"),
    ("the scientific method", "science"),
    ("the world's climate zones", "geography"),
    ("the Roman Republic", "history"),
    ("monsoons", "geography"),
    ("genetic inheritance", "biology"),
    ("static electricity", "physics"),
    ("the Doppler effect", "physics"),
    ("entropy", "physics"),
    ("the periodic table", "chemistry"),
    ("radiocarbon dating", "chemistry"),
    ("the Big Bang theory", "astronomy"),
    ("exoplanets and how they are found", "astronomy"),
    ("Impressionist painting", "art"),
    ("the Baroque period in music", "music"),
    ("Gothic architecture", "art"),
    ("bird migration", "biology"),
    ("coral reefs", "biology"),
]

KNOWLEDGE_CONCEPT_TEMPLATES = [
    "Explain {c} to a curious twelve-year-old. Use one everyday analogy, avoid jargon, and keep the explanation under 150 words.",
    "Give me a short overview of {c}: the basic idea, why it matters, and one common misconception people have about it.",
    "I am revising for an exam and keep getting confused about {c}. Summarise the key ideas in five bullet points, then give me one quick question to test myself.",
    "Write three multiple-choice quiz questions about {c}, each with four options, and mark the correct answer. Make the questions get progressively harder.",
    "What are the most important things a non-specialist should know about {c}? List four of them and explain briefly why each one matters.",
    "Explain {c} twice: first in two simple sentences, then in a fuller paragraph for a reader who wants more detail and a concrete example.",
    "Describe {c} as if you were writing the opening paragraph of an encyclopedia entry for secondary-school students, and then add a 'Did you know?' fact.",
    "A friend claims that nobody without a science degree could understand {c}. Prove them wrong with a clear, friendly explanation in about 120 words.",
]

KNOWLEDGE_PAIRS = [
    ("mitosis", "meiosis", "biology"),
    ("weather", "climate", "geography"),
    ("nuclear fission", "nuclear fusion", "physics"),
    ("comets", "asteroids", "astronomy"),
    ("an epidemic", "a pandemic", "medicine"),
    ("viruses", "bacteria", "biology"),
    ("speed", "velocity", "physics"),
    ("a republic", "a constitutional monarchy", "politics"),
    ("fiscal policy", "monetary policy", "economics"),
    ("renewable energy", "fossil fuels", "technology"),
    ("the Roman Empire", "the Han dynasty", "history"),
    ("igneous rock", "sedimentary rock", "geology"),
    ("alternating current", "direct current", "physics"),
    ("an element", "a compound", "chemistry"),
    ("a simile", "a metaphor", "literature"),
    ("Baroque music", "Classical-era music", "music"),
    ("a tsunami", "a storm surge", "geography"),
    ("aerobic respiration", "anaerobic respiration", "biology"),
    ("stars", "planets", "astronomy"),
    ("stocks", "bonds", "economics"),
]

KNOWLEDGE_PAIR_TEMPLATES = [
    "I am preparing a short talk for an evening class and need a clear comparison of {a} and {b}. Please structure your answer in four parts. First, define each one in plain language. Second, describe two ways in which they are similar. Third, describe the three most important differences, giving a concrete example for each. Finally, suggest one simple demonstration or everyday observation that would help an audience remember the difference. Keep the whole answer under 400 words and do not use tables.",
    "My study group keeps mixing up {a} and {b}, and we have a test next week. Write a study sheet that starts with a one-sentence definition of each, then lists the key differences as pairs of contrasting bullet points, then gives two example exam questions with model answers. End with a short memory trick that links each term to its meaning. Use simple language, because two members of the group are still learning English, and keep it to roughly one page.",
]

# Notes containing deliberate mistakes; the model must find and correct them.
KNOWLEDGE_NOTES = [
    ("geography", "the water cycle",
     "Water evaporates from oceans and lakes when it is heated by the Sun. The vapour rises, cools and condenses into tiny droplets that form clouds. When the droplets grow heavy enough they fall as rain, snow or hail. Most of Earth's fresh water is stored in rivers and lakes. Water that soaks into the ground becomes groundwater, which can stay underground for thousands of years."),
    ("astronomy", "the solar system",
     "The Sun contains more than 99 per cent of the mass of the solar system. Mercury is the hottest planet because it is closest to the Sun. Jupiter is the largest planet, and its Great Red Spot is a storm wider than Earth. Saturn is the only planet that has rings. Neptune was found in 1846 after astronomers predicted its position mathematically."),
    ("biology", "the human body",
     "The adult human skeleton usually has 206 bones. The heart has four chambers: two atria and two ventricles. Arteries carry blood towards the heart, while veins carry it away from the heart. In the lungs, oxygen and carbon dioxide are exchanged in tiny air sacs called alveoli. The liver produces insulin to control the level of sugar in the blood."),
    ("history", "ancient Rome",
     "According to tradition, Rome was founded in 753 BC. Julius Caesar became the first Roman emperor in 27 BC. The Western Roman Empire is usually said to have ended in 476 AD. Latin developed over the centuries into languages such as Italian, Spanish, French, Portuguese and Romanian. The Colosseum in Rome was used for gladiator contests and other public shows."),
    ("chemistry", "atoms and elements",
     "Atoms are made of protons, neutrons and electrons. Protons carry a negative charge and electrons carry a positive charge. The atomic number of an element is the number of protons in the nucleus of each of its atoms. A water molecule contains two hydrogen atoms and one oxygen atom. Noble gases such as helium and neon react very easily with other elements."),
    ("economics", "inflation",
     "Inflation is a general rise in prices across an economy over time. When inflation is high, each unit of money buys more goods and services than before. Central banks often raise interest rates to try to bring inflation down. Deflation, a general fall in prices, can lead people to delay purchases. GDP measures the total value of goods and services produced in a country over a period."),
    ("physics", "sound and light",
     "Sound travels faster through air than through water. Light travels at about 300,000 kilometres per second in a vacuum. Sound cannot travel through a vacuum because it needs a medium such as air or water. The pitch of a note depends on the frequency of the sound wave. During a storm, we see lightning before we hear thunder because light travels much faster than sound."),
    ("geography", "world geography",
     "The Nile and the Amazon are usually named as the two longest rivers in the world. The Sahara is the largest hot desert on Earth. Mount Everest, on the border between Nepal and China, is the highest mountain above sea level. The Pacific is the smallest of the world's oceans. Australia is both a country and a continent."),
    ("biology", "plants",
     "Plants make their own food by photosynthesis, using sunlight, water and carbon dioxide. Photosynthesis releases nitrogen into the air as a by-product. Chlorophyll, the green pigment in leaves, absorbs mostly red and blue light and reflects green light. Roots take up water and dissolved minerals from the soil. In most plants, the majority of photosynthesis happens in the leaves."),
    ("astronomy", "the Moon",
     "The Moon orbits Earth about once every 27 days. We always see the same side of the Moon because it does not rotate at all. A lunar eclipse happens when Earth passes directly between the Sun and the Moon. The Moon's gravity is the main cause of ocean tides. The first crewed Moon landing took place in July 1969."),
    ("technology", "computer hardware",
     "The CPU carries out the instructions of a program. RAM keeps its contents safely when the computer is switched off. Hard drives and SSDs are used for long-term storage of files. One byte is made up of eight bits. The operating system manages the hardware and allows applications to run."),
    ("literature", "English literature",
     "William Shakespeare wrote Hamlet, Macbeth and Pride and Prejudice. A traditional sonnet has fourteen lines. Homer is traditionally credited with the Iliad and the Odyssey. Mary Shelley's novel Frankenstein was first published in 1818. Charles Dickens wrote Oliver Twist and Great Expectations."),
    ("medicine", "infections",
     "Antibiotics are used to treat bacterial infections. Antibiotics are also the best treatment for the common cold, which is caused by bacteria. Vaccines train the immune system to recognise a particular pathogen. Washing hands with soap helps to prevent the spread of many infections. Overusing antibiotics can encourage bacteria to become resistant to them."),
    ("science", "the history of science",
     "Isaac Newton described the laws of motion and the law of universal gravitation. Charles Darwin proposed the theory of evolution by natural selection. Marie Curie won Nobel Prizes in both physics and chemistry. Galileo Galilei argued that Earth sits motionless at the centre of the universe. Alexander Fleming discovered penicillin in 1928."),
]

KNOWLEDGE_NOTE_TEMPLATES = [
    "Here are my notes from a class on {topic}: \"{notes}\" At least one of these statements is wrong. Identify every incorrect statement, explain briefly why it is wrong, and then rewrite the notes so that they are completely accurate.",
    "A student handed in the following paragraph about {topic} for homework: \"{notes}\" Mark it like a helpful teacher: point out each factual error, give the correct fact, and finish with one sentence of encouragement.",
]


def build_knowledge(rng):
    b = Bucket("knowledge")
    for subject, text in KNOWLEDGE_SHORT:
        b.add(subject, "low", text)
    # Each concept gets two different templates.
    n_t = len(KNOWLEDGE_CONCEPT_TEMPLATES)
    for concept, subject in KNOWLEDGE_CONCEPTS:
        first = rng.randrange(n_t)
        second = (first + 1 + rng.randrange(n_t - 1)) % n_t
        for t in (first, second):
            b.add(subject, "low", KNOWLEDGE_CONCEPT_TEMPLATES[t].format(c=concept))
    for a, bb, subject in KNOWLEDGE_PAIRS:
        template = rng.choice(KNOWLEDGE_PAIR_TEMPLATES)
        b.add(subject, "low", template.format(a=a, b=bb))
    for i, (subject, topic, notes) in enumerate(KNOWLEDGE_NOTES):
        template = KNOWLEDGE_NOTE_TEMPLATES[i % 2]
        b.add(subject, "high", template.format(topic=topic, notes=notes))
    return b


# ---------------------------------------------------------------------------
# math
# ---------------------------------------------------------------------------

NAMES = [
    "Amira", "Ben", "Chen", "Dalia", "Erik", "Fatima", "Gabriel", "Hana",
    "Ivan", "Jaya", "Kofi", "Lucia", "Mateo", "Nadia", "Oscar", "Priya",
    "Quinn", "Rosa", "Samir", "Tariq", "Uma", "Viktor", "Wen", "Yusuf", "Zoe",
    "Aiko", "Bruno", "Carmen", "Dev", "Elena", "Felix", "Greta", "Hugo",
]
CURRENCIES = ["$", "$", "€", "£"]
ORDINAL_POLYGONS = {5: "pentagon", 6: "hexagon", 7: "heptagon", 8: "octagon",
                    9: "nonagon", 10: "decagon", 12: "dodecagon"}


def _fmt_money(cur, x):
    return f"{cur}{x:,.2f}"


def _signed(coef, var="", first=False):
    """Format a polynomial term such as '+ 3x' or '- x' (or '3x' when first)."""
    if coef == 0:
        return ""
    mag = abs(coef)
    body = (var if mag == 1 and var else f"{mag}{var}")
    if first:
        return ("-" if coef < 0 else "") + body
    return (" - " if coef < 0 else " + ") + body


def m_multiply(r):
    a, b = r.randint(12, 99), r.randint(11, 99)
    return "arithmetic", r.choice([
        f"What is {a} multiplied by {b}?",
        f"Calculate {a} × {b} without a calculator and show your method.",
        f"Work out {a} times {b}.",
    ])


def m_add_sub(r):
    a, b, c = r.randint(100, 999), r.randint(100, 999), r.randint(50, 500)
    return "arithmetic", r.choice([
        f"Compute {a} + {b} - {c}.",
        f"What is {a} plus {b}, minus {c}?",
        f"Add {a} and {b}, then subtract {c}. What do you get?",
    ])


def m_divide(r):
    d = r.randint(3, 14)
    q = r.randint(12, 250)
    x, y = r.randint(100, 999), r.randint(6, 29)
    return "arithmetic", r.choice([
        f"What is {d * q} divided by {d}?",
        f"Divide {x} by {y} and round the result to two decimal places.",
        f"How many times does {d} go into {d * q}?",
    ])


def m_percent(r):
    p = r.choice([5, 10, 12, 15, 20, 25, 30, 40, 60, 75])
    n = r.randint(2, 60) * 10
    return "percentages", r.choice([
        f"What is {p}% of {n}?",
        f"Increase {n} by {p}%. What is the result?",
        f"Decrease {n} by {p}% and give the new value.",
        f"{p * n // 100} is what percentage of {n}?" if p * n % 100 == 0 else f"Find {p}% of {n * 3}.",
    ])


def m_percent_change(r):
    cur = r.choice(CURRENCIES)
    a = r.randint(2, 30) * 20
    p = r.choice([10, 15, 20, 25, 30, 40, 50])
    up = r.random() < 0.5
    b = a * (100 + p) / 100 if up else a * (100 - p) / 100
    word = "rises" if up else "falls"
    kind = "increase" if up else "decrease"
    return "percentages", f"A price {word} from {_fmt_money(cur, a)} to {_fmt_money(cur, b)}. What is the percentage {kind}?"


def m_fraction(r):
    b, d = r.choice([(3, 4), (2, 5), (5, 6), (4, 7), (3, 8), (6, 9), (5, 12), (7, 10)])
    a = r.choice([v for v in range(1, b) if math.gcd(v, b) == 1])
    c = r.choice([v for v in range(1, d) if math.gcd(v, d) == 1])
    n = b * r.randint(3, 20)
    return "fractions", r.choice([
        f"Add {a}/{b} and {c}/{d}, and write the answer in simplest form.",
        f"What is {a}/{b} of {n}?",
        f"Subtract {c}/{d} from {a + b}/{b} and simplify the result.",
        f"Multiply {a}/{b} by {c}/{d} and simplify.",
    ])


def m_linear(r):
    x = r.randint(-9, 15)
    a = r.randint(2, 9)
    b = r.choice([i for i in range(-20, 21) if i != 0])
    c = a * x + b
    if r.random() < 0.5:
        return "algebra", f"Solve for x: {a}x{_signed(b)} = {c}."
    k = r.randint(1, 6)
    return "algebra", f"Solve the equation {a}(x - {k}) = {a * (x - k)}."


def m_factor(r):
    r1 = r.choice([i for i in range(-9, 10) if i != 0])
    r2 = r.choice([i for i in range(-9, 10) if i != 0])
    s, p = -(r1 + r2), r1 * r2
    expr = "x²" + _signed(s, "x") + _signed(p)
    return "algebra", r.choice([
        f"Factor the expression {expr}.",
        f"Find the roots of {expr} = 0.",
    ])


def m_system(r):
    x, y = r.randint(-5, 12), r.randint(-5, 12)
    if r.random() < 0.5:
        return "algebra", f"Solve the system of equations x + y = {x + y} and x - y = {x - y}."
    a, b = r.randint(2, 5), r.randint(2, 5)
    return "algebra", f"Solve for x and y: {a}x + y = {a * x + y} and x + {b}y = {x + b * y}."


def m_circle(r):
    rad = r.randint(2, 25)
    return "geometry", r.choice([
        f"What is the area of a circle with a radius of {rad} cm?",
        f"Find the circumference of a circle whose diameter is {2 * rad} metres.",
        f"A circle has an area of {rad * rad}π square units. What is its radius?",
    ])


def m_rectangle(r):
    a, b = r.randint(3, 40), r.randint(3, 40)
    return "geometry", r.choice([
        f"A rectangle measures {a} m by {b} m. What are its area and perimeter?",
        f"A square has a perimeter of {4 * a} cm. What is its area?",
        f"A rectangle has an area of {a * b} square metres and a width of {a} metres. How long is it?",
    ])


def m_hypotenuse(r):
    t = r.choice([(3, 4, 5), (5, 12, 13), (8, 15, 17), (7, 24, 25), (20, 21, 29)])
    k = r.randint(1, 4)
    a, b, c = (v * k for v in t)
    return "geometry", r.choice([
        f"A right triangle has legs of {a} cm and {b} cm. How long is the hypotenuse?",
        f"The hypotenuse of a right triangle is {c} m and one leg is {a} m. Find the other leg.",
    ])


def m_polygon(r):
    n = r.choice(sorted(ORDINAL_POLYGONS))
    return "geometry", r.choice([
        f"What is the sum of the interior angles of a {ORDINAL_POLYGONS[n]}?",
        f"What is each interior angle of a regular {n}-sided polygon?",
    ])


def m_convert(r):
    kind = r.randrange(8)
    if kind == 0:
        return "units", f"Convert {r.randint(3, 120)} kilometres to miles."
    if kind == 1:
        return "units", f"How many seconds are there in {r.randint(2, 30)} hours?"
    if kind == 2:
        return "units", f"Convert {r.randint(-20, 45)} degrees Celsius to Fahrenheit."
    if kind == 3:
        return "units", f"Convert {r.choice([14, 32, 50, 68, 86, 98.6, 104, 212])} degrees Fahrenheit to Celsius."
    if kind == 4:
        return "units", f"How many millilitres are in {r.randint(2, 40) / 4:g} litres?"
    if kind == 5:
        return "units", f"Convert {r.randint(40, 500)} minutes into hours and minutes."
    if kind == 6:
        return "units", f"About how many pounds is {r.randint(2, 95)} kilograms?"
    return "units", f"How many centimetres are in {r.randint(2, 72)} inches?"


def m_dice(r):
    s = r.randint(2, 12)
    return "probability", r.choice([
        f"What is the probability of rolling a total of {s} with two fair six-sided dice?",
        f"Two fair dice are rolled. What is the probability that the total is at least {max(s, 4)}?",
    ])


def m_marbles(r):
    red, blue = r.randint(2, 15), r.randint(2, 15)
    colour = r.choice(["red", "blue"])
    return "probability", f"A bag holds {red} red and {blue} blue marbles. What is the probability of drawing a {colour} marble at random?"


def m_coins(r):
    n = r.randint(3, 8)
    k = r.randint(0, n)
    outcome = "no heads at all" if k == 0 else f"exactly {k} head{'s' if k > 1 else ''}"
    return "probability", f"If you flip a fair coin {n} times, what is the probability of getting {outcome}?"


def m_stats_short(r):
    data = [r.randint(1, 60) for _ in range(r.randint(5, 8))]
    return "statistics", r.choice([
        f"Find the mean and the median of {', '.join(map(str, data))}.",
        f"What is the range of the data set {', '.join(map(str, data))}?",
        f"Find the mode, if there is one, of {', '.join(map(str, data + data[:2]))}.",
    ])


def m_gcd(r):
    g = r.randint(2, 15)
    a, b = g * r.randint(2, 20), g * r.randint(2, 20)
    return "number theory", r.choice([
        f"What is the greatest common divisor of {a} and {b}?",
        f"Find the least common multiple of {a // g + 1} and {b // g + 2}.",
    ])


def m_prime(r):
    n = r.randrange(51, 400, 2)
    return "number theory", r.choice([
        f"Is {n} a prime number? Explain how you checked.",
        f"Write {n + 1} as a product of prime factors.",
    ])


def m_sequence(r):
    kind = r.randrange(4)
    if kind == 0:
        a, d = r.randint(-10, 20), r.randint(2, 9)
        seq = [a + i * d for i in range(5)]
    elif kind == 1:
        a, q = r.randint(1, 5), r.choice([2, 3])
        seq = [a * q ** i for i in range(5)]
    elif kind == 2:
        s = r.randint(1, 6)
        seq = [(s + i) ** 2 for i in range(5)]
    else:
        a, b = r.randint(1, 5), r.randint(1, 6)
        seq = [a, b]
        for _ in range(3):
            seq.append(seq[-1] + seq[-2])
    return "sequences", f"What is the next number in the sequence {', '.join(map(str, seq))}, ...?"


def m_powers(r):
    a = r.randint(2, 30)
    return "arithmetic", r.choice([
        f"What is {a} squared?",
        f"What is the square root of {a * a}?",
        f"Calculate {r.randint(2, 9)} to the power of {r.randint(3, 6)}.",
        f"Write {r.randint(11, 99) * 10 ** r.randint(4, 9):,} in scientific notation.",
    ])


MATH_SHORT_GENERATORS = [
    m_multiply, m_add_sub, m_divide, m_percent, m_percent_change, m_fraction,
    m_linear, m_factor, m_system, m_circle, m_rectangle, m_hypotenuse,
    m_polygon, m_convert, m_dice, m_marbles, m_coins, m_stats_short, m_gcd,
    m_prime, m_sequence, m_powers,
]

SHOP_ITEMS = [
    ("notebooks", "pens"), ("apples", "pears"), ("coffees", "muffins"),
    ("cinema tickets", "bags of popcorn"), ("bags of rice", "bottles of olive oil"),
    ("packets of seeds", "flower pots"), ("paperback books", "bookmarks"),
    ("loaves of bread", "jars of honey"),
]


def w_shopping(r):
    name = r.choice(NAMES)
    cur = r.choice(CURRENCIES)
    i1, i2 = r.choice(SHOP_ITEMS)
    n1, n2 = r.randint(2, 7), r.randint(2, 9)
    p1, p2 = r.randint(150, 1200) / 100, r.randint(50, 600) / 100
    total = n1 * p1 + n2 * p2
    bill = next(v for v in (10, 20, 50, 100, 200) if v > total)
    return "arithmetic", (f"{name} buys {n1} {i1} at {_fmt_money(cur, p1)} each and {n2} {i2} at "
                          f"{_fmt_money(cur, p2)} each, paying with a {cur}{bill} note. How much change "
                          f"should {name} receive? Show your working.")


def w_trains(r):
    v1 = r.choice([60, 70, 80, 90])
    v2 = v1 + r.choice([20, 30, 40, 60])
    h = r.randint(6, 11)
    d = r.choice([1, 2])
    return "word problems", (f"A freight train leaves a station at {h}:00 a.m. travelling at {v1} km/h. "
                             f"{'Two hours' if d > 1 else 'One hour'} later, a passenger train leaves the same station on a "
                             f"parallel track in the same direction at {v2} km/h. At what time does the passenger "
                             f"train catch up with the freight train, and how far from the station are they?")


def w_work_rate(r):
    a, b = r.sample(NAMES, 2)
    ta, tb = r.randint(2, 9), r.randint(3, 12)
    task = r.choice(["paint a fence", "weed the garden", "sort a box of old letters", "tile a bathroom floor"])
    return "word problems", (f"{a} can {task} alone in {ta} hours, and {b} can do the same job alone in {tb} hours. "
                             f"If they work together at these rates, how long will the job take? Give the answer in "
                             f"hours and minutes.")


def w_discount_tax(r):
    cur = r.choice(CURRENCIES)
    price = r.randint(20, 400)
    d = r.choice([10, 15, 20, 25, 30, 35, 40])
    t = r.choice([5, 7, 8, 10, 20])
    item = r.choice(["jacket", "pair of boots", "desk lamp", "backpack", "coffee machine", "bicycle helmet"])
    return "percentages", (f"A {item} originally costs {_fmt_money(cur, price)}. It is discounted by {d}%, and then a "
                           f"sales tax of {t}% is added to the discounted price. What is the final price? Would the "
                           f"result be different if the tax were added before the discount? Explain.")


def w_compound(r):
    name = r.choice(NAMES)
    cur = r.choice(CURRENCIES)
    p = r.randint(5, 80) * 100
    rate = r.choice([1.5, 2, 2.5, 3, 3.5, 4, 5])
    n = r.randint(2, 10)
    return "percentages", (f"{name} deposits {_fmt_money(cur, p)} in a savings account that pays {rate:g}% interest "
                           f"per year, compounded annually. How much will be in the account after {n} years if "
                           f"nothing is withdrawn? Round to the nearest cent and show the formula you used.")


def w_recipe(r):
    s = r.choice([2, 4, 6, 8])
    t = r.choice([v for v in (3, 5, 9, 10, 12, 15) if v != s])
    g = r.randint(4, 12) * 25
    m = r.randint(2, 10) * 50
    e = r.randint(1, 4)
    dish = r.choice(["pancakes", "a sponge cake", "flatbreads", "a batch of scones", "crepes"])
    return "ratios", (f"A recipe for {dish} that serves {s} people uses {g} grams of flour, {m} millilitres of milk "
                      f"and {e} egg{'s' if e > 1 else ''}. How much of each ingredient is needed to serve {t} people? "
                      f"Round the eggs sensibly and explain your rounding.")


def w_ages(r):
    a, b = r.sample(NAMES, 2)
    younger = r.randint(5, 40)
    diff = r.randint(2, 30)
    return "algebra", (f"{a} is {diff} years older than {b}, and the sum of their ages is {2 * younger + diff}. "
                       f"How old is each of them? Set up an equation and solve it.")


def w_same_colour(r):
    red, green, blue = r.randint(2, 8), r.randint(2, 8), r.randint(2, 8)
    return "probability", (f"A box contains {red} red, {green} green and {blue} blue balls. Two balls are drawn at random "
                           f"without replacement. What is the probability that both balls are the same colour? "
                           f"Give the answer as a simplified fraction.")


def w_path(r):
    l, w = r.randint(8, 40), r.randint(5, 25)
    p = r.choice([0.5, 1, 1.5, 2])
    return "geometry", (f"A rectangular garden measures {l} m by {w} m. A gravel path {p:g} m wide is laid all the way "
                        f"around the outside of the garden. What is the area of the path? Draw a quick sketch in words "
                        f"to explain your method.")


def w_fuel(r):
    cur = r.choice(CURRENCIES)
    x = r.randint(45, 95) / 10
    d = r.randint(12, 90) * 10
    c = r.randint(130, 210) / 100
    return "units", (f"A car uses {x:g} litres of fuel per 100 kilometres. How many litres does it need for a trip of "
                     f"{d} kilometres, and how much will the fuel cost if one litre costs {_fmt_money(cur, c)}?")


def w_scores(r):
    data = [r.randint(35, 100) for _ in range(r.randint(7, 11))]
    if r.random() < 0.5:
        data[r.randrange(len(data))] = r.randint(5, 20)
    return "statistics", (f"The test scores of a group of students are {', '.join(map(str, data))}. Calculate the mean, "
                          f"the median and the range. Which of the mean and the median better represents a typical "
                          f"score here, and why?")


def w_quadratic(r):
    r1, r2 = r.randint(-8, 8), r.randint(-8, 8)
    a = r.choice([1, 1, 2, 3])
    b, c = -a * (r1 + r2), a * r1 * r2
    expr = (f"{a}x²" if a > 1 else "x²") + _signed(b, "x") + _signed(c)
    return "algebra", (f"Solve {expr} = 0 using the quadratic formula, then check both solutions by substituting them "
                       f"back into the equation. Explain each step for a student who is seeing the formula for the "
                       f"first time.")


def w_tank(r):
    f = r.randint(8, 30)
    leak = r.randint(1, f - 3)
    v = (f - leak) * r.randint(10, 60)
    return "word problems", (f"A water tank holds {v} litres. An inlet pipe fills it at {f} litres per minute, but a leak "
                             f"drains {leak} litres per minute at the same time. If the tank starts empty, how long does "
                             f"it take to fill completely?")


def w_avg_speed(r):
    d = r.randint(3, 20) * 10
    v1, v2 = r.sample([40, 50, 60, 75, 80, 90, 100, 120], 2)
    return "word problems", (f"A driver travels to a town {d} km away at an average speed of {v1} km/h and returns along "
                             f"the same road at {v2} km/h. What is the average speed for the whole round trip, and why is "
                             f"it not simply the average of the two speeds?")


def w_ratio_share(r):
    a, b, c = r.sample(NAMES, 3)
    x, y, z = r.randint(1, 5), r.randint(1, 5), r.randint(1, 5)
    cur = r.choice(CURRENCIES)
    total = (x + y + z) * r.randint(10, 200)
    return "ratios", (f"{a}, {b} and {c} share a prize of {cur}{total:,} in the ratio {x}:{y}:{z}. How much does each "
                      f"person receive? Check that your three amounts add up to the total.")


def w_mixture(r):
    while True:
        p1, p2 = r.choice([5, 10, 15, 20]), r.choice([30, 40, 50, 60])
        x, v = r.randint(1, 12), r.randint(1, 12)
        num = p1 * x + p2 * v
        if num % (x + v) == 0:
            break
    p = num // (x + v)
    return "algebra", (f"How many litres of a {p1}% salt solution must be mixed with {v} litres of a {p2}% salt solution "
                       f"to obtain a mixture that is {p}% salt? Set up and solve an equation.")


def w_pace(r):
    d = r.choice([5, 10, 15, 21.1, 42.2])
    m = int(d * r.uniform(4.2, 7.5))
    return "units", (f"A runner completes a {d:g} km race in {m} minutes. What was the average pace in minutes and "
                     f"seconds per kilometre, and what was the average speed in kilometres per hour?")


def w_class_travel(r):
    n = r.choice([20, 24, 25, 28, 30, 32, 36, 40])
    p = r.choice([v for v in (10, 20, 25, 40, 50, 60, 75) if n * v % 100 == 0 and n * v // 100 < n - 2])
    walk = n * p // 100
    bus = r.randint(1, n - walk - 1)
    return "percentages", (f"In a class of {n} students, {p}% walk to school, {bus} come by bus and the rest cycle. How "
                           f"many students cycle, and what percentage of the class is that?")


def w_at_least_one(r):
    n = r.randint(2, 6)
    face = r.choice(["six", "one", "three"])
    return "probability", (f"A fair six-sided die is rolled {n} times. What is the probability of getting at least one "
                           f"{face}? Give the answer as a fraction and as a percentage to one decimal place, and explain "
                           f"why it is easier to work with the complement.")


def w_cylinder(r):
    rad = r.choice([0.5, 0.75, 1, 1.2, 1.5, 2])
    h = r.choice([1, 1.5, 2, 2.5, 3, 4])
    return "geometry", (f"A cylindrical water tank has an internal radius of {rad:g} m and a height of {h:g} m. How many "
                        f"litres of water can it hold when full? Use 1 cubic metre = 1000 litres and round to the "
                        f"nearest litre.")


def w_flight(r):
    hh, mm = r.randint(0, 23), r.choice([0, 5, 15, 20, 35, 40, 45, 50])
    dh, dm = r.randint(1, 13), r.choice([10, 25, 30, 45, 55])
    tz = r.choice([-8, -5, -3, 1, 2, 3, 5, 8, 9])
    direction = "ahead of" if tz > 0 else "behind"
    return "word problems", (f"A flight departs at {hh:02d}:{mm:02d} local time and the journey takes {dh} hours "
                             f"{dm} minutes. The destination is {abs(tz)} hour{'s' if abs(tz) > 1 else ''} {direction} "
                             f"the departure city. What is the local time at the destination when the plane lands?")


def w_wages(r):
    name = r.choice(NAMES)
    cur = r.choice(CURRENCIES)
    w = r.randint(1200, 3200) / 100
    h = r.randint(41, 56)
    return "arithmetic", (f"{name} earns {_fmt_money(cur, w)} per hour for the first 40 hours each week and time-and-a-half "
                          f"for every hour after that. How much does {name} earn in a week with {h} hours of work?")


MATH_CONCEPTUAL = [
    ("number theory", "Explain why the sum of any two odd numbers is always even, using algebra rather than examples. Then say whether the same is true for the product of two odd numbers."),
    ("number theory", "Show that a number is divisible by 3 exactly when the sum of its digits is divisible by 3. A careful argument for three-digit numbers is enough."),
    ("algebra", "Explain, with a worked example, why multiplying both sides of an inequality by a negative number reverses the direction of the inequality sign."),
    ("geometry", "Explain why the angles of any triangle add up to 180 degrees, using a line drawn through one vertex parallel to the opposite side."),
    ("probability", "A friend says that after five heads in a row, tails is 'due' on the next flip of a fair coin. Explain clearly why this reasoning is wrong."),
    ("statistics", "Explain the difference between the mean and the median, and describe a real situation in which reporting the mean would give a misleading picture."),
    ("arithmetic", "Explain why dividing by a fraction is the same as multiplying by its reciprocal. Use a picture-based example involving pizzas or ribbons."),
    ("algebra", "What does it mean for two quantities to be inversely proportional? Give an everyday example and write the relationship as an equation."),
    ("number theory", "Explain why there are infinitely many prime numbers, in a way that a motivated fifteen-year-old could follow step by step."),
    ("geometry", "Why does doubling the side length of a cube multiply its volume by eight? Explain in words and then with a formula."),
    ("probability", "Explain the birthday problem: why is it more likely than not that two people in a group of 23 share a birthday? Give the intuition before any formula."),
    ("arithmetic", "Explain why 0.999... (with the nines repeating forever) is equal to 1, giving two different arguments."),
    ("statistics", "What is the difference between correlation and causation? Invent a realistic example in which two things are correlated but neither causes the other."),
    ("algebra", "Explain what the slope and the y-intercept of a straight line mean, using the example of a taxi fare that has a fixed charge plus a price per kilometre."),
]

MATH_MEDIUM_GENERATORS = [
    w_shopping, w_trains, w_work_rate, w_discount_tax, w_compound, w_recipe,
    w_ages, w_same_colour, w_path, w_fuel, w_scores, w_quadratic, w_tank,
    w_avg_speed, w_ratio_share, w_mixture, w_pace, w_class_travel,
    w_at_least_one, w_cylinder, w_flight, w_wages,
]

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def l_bookshop(r):
    cur = r.choice(CURRENCIES)
    sales = [r.randint(12, 90) for _ in DAYS]
    price = r.randint(8, 22)
    fixed = r.randint(8, 30) * 100
    margin = r.choice([25, 30, 35, 40])
    shop = r.choice(["bookshop", "bakery", "bicycle-repair shop", "flower stall", "record shop"])
    unit = {"bookshop": "books", "bakery": "cakes", "bicycle-repair shop": "repairs",
            "flower stall": "bouquets", "record shop": "records"}[shop]
    week = "; ".join(f"{d} {s}" for d, s in zip(DAYS, sales))
    return "statistics", (f"A small {shop} recorded how many {unit} it sold during one week: {week}. The average "
                          f"price is {cur}{price} per item, the owner keeps a margin of {margin}% of each sale as gross "
                          f"profit, and the shop's fixed costs are {cur}{fixed:,} per week. (1) How many {unit} were "
                          f"sold in total? (2) On which day were sales highest, and by what percentage did that day "
                          f"exceed the daily average? (3) Did the shop cover its fixed costs this week? Show your "
                          f"working for each part and state any assumptions.")


def l_budget(r):
    cur = r.choice(CURRENCIES)
    name = r.choice(NAMES)
    income = r.randint(18, 45) * 100
    rent = int(income * r.uniform(0.25, 0.4) // 10 * 10)
    food = r.randint(25, 60) * 10
    transport = r.randint(5, 25) * 10
    bills = r.randint(8, 25) * 10
    fun = r.randint(5, 30) * 10
    goal = r.randint(10, 60) * 100
    return "percentages", (f"{name} takes home {cur}{income:,} a month. Monthly spending is: rent {cur}{rent}, food "
                           f"{cur}{food}, transport {cur}{transport}, utility and phone bills {cur}{bills}, and "
                           f"entertainment {cur}{fun}. Everything left over goes into savings. (a) How much does {name} "
                           f"save each month, and what percentage of income is that? (b) {name} wants to save "
                           f"{cur}{goal:,} for a trip. How many months will that take? (c) If rent rises by 8% next "
                           f"year and nothing else changes, how many extra months will the goal take? Present the "
                           f"numbers in a small table before answering.")


def l_grades(r):
    name = r.choice(NAMES)
    w1, w2 = r.choice([(20, 30), (25, 25), (15, 35), (30, 30), (10, 40)])
    w3 = 100 - w1 - w2
    hw, mid = r.randint(55, 98), r.randint(45, 95)
    target = r.choice([60, 65, 70, 75, 80, 85])
    return "statistics", (f"In a course, the final grade is a weighted average of three parts: homework counts for "
                          f"{w1}%, the midterm exam for {w2}% and the final exam for {w3}%. {name} has a homework "
                          f"average of {hw} and scored {mid} on the midterm; all scores are out of 100. (1) What is "
                          f"{name}'s grade so far, counting only the parts already completed and rescaling their "
                          f"weights? (2) What is the lowest final-exam score that gives an overall grade of at least "
                          f"{target}? (3) Is it still possible to reach an overall grade of 90? Explain your reasoning "
                          f"in full sentences, not only equations.")


def l_trip(r):
    legs = []
    for _ in range(3):
        legs.append((r.randint(4, 30) * 10, r.choice([50, 60, 70, 80, 90, 100, 110])))
    brk = r.choice([15, 20, 30, 45])
    start_h = r.randint(6, 10)
    cities = r.sample(["Arlow", "Brenfield", "Castor", "Dunmere", "Elston", "Fairhaven", "Glenridge"], 4)
    legs_txt = "; ".join(f"{cities[i]} to {cities[i + 1]}: {d} km at an average of {v} km/h"
                         for i, (d, v) in enumerate(legs))
    return "word problems", (f"A family is planning a road trip through four towns. The legs are: {legs_txt}. They "
                             f"plan to stop for {brk} minutes at each of the two intermediate towns, and they will leave "
                             f"{cities[0]} at {start_h}:00 a.m. (1) What is the total driving distance? (2) How long "
                             f"will they spend actually driving? (3) At what time should they expect to arrive in "
                             f"{cities[3]}? (4) What was their average speed for the whole journey, including the "
                             f"stops? Round times to the nearest minute and show each calculation.")


def l_floor(r):
    cur = r.choice(CURRENCIES)
    rooms = [("living room", r.randint(4, 7), r.randint(4, 6)),
             ("kitchen", r.randint(3, 5), r.randint(2, 4)),
             ("hallway", r.randint(5, 9), 1),
             ("bedroom", r.randint(3, 5), r.randint(3, 5))]
    price = r.randint(18, 55)
    waste = r.choice([5, 10, 15])
    pack = r.choice([1.5, 2, 2.2, 2.5])
    parts = [f"the {n} is {a} m by {b} m" for n, a, b in rooms]
    rooms_txt = ", ".join(parts[:-1]) + " and " + parts[-1]
    return "geometry", (f"A couple wants to lay new wooden flooring in part of their flat. According to the plan, "
                        f"{rooms_txt}. The flooring is sold in packs covering {pack:g} square metres, each costing "
                        f"{cur}{price}, and the fitter recommends buying {waste}% extra to allow for cutting and "
                        f"waste. (1) What is the total floor area to be covered? (2) How many packs must they buy? "
                        f"(3) What will the flooring cost? (4) If they decide not to do the hallway, how much money "
                        f"do they save? Explain each step.")


def l_game(r):
    cur = r.choice(CURRENCIES)
    cost = r.choice([1, 2, 3, 5])
    prize_six = cost * r.randint(3, 6)
    prize_double = cost * r.randint(8, 20)
    return "probability", (f"At a school fair, a game costs {cur}{cost} to play. The player rolls two fair six-sided "
                           f"dice. If both dice show the same number, the player wins {cur}{prize_double}. Otherwise, "
                           f"if at least one die shows a six, the player wins {cur}{prize_six}. In every other case the "
                           f"player wins nothing. (1) What is the probability of each outcome? (2) What is the expected "
                           f"profit or loss for a player per game? (3) If 300 games are played during the afternoon, "
                           f"how much money should the school expect to make or lose? (4) Suggest a change to one prize "
                           f"that would make the game fair, and justify it.")


MATH_LONG_GENERATORS = [l_bookshop, l_budget, l_grades, l_trip, l_floor, l_game]


def build_math(rng):
    b = Bucket("math")
    fill(b, rng, MATH_SHORT_GENERATORS, 90, "low")
    for subject, text in MATH_CONCEPTUAL:
        b.add(subject, "low", text)
    fill(b, rng, MATH_MEDIUM_GENERATORS, 100, "medium")
    fill(b, rng, MATH_LONG_GENERATORS, 36, "high")
    return b


# ---------------------------------------------------------------------------
# programming
# ---------------------------------------------------------------------------

PROGRAMMING_SHORT = [
    ("python", "What is the difference between a list and a tuple in Python?"),
    ("python", "How do you read a text file line by line in Python?"),
    ("python", "What does the yield keyword do in a Python function?"),
    ("python", "What is a decorator in Python, and when would you use one?"),
    ("python", "How do list comprehensions work in Python?"),
    ("python", "What is the difference between `is` and `==` in Python?"),
    ("python", "Why are mutable default arguments dangerous in Python?"),
    ("python", "What does `if __name__ == \"__main__\":` do in a Python script?"),
    ("python", "How do you create and activate a Python virtual environment?"),
    ("python", "What is the Global Interpreter Lock in CPython?"),
    ("python", "How do you sort a list of dictionaries by one key in Python?"),
    ("python", "What are *args and **kwargs in a Python function definition?"),
    ("rust", "What does ownership mean in Rust?"),
    ("rust", "What is the difference between String and &str in Rust?"),
    ("rust", "What does the ? operator do in Rust?"),
    ("rust", "When should you use Box<T> in Rust?"),
    ("rust", "What is a lifetime annotation in Rust, and why is it needed?"),
    ("rust", "What is the difference between Rc and Arc in Rust?"),
    ("rust", "How does pattern matching with match work in Rust?"),
    ("rust", "What are traits used for in Rust?"),
    ("rust", "Why does Rust forbid two mutable references to the same value at once?"),
    ("rust", "What does #[derive(Debug)] do on a Rust struct?"),
    ("rust", "When should a Rust function return Option rather than Result?"),
    ("sql", "What is the difference between an INNER JOIN and a LEFT JOIN?"),
    ("sql", "What does GROUP BY do in a SQL query?"),
    ("sql", "What is a primary key in a relational database?"),
    ("sql", "What is the difference between WHERE and HAVING in SQL?"),
    ("sql", "What is database normalisation, briefly?"),
    ("sql", "What is a database index, and why would you add one?"),
    ("sql", "How do you remove duplicate rows from a SQL query result?"),
    ("sql", "What does a foreign key constraint enforce?"),
    ("sql", "What is a SQL injection attack and how do you prevent it?"),
    ("sql", "What is a transaction in a relational database?"),
    ("javascript", "What is the difference between let, const and var in JavaScript?"),
    ("javascript", "What is a Promise in JavaScript?"),
    ("javascript", "What do async and await do in JavaScript?"),
    ("javascript", "What is the difference between == and === in JavaScript?"),
    ("javascript", "What is a closure in JavaScript? Give a tiny example."),
    ("javascript", "How does the JavaScript event loop work?"),
    ("javascript", "What does Array.prototype.map return in JavaScript?"),
    ("javascript", "What is the DOM in web development?"),
    ("javascript", "Why does the value of `this` confuse people in JavaScript?"),
    ("c", "What is a pointer in C?"),
    ("c", "What is the difference between malloc and calloc in C?"),
    ("c", "What causes a segmentation fault in a C program?"),
    ("c", "Why must C strings end with a null character?"),
    ("c", "What does the static keyword mean for a variable inside a C function?"),
    ("c", "What is undefined behaviour in C? Give two examples."),
    ("c", "What is the difference between stack and heap memory?"),
    ("c", "What does the const qualifier do in C?"),
    ("shell", "How do you list hidden files in a Linux terminal?"),
    ("shell", "What does the pipe symbol | do in a shell command?"),
    ("shell", "How do you find all .log files in a directory tree?"),
    ("shell", "What does chmod +x script.sh do?"),
    ("shell", "How do you count the lines in a file from the command line?"),
    ("shell", "What is the difference between > and >> in Bash?"),
    ("shell", "How do you make a Bash script stop at the first failing command?"),
    ("shell", "What does grep -rn TODO . print?"),
    ("shell", "How do you find which process is listening on a port in Linux?"),
    ("algorithms", "What is the time complexity of binary search?"),
    ("algorithms", "How does the quicksort algorithm work?"),
    ("algorithms", "What is dynamic programming, in simple terms?"),
    ("algorithms", "What is the difference between breadth-first and depth-first search?"),
    ("algorithms", "How does a hash table handle collisions?"),
    ("algorithms", "Why is merge sort a stable sorting algorithm?"),
    ("algorithms", "What is Big-O notation used for?"),
    ("algorithms", "What is a binary heap and what is it good for?"),
    ("algorithms", "Why does Dijkstra's algorithm fail with negative edge weights?"),
    ("algorithms", "What is memoisation, and how does it speed up recursion?"),
    ("algorithms", "What is the difference between a stack and a queue?"),
    ("algorithms", "What makes an algorithm greedy? Give an example."),
    ("git", "What is the difference between git merge and git rebase?"),
    ("git", "What does git stash do?"),
    ("git", "How do you undo the last commit in Git but keep the changes?"),
    ("concurrency", "What is a race condition?"),
    ("concurrency", "What is the difference between a process and a thread?"),
    ("concurrency", "What is a deadlock, and how can it be avoided?"),
    ("general", "What is recursion? Give a simple example."),
    ("general", "What is unit testing and why is it useful?"),
    ("web", "What is a REST API?"),
    ("web", "What is JSON, and why is it so widely used?"),
    ("web", "What happens when you type a URL into a browser and press Enter?"),
    ("web", "What is the difference between HTTP GET and POST requests?"),
]

PROGRAMMING_TASKS = [
    "checks whether a string is a palindrome, ignoring case, spaces and punctuation",
    "returns the n-th Fibonacci number using an iterative approach",
    "counts how many times each word appears in a piece of text",
    "merges two sorted lists of integers into one sorted list",
    "removes duplicate values from a list while keeping the original order",
    "checks whether two strings are anagrams of each other",
    "finds the second largest distinct number in a list of integers",
    "converts a Roman numeral such as 'XIV' into an integer",
    "validates that a string of brackets such as '([]{})' is balanced",
    "returns all prime numbers below a given limit using the Sieve of Eratosthenes",
    "rotates an array to the right by k positions",
    "computes the greatest common divisor of two integers with Euclid's algorithm",
    "performs binary search on a sorted array and returns the index of the target or -1",
    "reverses the order of the words in a sentence without reversing the letters",
    "finds the longest common prefix of a list of strings",
    "computes the moving average of a list of numbers for a given window size",
    "checks whether a positive integer is a power of two using bit operations",
    "transposes a matrix stored as a list of rows",
    "computes the run-length encoding of a string, so that 'aaabcc' becomes 'a3b1c2'",
    "returns the k most frequent elements in a list",
    "splits a list into chunks of a given size",
    "calculates the Levenshtein edit distance between two strings",
    "decides whether a given year is a leap year in the Gregorian calendar",
    "capitalises the first letter of every word in a sentence",
    "finds the index of the first non-repeating character in a string",
    "sums the decimal digits of a non-negative integer",
    "checks whether a string is a valid IPv4 address such as '192.168.0.1'",
    "converts a number of seconds into a string like '2h 05m 09s'",
]

PROGRAMMING_LANGS = ["Python", "Rust", "JavaScript", "C", "Go", "Java"]

PROGRAMMING_CONSTRAINTS = [
    "Include two example calls and their expected output.",
    "Handle empty or invalid input gracefully and explain how.",
    "Do not use any external libraries, and state the time complexity.",
    "Add a short comment explaining the key idea, and include a few unit tests.",
    "Keep it readable rather than clever, and explain any edge cases you considered.",
    "Write it first in the simplest way, then suggest one optimisation.",
]

SHELL_TASKS = [
    "renames every .jpeg file in the current directory so that it uses the .jpg extension",
    "prints the ten largest files under a given directory, with human-readable sizes",
    "backs up a directory into a tar.gz archive whose name contains today's date",
    "counts the lines of Python code in a project, excluding blank lines and comment lines",
    "checks whether a web page returns HTTP status 200 and prints a warning otherwise",
    "deletes files older than 30 days in a log directory, but only after asking for confirmation",
    "prints the five most common IP addresses in a web server access log",
    "waits until a given file appears and then prints its contents",
    "converts every .wav file in a folder to .mp3 using ffmpeg, skipping files already converted",
    "prints a warning when disk usage on the root filesystem goes above 90 per cent",
]

SQL_SCHEMAS = [
    ("employees(id, name, department, salary, hire_date)", [
        "lists the three highest-paid employees in each department",
        "returns the average salary per department, showing only departments with more than five employees",
        "finds employees who were hired in the last 90 days",
        "shows each department together with the name of its most recently hired employee",
        "counts how many employees were hired in each calendar year",
        "finds employees whose salary is above the average salary of their own department",
    ]),
    ("customers(id, name, city) and orders(id, customer_id, total, created_at)", [
        "lists customers who have never placed an order",
        "returns the total amount spent by each customer in 2023, highest first",
        "finds the city with the largest number of orders",
        "shows each customer's first order date and most recent order date",
        "returns customers who placed at least three orders in a single month",
        "computes the monthly revenue for the last twelve months",
    ]),
    ("books(id, title, author_id, published_year), authors(id, name, country) and loans(id, book_id, member_id, loan_date, return_date)", [
        "lists the ten most borrowed books with their authors' names",
        "finds loans that are still open after more than 21 days",
        "counts how many books from each country's authors were borrowed last year",
        "returns authors none of whose books have ever been borrowed",
        "shows, for each member, the number of distinct authors they have borrowed",
    ]),
]

# Code snippets to explain, predict, debug or review. Raw strings keep the
# backslashes in the code exactly as written.
PROGRAMMING_SNIPPETS = [
    ("python", r'''def average(numbers):
    total = 0
    for n in numbers:
        total += n
    return total / len(numbers)

print(average([4, 8, 15, 16, 23, 42]))
print(average([]))''', [
        "What does this Python program print, and why does the second call fail? Suggest a fix that returns None for an empty list.",
        "Add type hints and a docstring to this function, and write two pytest tests for it, one of which covers the empty list.",
    ]),
    ("python", r'''def add_item(item, basket=[]):
    basket.append(item)
    return basket

print(add_item("apple"))
print(add_item("bread"))''', [
        "Predict the exact output of this code and explain why the result surprises many people.",
        "Rewrite this function so that every call without a basket argument starts with a new empty list, and explain the change.",
    ]),
    ("python", r'''def find_max_index(values):
    best = 0
    for i in range(1, len(values) - 1):
        if values[i] > values[best]:
            best = i
    return best''', [
        "This function should return the index of the largest value in a list, but it sometimes gives the wrong answer. Find the bug, give an input that exposes it, and fix it.",
        "Explain how this function works line by line, and describe what it returns for an empty list.",
    ]),
    ("python", r'''import collections

def top_words(text, n=3):
    words = text.lower().split()
    counts = collections.Counter(words)
    return counts.most_common(n)

print(top_words("the cat and the hat and the bat"))''', [
        "What does this program print? Explain how Counter.most_common orders words that have the same count.",
        "Words followed by punctuation, such as 'cat,' and 'cat.', are counted separately from 'cat'. Modify the function so that punctuation is ignored.",
    ]),
    ("python", r'''def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)

print([fib(i) for i in range(10)])''', [
        "What does this program print, and what is the time complexity of fib? Show two different ways to make fib(60) fast.",
        "Explain to a beginner how the recursion in this function unfolds for fib(4), drawing the call tree in text.",
    ]),
    ("python", r'''class BankAccount:
    def __init__(self, owner, balance=0):
        self.owner = owner
        self.balance = balance

    def withdraw(self, amount):
        self.balance -= amount
        return self.balance

acct = BankAccount("Ada", 100)
acct.withdraw(150)
print(acct.balance)''', [
        "Review this class as if you were doing a code review. What problems do you see, and how would you fix them?",
        "Add a deposit method, and make withdraw raise a ValueError when the amount is negative or larger than the balance. Show the updated class.",
    ]),
    ("python", r'''def count_lines(path):
    f = open(path)
    n = 0
    for line in f:
        if line.strip():
            n += 1
    return n''', [
        "What exactly does this function count? Rewrite it using a with statement and explain why that is better.",
    ]),
    ("python", r'''scores = {"ana": 82, "ben": 95, "chloe": 78, "dev": 95}
ranking = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
for place, (name, score) in enumerate(ranking, start=1):
    print(place, name, score)''', [
        "What exactly does this code print? Explain the role of the sort key and why the score is negated.",
        "Modify this code so that students with equal scores share the same place number, as in a sports table.",
    ]),
    ("algorithms", r'''def two_sum(nums, target):
    for i in range(len(nums)):
        for j in range(i + 1, len(nums)):
            if nums[i] + nums[j] == target:
                return i, j
    return None''', [
        "What is the time complexity of this function? Rewrite it to run in linear time and explain the memory trade-off.",
    ]),
    ("algorithms", r'''def binary_search(a, x):
    lo, hi = 0, len(a)
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < x:
            lo = mid
        else:
            hi = mid
    return lo if lo < len(a) and a[lo] == x else -1''', [
        "This binary search can loop forever on some inputs. Find a small input that triggers the problem, explain why, and fix the bug.",
        "Explain the loop invariant of this binary search and use it to argue that the corrected version always terminates.",
    ]),
    ("rust", r'''fn main() {
    let mut names = vec![String::from("Ana"), String::from("Ben")];
    let first = &names[0];
    names.push(String::from("Cal"));
    println!("{}", first);
}''', [
        "This Rust program does not compile. Explain the borrow checker's complaint and show two different ways to fix it.",
        "Why would it actually be unsafe to allow this code, even though it looks harmless? Explain what could happen in memory when the vector grows.",
    ]),
    ("rust", r'''fn find_even(nums: &[i32]) -> Option<i32> {
    for &n in nums {
        if n % 2 == 0 {
            return Some(n);
        }
    }
    None
}

fn main() {
    let v = vec![3, 7, 10, 4];
    match find_even(&v) {
        Some(n) => println!("first even: {}", n),
        None => println!("no even numbers"),
    }
}''', [
        "What does this program print? Then rewrite find_even as a single expression using iterator adapters.",
        "Explain how Option is used here and why Rust prefers it to returning a sentinel value such as -1.",
    ]),
    ("rust", r'''use std::num::ParseIntError;

fn sum_strings(items: &[&str]) -> Result<i32, ParseIntError> {
    let mut total = 0;
    for s in items {
        total += s.trim().parse::<i32>()?;
    }
    Ok(total)
}''', [
        "Explain what the ? operator does in this function, and what sum_strings returns for the input [\"1\", \" 2\", \"x\"].",
        "Write unit tests for this function that cover a successful sum, surrounding whitespace, and a parse failure.",
    ]),
    ("rust", r'''use std::collections::HashMap;

struct Inventory {
    items: HashMap<String, u32>,
}

impl Inventory {
    fn add(&mut self, name: &str, qty: u32) {
        *self.items.entry(name.to_string()).or_insert(0) += qty;
    }

    fn remove(&mut self, name: &str, qty: u32) -> bool {
        match self.items.get_mut(name) {
            Some(count) if *count >= qty => {
                *count -= qty;
                true
            }
            _ => false,
        }
    }
}''', [
        "Explain what the add and remove methods do, including how the entry API and the match guard work.",
        "Add a method that returns the names of all items whose quantity is zero, sorted alphabetically, and a constructor called new.",
    ]),
    ("rust", r'''fn factorial(n: u32) -> u32 {
    (1..=n).product()
}

fn main() {
    for n in [5, 10, 13] {
        println!("{}! = {}", n, factorial(n));
    }
}''', [
        "What happens when this program is run as a debug build, and why? Suggest a version of factorial that reports overflow instead of panicking.",
    ]),
    ("rust", r'''use std::thread;

fn main() {
    let mut counter = 0;
    let mut handles = Vec::new();
    for _ in 0..4 {
        handles.push(thread::spawn(|| {
            counter += 1;
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    println!("{}", counter);
}''', [
        "Why does this Rust program fail to compile? Rewrite it so that four threads safely increment a shared counter, and explain your choice of types.",
    ]),
    ("javascript", r'''for (var i = 0; i < 3; i++) {
  setTimeout(function () {
    console.log(i);
  }, 100);
}''', [
        "What does this code log, and why? Give two different ways to make it log 0, 1 and 2.",
    ]),
    ("javascript", r'''async function loadUsers(ids) {
  const users = [];
  ids.forEach(async (id) => {
    const res = await fetch(`/api/users/${id}`);
    users.push(await res.json());
  });
  return users;
}''', [
        "This function often returns an empty array. Explain why, and fix it so that all users are fetched in parallel.",
        "Besides the empty-array problem, what else could go wrong with this function in production? Suggest improvements for error handling.",
    ]),
    ("javascript", r'''console.log(0 == "");
console.log(null == undefined);
console.log(null === undefined);
console.log([1, 2] + [3]);
console.log(typeof NaN);''', [
        "Predict the output of each line and explain the language rule behind each result.",
    ]),
    ("javascript", r'''function debounce(fn, delay) {
  let timer = null;
  return function (...args) {
    clearTimeout(timer);
    timer = setTimeout(() => fn.apply(this, args), delay);
  };
}''', [
        "Explain what this function does and give a realistic example of when you would use it on a web page.",
        "Write a few tests for this debounce function using fake timers, and explain what each test checks.",
    ]),
    ("javascript", r'''const orders = [
  { id: 1, customer: "lee", total: 40 },
  { id: 2, customer: "kim", total: 15 },
  { id: 3, customer: "lee", total: 25 },
];

const result = orders
  .filter((o) => o.total > 20)
  .reduce((acc, o) => {
    acc[o.customer] = (acc[o.customer] || 0) + o.total;
    return acc;
  }, {});

console.log(result);''', [
        "What does this code log? Walk through each step of the filter and reduce chain.",
        "Rewrite this code as a plain for loop, and say which version you find clearer and why.",
    ]),
    ("c", r'''#include <stdio.h>
#include <string.h>

int main(void) {
    char name[8];
    strcpy(name, "Bartholomew");
    printf("Hello, %s\n", name);
    return 0;
}''', [
        "What is wrong with this C program, and why is it dangerous? Rewrite it safely.",
    ]),
    ("c", r'''#include <stdio.h>

void swap(int a, int b) {
    int tmp = a;
    a = b;
    b = tmp;
}

int main(void) {
    int x = 1, y = 2;
    swap(x, y);
    printf("%d %d\n", x, y);
    return 0;
}''', [
        "Why does this program print 1 2 instead of 2 1? Fix it using pointers and explain the difference between passing by value and by address.",
    ]),
    ("c", r'''#include <stdlib.h>

struct node {
    int value;
    struct node *next;
};

int length(struct node *head) {
    int n = 0;
    while (head != NULL) {
        n++;
        head = head->next;
    }
    return n;
}

void free_list(struct node *head) {
    while (head != NULL) {
        free(head);
        head = head->next;
    }
}''', [
        "One of these two functions has a serious bug. Find it, explain what could happen at run time, and fix it.",
        "Explain how the length function works, then write a recursive version and discuss whether recursion is a good idea for very long lists.",
    ]),
    ("c", r'''#include <stdio.h>

int sum(int arr[]) {
    int total = 0;
    for (size_t i = 0; i < sizeof(arr) / sizeof(arr[0]); i++) {
        total += arr[i];
    }
    return total;
}

int main(void) {
    int data[] = {1, 2, 3, 4, 5, 6};
    printf("%d\n", sum(data));
    return 0;
}''', [
        "Why does this program not print 21 on a typical 64-bit system? Explain array-to-pointer decay and fix the function.",
    ]),
    ("sql", r'''SELECT c.name, COUNT(o.id) AS order_count
FROM customers c
LEFT JOIN orders o ON o.customer_id = c.id
WHERE o.created_at >= '2024-01-01'
GROUP BY c.name;''', [
        "The author wanted every customer listed, including those with no orders in 2024, but those customers disappear from the result. Explain why and fix the query.",
    ]),
    ("sql", r'''SELECT department, AVG(salary)
FROM employees
WHERE AVG(salary) > 50000
GROUP BY department;''', [
        "This query is rejected by the database. Explain the error and rewrite the query correctly.",
    ]),
    ("sql", r'''SELECT p.name, SUM(oi.quantity * oi.unit_price) AS revenue
FROM products p
JOIN order_items oi ON oi.product_id = p.id
GROUP BY p.id, p.name
ORDER BY revenue DESC
LIMIT 5;''', [
        "Explain in plain English what this query returns, then modify it to include only products whose revenue exceeds 1000.",
        "Would products that have never been ordered appear in the result of this query? Explain, and show how to include them with a revenue of zero.",
    ]),
    ("shell", r'''#!/bin/bash
for f in $(ls *.txt); do
  wc -l $f
done''', [
        "What goes wrong with this script when file names contain spaces? Rewrite it so that it is robust.",
    ]),
    ("shell", r'''#!/bin/bash
set -euo pipefail
src="$1"
dest="backup-$(date +%Y%m%d).tar.gz"
tar -czf "$dest" "$src"
echo "Created $dest"''', [
        "Explain each line of this script, including what set -euo pipefail does.",
        "What happens if this script is run without an argument? Change it to print a helpful usage message instead.",
    ]),
]

# Longer specification-style tasks whose requirements are given in the prompt.
PROGRAMMING_SPECS = [
    ("python", "Write a Python command-line program that reads a CSV file of expenses with the columns date, category and amount, and prints a monthly summary. Requirements: the file path is given as the first command-line argument; dates use the format YYYY-MM-DD; the output lists each month in order, with the total per category and a grand total for the month, aligned in columns; rows with a missing or non-numeric amount are skipped, but a warning with the line number is printed for each one; and an optional --category flag restricts the output to a single category. Use only the standard library and include a short usage example."),
    ("rust", "Implement a simple in-memory key-value store in Rust that reads commands from standard input, one per line: SET key value, GET key, DELETE key, and COUNT value, which prints how many keys currently hold that value. Also support BEGIN, ROLLBACK and COMMIT for nested transactions: ROLLBACK undoes every change since the most recent BEGIN, and COMMIT makes all open transactions permanent. Print NULL for a missing key and NO TRANSACTION when ROLLBACK or COMMIT is used outside a transaction. Make COUNT fast, explain your data structures, and include tests."),
    ("javascript", "Build a small to-do list web page using plain HTML, CSS and JavaScript, without any framework. Users must be able to add a task by typing and pressing Enter, mark tasks as done with a checkbox, delete tasks, and filter the list to show all, active or completed tasks. The list must survive a page reload by being stored in localStorage. Keep the JavaScript in a separate file, make the page fully usable with the keyboard alone, and explain how you would structure the code if the app later needed due dates and categories."),
    ("sql", "Design a database schema for a small veterinary clinic. The clinic needs to store owners and their contact details; pets, where an owner can have several pets and each pet has a species, breed and date of birth; vets; appointments with a date, time, vet and reason; and the treatments given during an appointment together with their cost. Write the CREATE TABLE statements with suitable primary keys, foreign keys and constraints. Then write queries that list tomorrow's appointments for a given vet and compute the total billed to each owner last month. Explain any design choices that are not obvious."),
    ("python", "Write a Python class called RateLimiter that allows at most N calls to a function within any rolling window of T seconds. It should be usable as a decorator, for example @RateLimiter(calls=5, period=1.0). When the limit is reached, the decorated function should wait until a call is allowed again instead of raising an error, and the implementation must be thread-safe. Explain your choice of data structure, discuss the difference between a fixed window and a sliding window, and write tests that do not depend on real time passing by injecting a fake clock."),
    ("algorithms", "You are given a list of meetings, each with a start time and an end time in minutes since midnight. Write a function that returns the minimum number of rooms needed so that no two overlapping meetings share a room. A meeting that ends at exactly the time another one starts does not overlap with it. First describe a brute-force approach and its complexity, then explain and implement an efficient solution in a language of your choice. Finally, extend the solution so that it also reports which room each meeting is assigned to."),
    ("c", "Write a C program that reads text from standard input and prints each distinct word with the number of times it appears, sorted by count in descending order and then alphabetically. A word is a sequence of letters, compared without regard to case. You may not assume any maximum line length or number of words, so allocate memory dynamically and free everything before exiting. Implement a simple hash table yourself instead of using a library. Explain how you handle allocation failures and how you would check the program for memory leaks."),
    ("shell", "I have a directory of several thousand photos named like IMG_20230514_183022.jpg, where the digits give the date and time each photo was taken. Write a Bash script that moves every photo into a folder structure of the form YEAR/MONTH, creating folders as needed. The script must take the source and destination directories as arguments, support a --dry-run option that only prints what would happen, skip files whose names do not match the pattern, and never overwrite an existing file. Explain how you would test it safely before running it on the real photos."),
    ("testing", "I maintain a Python function that parses dates typed by users in many formats, such as '3 March 2024', '2024-03-03', '03/03/24' and 'yesterday'. It keeps breaking whenever someone changes it. Write a plan for a proper pytest test suite: which categories of input to test, how to deal with the ambiguity between day-first and month-first dates, how to test relative dates like 'yesterday' without depending on the real current date, and how to organise the tests so that adding new cases is easy. Include several example tests."),
    ("rust", "Write a Rust command-line program that counts lines, words and bytes in one or more files given as arguments, similar to the Unix wc tool. When no files are given, it should read from standard input. Print one line per file, plus a total line when there is more than one file. Use only the standard library, propagate errors with Result instead of panicking, and print a helpful message for any file that cannot be opened while still processing the others. Explain how your program treats input that is not valid UTF-8."),
    ("web", "Design a REST API for a simple library system in which members can search for books, reserve a book that is currently on loan, and see their own loans and reservations, while librarians can add books and record returns. Describe the resources and endpoints, the HTTP methods and status codes each one uses, and the JSON shape of the main requests and responses. Explain how you would authenticate members and librarians differently, and how you would handle two members trying to reserve the last available copy at the same moment."),
    ("algorithms", "A delivery company has a list of parcels, each with a weight in kilograms and a value in euros, and a van that can carry a fixed maximum total weight. Explain how to choose which parcels to load so that the total value is as high as possible. Show why a greedy approach based on value per kilogram can fail, using a small concrete counterexample, then implement the dynamic programming solution for integer weights. Analyse its time and memory use, and suggest what to do if the weight limit is extremely large."),
    ("javascript", "Write a JavaScript function called formatRelativeTime that takes a past Date and returns a friendly string such as 'just now', '5 minutes ago', 'yesterday', '3 days ago' or, for anything older than a week, a short date like '12 March'. The function should accept the current time as an optional second argument so that it is easy to test. Document the exact thresholds you choose, handle dates in the future sensibly, and write a set of Jest tests that cover every threshold boundary."),
    ("python", "Imagine a 400-line Python script that downloads weather data from a web API, cleans it, computes daily statistics and writes a report, all inside one long main function that relies on global variables. Describe step by step how you would refactor it into a small, maintainable package: how to split it into modules and functions, how to make the API calls testable without network access, where configuration should live, how to add logging, and in what order to make the changes so that the script keeps working throughout the refactoring."),
    ("concurrency", "Explain the producer-consumer problem and implement a solution in a language of your choice. Three producer threads each generate 100 numbered jobs, and two consumer threads process them, with a bounded queue of size 10 between producers and consumers. The program must finish cleanly once every job has been processed, must not busy-wait, and must print a summary of how many jobs each consumer handled. Explain how your solution avoids deadlock and how the consumers know when to stop."),
    ("sql", "Our website logs every page view in a table page_views(user_id, url, viewed_at). Write SQL to answer these questions: the number of daily active users for each of the last 30 days; the ten most viewed pages last week; for each user, the length of their longest streak of consecutive days with at least one visit; and the percentage of users who visited in January and came back in February. Explain any window functions you use, and suggest indexes that would keep these queries fast on a table with a hundred million rows."),
    ("c", "Implement a ring buffer, also called a circular queue, in C for an embedded system that stores bytes received from a serial port. The capacity is fixed at compile time and no dynamic memory may be used. Provide functions to initialise the buffer, push a byte, pop a byte and report how many bytes are stored. Push is called from an interrupt handler while pop is called from the main loop, so explain what precautions make this safe on a single-core microcontroller. Include a small test program that runs on an ordinary computer."),
    ("algorithms", "Given a grid map of a warehouse in which each cell is either free or blocked, write a program that finds the shortest route for a robot from a start cell to a goal cell, moving only up, down, left or right. Explain why breadth-first search finds a shortest route in this setting, implement it, and return the route as a list of coordinates rather than just its length. Then explain how you would change the approach if crossing some cells took longer than others, for example because they contain ramps."),
    ("python", "Write a Python script that watches a folder and, whenever a new text file appears, counts its words and appends a line with the file name, the word count and a timestamp to a log file. Use only the standard library, so poll the folder every few seconds instead of relying on operating-system notifications. The script must never count the same file twice, even after it is restarted, and it must cope with files that are still being written when they are first seen. Explain your design choices and the limitations of polling."),
    ("git", "Our team of five developers keeps running into painful merge conflicts and a broken main branch. Propose a simple Git workflow for us. Cover how branches should be named, how often to bring in changes from main, whether to use merge commits or rebasing, which checks must pass before a pull request can be merged, how to write useful commit messages, and what to do when a bug is found in a release that is already deployed. Keep the rules short enough to fit on one page, and give the reason for each rule."),
    ("javascript", "A web page that shows a table of 10,000 products becomes very slow when users type into its search box, because the whole table is filtered and redrawn on every key press. Explain the likely causes of the slowness and propose at least three improvements, such as debouncing the input, rendering only the visible rows, or moving the filtering off the main thread. For each improvement, explain how it works, roughly how much it should help, and what its trade-offs are. Finish with sample JavaScript for the simplest fix."),
    ("rust", "Design a small Rust library for parsing configuration files made of lines like key = value, with comments starting with # and sections written as [section]. Describe the public API you would offer, including an error type that reports the line number, and then implement the parser. Values may be strings, integers or booleans, and users should be able to ask for a typed value, such as an integer, and get a clear error if the value cannot be converted. Include tests for comments, blank lines, duplicate keys and malformed lines."),
    ("python", "I have a CSV file with two million rows of taxi trips, with columns for pickup time, drop-off time, distance in kilometres and fare. Using pandas, write code that loads the file efficiently, removes obviously invalid trips (negative distances, zero fares, drop-off before pickup, or trips lasting more than twelve hours), adds a column for the average speed, and produces a table of the median fare per kilometre for each hour of the day. Explain how you would check that the cleaning rules are not throwing away too many valid trips."),
    ("shell", "Write a short guide, with example commands, for diagnosing why a Linux server has suddenly become slow. Cover how to check CPU load, memory and swap usage, free disk space, disk input and output, network connections, and which processes are responsible, using common tools such as top, free, df, iostat and ss. For each check, explain what normal output looks like and what would be worrying. Finish with a short checklist that a junior administrator could follow during an incident at three in the morning."),
]

SNIPPET_INTROS = [
    "{q}\n\n```{lang}\n{code}\n```",
    "Here is some {name} code:\n\n```{lang}\n{code}\n```\n\n{q}",
]
LANG_FENCE = {"python": "python", "algorithms": "python", "rust": "rust", "javascript": "javascript",
              "c": "c", "sql": "sql", "shell": "bash"}
LANG_NAME = {"python": "Python", "algorithms": "Python", "rust": "Rust", "javascript": "JavaScript",
             "c": "C", "sql": "SQL", "shell": "Bash"}


def build_programming(rng):
    b = Bucket("programming")
    for subject, text in PROGRAMMING_SHORT:
        b.add(subject, "low", text)
    for task in PROGRAMMING_TASKS:
        for lang in rng.sample(PROGRAMMING_LANGS, 2):
            constraint = rng.choice(PROGRAMMING_CONSTRAINTS)
            subject = lang.lower()
            b.add(subject, "low", f"Write a {lang} function that {task}. {constraint}")
    for task in SHELL_TASKS:
        b.add("shell", "low", f"Write a Bash script that {task}. Quote variables properly and add a comment for each step.")
    for schema, questions in SQL_SCHEMAS:
        for q in questions:
            b.add("sql", "medium", f"Given the tables {schema}, write a SQL query that {q}. Explain briefly how the query works.")
    for i, (subject, code, questions) in enumerate(PROGRAMMING_SNIPPETS):
        for j, q in enumerate(questions):
            intro = SNIPPET_INTROS[(i + j) % len(SNIPPET_INTROS)]
            b.add(subject, "high", intro.format(q=q, lang=LANG_FENCE[subject], name=LANG_NAME[subject], code=code))
    for subject, text in PROGRAMMING_SPECS:
        b.add(subject, "medium", text)
    return b


# ---------------------------------------------------------------------------
# creative
# ---------------------------------------------------------------------------

CREATIVE_TOPICS = [
    "autumn rain", "a lighthouse at night", "the first snow of winter", "an old library",
    "a busy train station", "the smell of fresh bread", "a cat watching birds", "the ocean at dawn",
    "a forgotten umbrella", "city lights seen from a plane", "a grandmother's garden",
    "the last day of summer", "a thunderstorm over wheat fields", "riding a bicycle downhill",
    "moving to a new city", "a broken clock", "the Moon over a harbour", "a quiet Sunday morning",
    "a mountain lake", "a crowded market", "learning to swim", "an empty playground",
    "a cup of tea going cold", "fireflies in June", "a desert at noon",
    "the hum of a refrigerator at midnight", "a paper boat in a gutter", "a long-distance friendship",
    "the sound of a violin through a wall", "waiting for a bus in the rain",
]

LIMERICK_SUBJECTS = [
    "a cook who hated onions", "a penguin who wanted to fly", "a programmer who never slept",
    "a goat that ate homework", "a giraffe trying to drive a small car", "a forgetful wizard",
    "a dog who learned to whistle", "a snail in a terrible hurry", "a robot learning to dance",
    "a pirate who was afraid of water", "an astronaut who lost her spoon", "a cat who ran a bakery",
]

PRODUCTS = [
    "a reusable water bottle", "a neighbourhood bicycle repair shop", "an app that reminds you to drink water",
    "a vegan bakery", "a quiet electric lawnmower", "a library's summer reading programme",
    "a solar-powered phone charger", "a local farmers' market", "a language-learning podcast",
    "a mobile dog-grooming van", "a board game café", "a school recycling campaign",
    "a pillow that tracks your sleep", "a community theatre", "an online maths tutoring service",
    "a small brand of handmade soap",
]

NAME_THINGS = [
    "a pet hedgehog", "a fantasy kingdom by the sea", "a coffee shop run by robots",
    "a rock band of retired teachers", "a newly discovered glowing deep-sea fish",
    "a spaceship built by teenagers", "a small-town newspaper", "a friendly dragon",
    "a racing sailboat", "a detective agency that finds lost socks",
]

HORROR_PLACES = [
    "an abandoned lighthouse", "a hotel with no thirteenth floor", "a quiet suburban kitchen",
    "a submarine", "a school after dark", "a snowbound cabin", "a space station", "a museum of dolls",
]

SCENES = [
    "a harbour just before a storm", "a kitchen on a holiday morning", "a crowded night market",
    "a forest after heavy rain", "an empty stadium at midnight", "a rooftop garden in a big city",
    "a village during a power cut", "a train crossing a snowy plain",
]


def c_haiku(r):
    t = r.choice(CREATIVE_TOPICS)
    return "poetry", r.choice([f"Write a haiku about {t}.", f"Write three linked haiku about {t}."])


def c_limerick(r):
    return "poetry", f"Write a limerick about {r.choice(LIMERICK_SUBJECTS)}."


def c_slogan(r):
    p = r.choice(PRODUCTS)
    return "slogans", r.choice([
        f"Suggest five catchy slogans for {p}.",
        f"Write a memorable slogan of at most eight words for {p}.",
        f"Give me a witty tagline for {p}.",
    ])


def c_names(r):
    return "naming", f"Suggest five original names for {r.choice(NAME_THINGS)}."


def c_horror(r):
    return "story", f"Write a two-sentence horror story set in {r.choice(HORROR_PLACES)}."


def c_scene(r):
    s = r.choice(SCENES)
    return "description", r.choice([
        f"Describe {s} in three vivid sentences.",
        f"Describe {s} using only sounds and smells.",
    ])


def c_short_poem(r):
    t = r.choice(CREATIVE_TOPICS)
    return "poetry", r.choice([
        f"Write a short rhyming poem about {t}.",
        f"Write a four-line poem about {t} for a child.",
    ])


CREATIVE_SHORT_FIXED = [
    ("worldbuilding", "Invent a new public holiday and describe how people celebrate it."),
    ("worldbuilding", "Describe an imaginary animal that lives in clouds."),
    ("story", "Write a six-word story about starting over."),
    ("story", "Write the opening line of a mystery novel."),
    ("story", "Write a fable about a tortoise who becomes a teacher."),
    ("humour", "Write a funny excuse for being late to work."),
    ("humour", "Tell a gentle joke about a tired computer."),
    ("song", "Write the chorus of a song about Monday mornings."),
    ("song", "Write a lullaby verse for a sleepy baby elephant."),
    ("description", "Describe the colour blue to someone who cannot see."),
    ("worldbuilding", "Invent a sport that can be played on the Moon."),
    ("dialogue writing", "Write a short conversation between a cloud and a mountain."),
]

STORY_PROTAGONISTS = [
    "a retired lighthouse keeper", "a nervous young chef", "a robot vacuum cleaner",
    "a girl who can hear plants talking", "an elderly chess champion", "a tourist lost in Lisbon",
    "a night-shift nurse", "a street musician", "a goat farmer in the Alps", "a ten-year-old inventor",
    "a ghost who is afraid of people", "a bus driver on her last shift",
]
STORY_SITUATIONS = [
    "finds a letter addressed to someone who died fifty years ago",
    "must cook dinner for a famous critic using only three ingredients",
    "wakes up to find that everyone else in town has vanished",
    "receives a mysterious package with no return address",
    "is asked to keep a secret that could change the whole town",
    "gets stuck in a lift with a stranger for two hours",
    "wins a prize for a competition they never entered",
    "discovers a door in their home that was not there yesterday",
]
STORY_CONSTRAINTS = [
    "end with a line of dialogue",
    "include a red umbrella, a missed train and a song",
    "be told entirely in the present tense",
    "avoid using the word 'said' anywhere",
    "be written in the second person",
    "have a twist in the final sentence",
    "take place within a single hour",
    "involve exactly three characters",
    "end on a hopeful note without being sentimental",
    "open with the words 'Nobody expected the rain'",
]

POEM_FORMS = [
    "a sonnet", "a free-verse poem", "a ballad of four stanzas", "a villanelle", "a poem in rhyming couplets",
    "a prose poem", "an acrostic poem",
]
POEM_CONSTRAINTS = [
    "Do not use the words 'love' or 'heart', and include at least one image of something mechanical.",
    "Every stanza must mention a different colour, and the final line should echo the first.",
    "End each stanza with a question, and keep the tone quietly hopeful.",
    "Write it from the point of view of an object in the scene rather than a person.",
    "Use at least one metaphor drawn from cooking and one drawn from the sea.",
    "Keep every line under eight words, and avoid rhyming on the words 'day', 'way' and 'say'.",
    "Include a line of overheard speech in quotation marks, and let the poem turn halfway through.",
]

DESCRIPTION_PLACES = [
    "a fishing village at five in the morning", "a hospital corridor at night", "a school canteen at lunchtime",
    "a second-hand bookshop in winter", "a train platform in a heatwave", "a bakery just before opening",
    "a mountain hut during a snowstorm", "a city park on the first warm day of spring",
    "an airport departure lounge after a cancelled flight", "a grandmother's attic",
]
DESCRIPTION_CLICHES = ["'a blanket of snow'", "'the calm before the storm'", "'as quiet as a mouse'",
                       "'the sun beat down'", "'a hive of activity'"]

AD_AUDIENCES = ["busy parents", "university students", "retired people who love the outdoors",
                "small business owners", "teenagers who game online", "people who have just moved to the city"]
AD_FEATURES = ["a special launch offer", "that it is run by a small local team", "one concrete benefit for the customer",
               "what makes it different from the competition", "an environmentally friendly detail", "a money-back guarantee"]

CREATIVE_MISC_MEDIUM = [
    ("letter", "Write a letter from a lighthouse to the ships that pass it, in about 200 words. It should be affectionate but a little lonely, and mention at least one specific storm."),
    ("story", "Write a story in exactly five sentences about a lost key. Each sentence must be longer than the one before it, and the last sentence should reveal what the key opens."),
    ("worldbuilding", "Design a city built entirely underwater. Describe how people travel, what they eat, and one festival they celebrate, in three short paragraphs."),
    ("song", "Write two verses and a chorus for a folk song about a ferry that has crossed the same river for a hundred years. The chorus should be easy to sing along to."),
    ("monologue", "Write a one-minute monologue for a theatre audition in which a character explains to their sister why they sold the family piano. Make the character both funny and sad."),
    ("poetry", "Write a poem of ten to fourteen lines in which each line begins with the next letter of the alphabet, starting at A, about a journey by night train."),
    ("story", "Write a very short fairy tale, about 200 words long, in which the dragon is the hero and the knight is the problem. Keep the traditional fairy-tale tone."),
    ("description", "Describe a thunderstorm from the point of view of a cat hiding under a bed. Use short sentences and focus on what the cat hears and feels, in about 120 words."),
    ("speech", "Write a toast of about 150 words for the wedding of two friends who met when they both reached for the last copy of the same book in a shop."),
    ("story", "Write a piece of flash fiction, under 250 words, told entirely through text messages between two old friends planning a reunion that keeps going wrong."),
    ("poetry", "Write an ode to an ordinary kitchen object, such as a colander or a wooden spoon, that treats it with great seriousness and affection. Use at least four stanzas."),
    ("humour", "Write a mock weather forecast for a fantasy kingdom, about 150 words long, including dragon activity, enchanted fog and a chance of raining frogs."),
]

STORY_OPENINGS = [
    ("story", "The ferry was already pulling away when Ines reached the end of the pier, her suitcase bumping over the wooden planks. She stopped, breathless, and watched the white wake widen between her and the only boat to the island that week. Behind her, someone laughed. She turned to see an old man sitting on an upturned crate, mending a fishing net. Without looking up, he said, 'There's another way across, if you're not afraid of getting wet.'"),
    ("science fiction", "Unit Seven had tended the greenhouse for eleven years when the first tomato plant refused to grow. It checked the soil, the humidity and the light. Everything was within normal ranges. Still the plant stood pale and stubborn, its single flower closed tight. Unit Seven had no instructions for stubbornness. That night, for the first time, it did not return to its charging station. It sat beside the pot and waited, listening to the rain on the glass."),
    ("story", "Every Thursday at exactly four o'clock, a boy in a yellow raincoat came into the library, walked straight to the atlas shelf, and spent an hour tracing rivers with his finger. He never borrowed anything. He never spoke. Margaret, who had worked at the front desk for thirty years, had long ago stopped wondering about him. But this Thursday he came to her desk instead, laid a folded map in front of her, and asked, 'Can you tell me where this is?'"),
    ("mystery", "The painting was still on the wall. That was the first strange thing. The gallery's alarm had gone off at 2:13 a.m., the guard had found the back door open, and yet every one of the forty-two paintings hung exactly where it should. Detective Amara Osei walked slowly along the east wall with her hands in her pockets. Then she stopped in front of a small landscape of a wheat field and frowned. The frame was new."),
    ("science fiction", "The message reached the colony ship in the ninety-third year of its voyage, in a language nobody on board had spoken for three generations. It was only nine words long, and it repeated every hour. The ship's historian, a quiet woman named Tove who spent most of her days cataloguing seed samples, was the only person who could read it. She translated it twice to be sure, then sat very still for a long time before she called the captain."),
    ("story", "Grandpa Tomasz's recipe book was held together with tape and rubber bands, and half its pages were stained with beetroot. When he died, the family argued about many things, but not about who should have the book. Everyone agreed it should go to Lena, the youngest, who had never cooked anything more complicated than toast. She opened it on the first evening and found, tucked between two pages, an envelope with her name on it."),
    ("story", "The snow started on Tuesday and did not stop. By Friday the road to the valley had disappeared, the power lines sagged under the ice, and the village of Brenn, population two hundred and six, had become an island in a white sea. On Saturday morning the baker opened her shop anyway, lit every candle she owned, and put a sign in the window: Free bread for anyone who brings a story."),
    ("mystery", "Somewhere between the second and third tunnels, the train slowed to a crawl and then stopped altogether. The lights flickered. Passengers looked up from their phones, which now showed no signal at all. Then the conductor's voice came over the speakers, calm and polite, announcing that the train had arrived at a station that does not appear on any map, and that passengers who wished to get off should do so now."),
    ("fantasy", "In the kingdom of Verrow, every child received a lantern on their tenth birthday, and the colour of its flame decided their trade: blue for healers, green for farmers, gold for the keepers of the law. When Pell's lantern was lit in the village square, it burned a colour nobody had ever seen, something between grey and silver, and the old priest who held the match quietly put it out again."),
    ("story", "Nobody at Hollins Middle School knew why the old piano in the music room played by itself on rainy afternoons. The caretaker blamed the pipes. The music teacher blamed the wind in the chimney. But Sam, sent to the music room for detention on a wet Wednesday in March, heard the piano begin a tune his late grandmother used to hum, and he knew it was not the pipes."),
    ("adventure", "The guide had warned them to turn back by noon. At half past twelve, with the summit looking close enough to touch, Rafi checked the sky and saw a grey wall of cloud rolling up the valley. His sister was twenty metres ahead, still climbing. He shouted her name, but the wind snatched it away. Below them, the path they had come up was already disappearing into the mist."),
    ("fantasy", "On the last day of the market season, the stall that sold old keys was still there, squeezed between the cheese seller and the man with the honey. Nobody had ever seen anyone buy a key. The woman who ran it, wrapped in a patterned shawl, simply sat and polished them one by one. When Jonah finally asked what the keys were for, she smiled and handed him one that was still warm."),
]
OPENING_INSTRUCTIONS = [
    "Continue this story for about 300 words. Keep the same tone, introduce one new character, and stop at a moment of decision rather than a resolution.",
    "Write the next scene, roughly 250 words long, entirely in dialogue. Make each character's personality clear from the way they speak.",
    "Continue the story in the first person from the main character's point of view, and finish it within 400 words with a surprising but fair ending.",
    "Write two alternative endings for this opening, one happy and one bittersweet, each about 150 words long.",
    "Retell this opening from the point of view of another character who is present or nearby, keeping the same events but changing what is noticed.",
]

FLAT_PARAGRAPHS = [
    "I went to the beach on Saturday. The weather was warm. There were a lot of people. I swam in the sea for a while and then I read a book. I bought an ice cream. Later the sky got cloudy and it started to rain, so I went home on the bus. It was a nice day.",
    "The company had a meeting on Monday morning. Twelve employees attended. The manager talked about the new budget and said there would be some changes. A few people asked questions. The meeting lasted two hours. Afterwards everyone went back to their desks and worked until lunch.",
    "The old house was at the end of the street. Nobody had lived there for many years. The windows were dirty and the garden was overgrown. Some children said it was haunted. One evening a light appeared in an upstairs window. The next morning a removal van was parked outside.",
    "My grandfather worked as a baker for forty years. He woke up at three every morning. He made bread, rolls and cakes. People in the town liked his bread. When he retired, he gave the bakery to his nephew. He still visits sometimes to check that the bread is good.",
    "The spaceship landed on the planet. The crew went outside. The ground was red and the sky was green. They collected some rocks. Then they heard a strange sound. They went back inside the ship quickly. The captain decided that they should leave the next day.",
    "The team lost the first half of the final. At half-time the coach talked to the players. In the second half they played better and scored two goals. The other team scored one more goal near the end. The final score was three to three, and the match went to penalties.",
]
FLAT_INSTRUCTIONS = [
    "Rewrite the paragraph above so that it becomes vivid and engaging: vary the sentence length, add sensory detail and at least one line of dialogue, and keep it under 200 words.",
    "Turn the paragraph above into a free-verse poem of 12 to 16 lines, keeping all the events in the same order.",
    "Rewrite the paragraph above as a tense, suspenseful scene in the present tense, using short sentences and ending on a cliffhanger.",
]


def build_creative(rng):
    b = Bucket("creative")
    for subject, text in CREATIVE_SHORT_FIXED:
        b.add(subject, "low", text)
    fill(b, rng, [c_haiku, c_limerick, c_slogan, c_names, c_horror, c_scene, c_short_poem], 80, "low")
    # Stories with constraints.
    combos = [(p, s) for p in STORY_PROTAGONISTS for s in STORY_SITUATIONS]
    for p, s in rng.sample(combos, 40):
        n = rng.choice([150, 200, 300, 400, 500])
        c = rng.choice(STORY_CONSTRAINTS)
        b.add("story", "medium", f"Write a short story of about {n} words in which {p} {s}. The story must {c}.")
    # Poems with constraints.
    combos = [(f, t) for f in POEM_FORMS for t in CREATIVE_TOPICS]
    for form, topic in rng.sample(combos, 30):
        c = rng.choice(POEM_CONSTRAINTS)
        b.add("poetry", "medium", f"Write {form} about {topic}. {c}")
    for place in DESCRIPTION_PLACES:
        cliche = rng.choice(DESCRIPTION_CLICHES)
        b.add("description", "medium",
              f"Describe {place} using all five senses, in a single paragraph of about 120 words. "
              f"Avoid clichés such as {cliche}, and end with a detail that hints at what will happen next.")
    for product in rng.sample(PRODUCTS, 12):
        audience = rng.choice(AD_AUDIENCES)
        feature = rng.choice(AD_FEATURES)
        b.add("advertising", "medium",
              f"Write a 60-word product description for {product}, aimed at {audience}. Mention {feature}, "
              f"keep the tone upbeat but not pushy, and end with a clear call to action.")
    for subject, text in CREATIVE_MISC_MEDIUM:
        b.add(subject, "low", text)
    for subject, opening in STORY_OPENINGS:
        for k in rng.sample(range(len(OPENING_INSTRUCTIONS)), 2):
            b.add(subject, "high", f"Here is the opening of a story: \"{opening}\" {OPENING_INSTRUCTIONS[k]}")
    for para in FLAT_PARAGRAPHS:
        for k in rng.sample(range(len(FLAT_INSTRUCTIONS)), 2):
            b.add("rewriting", "high", f"\"{para}\" {FLAT_INSTRUCTIONS[k]}")
    return b


# ---------------------------------------------------------------------------
# instruction
# ---------------------------------------------------------------------------

TIP_GOALS = [
    "sleeping better", "saving money on groceries", "preparing for a job interview",
    "staying focused while working from home", "learning a new language as an adult",
    "keeping houseplants alive", "reducing food waste at home", "writing clearer emails",
    "running your first 5 km race", "organising a small kitchen", "taking better photos with a phone",
    "making a long car journey with children easier", "studying for exams", "starting a vegetable garden",
    "giving a presentation without reading from notes", "spending less time on social media",
    "packing light for a week-long trip", "cooking rice that is not sticky", "sticking to a monthly budget",
    "becoming a better listener",
]
TIP_TEMPLATES = [
    "List five practical tips for {g}.",
    "Give me three quick tips for {g}.",
    "What should a complete beginner know about {g}? Keep it to a short list.",
    "Write a numbered list of seven tips for {g}.",
]

DISHES = [
    "a vegetable stir-fry", "lentil soup", "a tomato pasta sauce", "a mushroom omelette",
    "chickpea curry", "a Greek salad", "banana pancakes", "fried rice with leftover vegetables",
    "a simple shakshuka", "baked salmon with lemon", "black bean tacos", "a potato and leek soup",
    "overnight oats", "a cheese and spinach quesadilla", "a peanut noodle salad",
]
DISH_TEMPLATES = [
    "Give me a simple recipe for {d} that takes under 30 minutes.",
    "Write a recipe for {d} with an ingredient list and numbered steps.",
    "How do I make {d} for four people on a tight budget?",
]

FAMOUS_WORKS = [
    "Romeo and Juliet", "the Odyssey", "Frankenstein", "Moby-Dick", "Little Women",
    "Don Quixote", "Jane Eyre", "The Count of Monte Cristo", "Treasure Island", "A Christmas Carol",
]

TRIPS = [
    "a weekend camping trip in the mountains", "a business trip of three days", "a beach holiday with a toddler",
    "a winter city break", "a week of hiking between mountain huts", "a music festival in summer",
    "a school field trip to a museum", "a long-haul flight", "a cycling tour of five days", "a visit to grandparents at Christmas",
]

TRANSLATIONS = [
    ("The library closes at six o'clock on Saturdays.", "Spanish"),
    ("Could you tell me where the nearest train station is?", "French"),
    ("We are looking forward to seeing you next summer.", "German"),
    ("Please remember to water the plants while I am away.", "Italian"),
    ("The meeting has been moved to Thursday afternoon.", "Portuguese"),
    ("I would like a table for two by the window, please.", "Spanish"),
    ("It has been raining all week, so the river is very high.", "French"),
    ("My brother is learning to play the cello.", "German"),
    ("Thank you for your help; I could not have done it without you.", "Dutch"),
    ("How much does a return ticket to the city centre cost?", "Italian"),
]

HOWTO_TASKS = [
    "fix a flat bicycle tyre", "set up a new email account", "make a simple budget spreadsheet",
    "plant tulip bulbs in autumn", "iron a shirt", "back up the photos on a phone",
    "clean a cast-iron frying pan", "tie a bowline knot", "restart a home Wi-Fi router properly",
    "brew pour-over coffee", "hang a picture frame straight", "prepare a home for a power cut",
    "unblock a kitchen sink without harsh chemicals", "make a sourdough starter", "write a simple cover letter",
]

EMAIL_SCENARIOS = [
    ("your landlord", "asking them to repair a kitchen tap that has been dripping for two weeks"),
    ("a colleague", "asking them to cover your shift next Friday because of a family event"),
    ("your child's teacher", "explaining that your child was absent yesterday because of a fever"),
    ("a hotel", "asking whether they can provide an early check-in for a guest arriving at 9 a.m."),
    ("a customer", "apologising that their order will arrive four days later than promised"),
    ("your manager", "requesting two days of leave at the end of next month"),
    ("a former professor", "asking whether they would be willing to write you a reference letter"),
    ("a neighbour", "inviting them to a small garden party next Saturday afternoon"),
    ("an online shop", "asking for a refund for a pair of shoes that arrived in the wrong size"),
    ("a team of volunteers", "thanking them for their work at last weekend's charity fun run"),
    ("a job applicant", "letting them know kindly that they were not selected for the role"),
    ("your gym", "cancelling your membership because you are moving to another city"),
    ("a conference organiser", "asking whether vegetarian lunch options will be available"),
    ("a supplier", "asking why the last delivery of paper was short by five boxes"),
    ("a new client", "confirming the details of a kick-off meeting next Tuesday at 10 a.m."),
    ("your local council", "reporting a broken streetlight outside number 14 on your road"),
    ("a friend", "congratulating them on finishing their first marathon"),
    ("a plumber", "asking for a quote to replace an old hot-water cylinder"),
    ("the parents of your football team", "announcing that training is moving from Tuesdays to Wednesdays"),
    ("a recruiter", "politely declining a job offer because you have accepted another position"),
    ("your internet provider", "complaining that the connection has dropped several times a day for a week"),
    ("a museum", "asking whether they offer guided tours for a group of 25 students"),
    ("your team", "announcing that the quarterly report deadline has moved forward by three days"),
    ("a bookshop", "asking whether they could host a reading by a local author"),
]
EMAIL_TONES = ["polite", "friendly", "formal", "brief and direct", "warm but professional"]
EMAIL_CONSTRAINTS = [
    "Keep it under 120 words.", "Include a clear subject line.", "End with a specific question that needs a reply.",
    "Use no more than three short paragraphs.", "Mention a concrete deadline for a response.",
]

INFORMAL_SENTENCES = [
    "Hey, can u send me that report thing asap? Boss is on my back about it.",
    "We totally messed up the order, sorry about that, we'll sort it out soon-ish.",
    "The new software is kind of a pain but I guess it works okay most of the time.",
    "Gonna be late tomorrow, car's acting weird again.",
    "Thanks a ton for the help yesterday, you're a lifesaver!",
    "The numbers look way off, did someone mess with the spreadsheet?",
    "Can we push the meeting? Loads of stuff came up today.",
    "Your idea is cool but it's gonna cost way too much.",
    "Just checking you got my last email, haven't heard back.",
    "The printer's broken again, somebody needs to call the guy.",
    "No way we can finish this by Friday, it's just not happening.",
    "FYI the client wants everything changed, like, everything.",
    "Sorry for the late reply, been swamped all week.",
    "Pls don't park in front of the garage door, it's super annoying.",
    "We're running low on coffee, can someone grab some?",
    "Heads up: the website's down and people are freaking out.",
]

WORDY_SENTENCES = [
    "At this point in time, we are currently in the process of reviewing all of the applications that have been submitted to us.",
    "Due to the fact that it was raining, the outdoor event that was planned was cancelled by the organisers.",
    "In my personal opinion, I think that it would be a good idea for us to possibly consider changing our supplier.",
    "The reason why the project was delayed is because of the fact that several team members were ill at the same time.",
    "Please be advised that the office will be closed for the duration of the public holiday on Monday.",
    "It is absolutely essential and very important that all staff members attend the safety training session.",
    "We would like to take this opportunity to thank each and every one of you for your continued support.",
    "In the event that you have any questions, please do not hesitate to get in touch with us at your earliest convenience.",
    "The committee came to a decision to postpone the vote until a later date in the future.",
    "Despite the fact that the budget was small, the team managed to produce a report of high quality.",
    "There are many people who believe that working from home improves their productivity.",
    "The final outcome of the experiment was that the plants that received more light grew taller than the others.",
]

ERROR_SENTENCES = [
    "Their going to the museum tomorow, but they hasn't bought tickets yet.",
    "Me and him was late because the bus didnt came.",
    "The team have finished it's work and are going home early.",
    "Neither of the answers are correct, and alot of students chose them.",
    "She don't like coffee, she prefer tea with to sugars.",
    "I could of helped you if you would of asked me earlier.",
    "The datas shows that less people are using the library then last year.",
    "Each of the students have to bring their own laptop's to class.",
    "We was suppose to meet at 6, but I forgot wich cafe.",
    "Whose going to the concert? Its going to be great.",
    "The recipe calls for two cup of flour and a egg.",
    "Between you and I, the new manager seem very nice.",
]

FORMAT_TASKS = [
    ("formatting", "Convert the following into a Markdown table with the columns Name, Role and Start date: Maria Lopez joined as designer on 3 March 2021; Tom Becker, engineer, started 14 June 2019; Aisha Khan has been our accountant since 1 October 2022."),
    ("formatting", "Turn this information into a JSON object with sensible keys: the event is a book club meeting, it takes place on 12 May at 7 p.m. at the Greenway Library, the book is about the history of bicycles, and members should bring snacks to share."),
    ("formatting", "Sort these cities alphabetically and present them as a numbered list, with the country in brackets after each one: Nairobi, Kenya; Oslo, Norway; Lima, Peru; Hanoi, Vietnam; Adelaide, Australia; Quito, Ecuador."),
    ("formatting", "Rewrite these meeting notes as a bulleted list of decisions and a separate bulleted list of open questions: we agreed to launch in June, we still don't know the final price, Sam will lead marketing, and nobody is sure whether the app will support tablets."),
    ("formatting", "Convert these recipe quantities from imperial to metric units and present them as a two-column table: 2 cups of milk, 8 ounces of butter, 1 pound of flour, 3 tablespoons of sugar."),
    ("formatting", "Format the following address correctly for an envelope: flat 4, 22 elm road, leeds, ls6 2ab, united kingdom, to: ms priya shah."),
    ("formatting", "Turn this paragraph into a step-by-step numbered list: first preheat the oven, then mix the flour and butter until crumbly, add the sugar and an egg, roll the dough out, cut it into shapes and bake for twelve minutes."),
    ("formatting", "Extract the dates from this sentence and list them in chronological order in the format YYYY-MM-DD: the contract was signed on 5 April 2023, renewed on 1 March 2024, and first drafted on 18 December 2022."),
    ("formatting", "Convert this list of tasks into a weekly schedule table with days as columns: laundry on Monday, gym on Tuesday and Thursday, grocery shopping on Wednesday, call parents on Sunday, and cleaning on Saturday."),
    ("formatting", "Rewrite this CSV data as a readable sentence for each row: name,age,city / Lena,34,Berlin / Omar,29,Cairo / Jun,41,Seoul."),
]

PLAN_PLACES = ["Lisbon", "Kyoto", "Edinburgh", "Mexico City", "Cape Town", "Prague", "Vancouver",
               "Istanbul", "Marrakesh", "Copenhagen", "Buenos Aires", "Singapore", "Rome", "Seoul", "Dublin"]
PLAN_TRAVELLERS = ["a family with two young children", "a retired couple who dislike crowds",
                   "a student on a very small budget", "a food lover travelling alone",
                   "two friends who enjoy hiking and history", "a wheelchair user and their partner"]
PLAN_CONSTRAINTS = ["no more than two paid attractions per day", "at least one free activity each day",
                    "a rainy-day alternative for each day", "a rough budget for each day",
                    "travel only by public transport or on foot"]

INSTRUCTION_MISC_MEDIUM = [
    ("planning", "Create a one-week meal plan for a vegetarian who is training for a half marathon. Include breakfast, lunch and dinner, and keep the shopping list under 30 items."),
    ("planning", "Make a revision timetable for a student with exams in maths, history and biology in three weeks' time. They can study for two hours on weekdays and four hours at weekends."),
    ("planning", "Write an agenda for a 45-minute team meeting about moving the office to a new building. Include time allocations and who should lead each item."),
    ("writing", "Write a job advertisement for a part-time library assistant. Include the main duties, the skills needed, the working hours, and how to apply, in under 200 words."),
    ("writing", "Write a short FAQ section, with five questions and answers, for a community garden that is opening to new members this spring."),
    ("writing", "Write a polite notice to put up in the lift of a block of flats reminding residents not to leave rubbish bags in the hallway. Keep it friendly and under 60 words."),
    ("summarisation", "Summarise the main arguments for and against school uniforms in a balanced way, using two short paragraphs of similar length."),
    ("writing", "Write a short bio of about 80 words for a speaker at a local business conference. The speaker runs a bakery, started it after a career in accounting, and now employs twelve people."),
    ("lists", "Create a checklist of everything a new employee should do in their first week at an office job, grouped under the headings Day 1, Days 2 to 3 and Days 4 to 5."),
    ("writing", "Write instructions for a house-sitter who will look after a dog and two cats for a week. Cover feeding, walks, medication for one cat, and emergency contacts."),
    ("rewriting", "Rewrite the following rule so that a seven-year-old would understand it: 'Participants must refrain from consuming food or beverages within the exhibition galleries.'"),
    ("lists", "List the pros and cons of buying a second-hand car instead of a new one, with at least four points on each side, and end with one sentence of advice."),
]

INSTRUCTION_TEXTS = [
    ("summarisation", "Notes from the Riverside Community Garden committee, 4 March. Present: Dana, Luis, Priya and Tom. Dana reported that the water tank is cracked and will cost about 300 pounds to replace; Luis will get two quotes by 15 March. Priya suggested holding a seed swap in April; everyone agreed, and she will design a poster. Tom raised complaints about bikes blocking the gate. It was decided to install a bike rack if the council approves; Dana will email the council this week. Next meeting: 1 April.",
     ["Turn these meeting notes into a table of action items with the columns Task, Owner and Deadline. Use 'not stated' where the notes give no deadline.",
      "Write a short, friendly email to all garden members summarising the decisions in these notes. Keep it under 120 words."]),
    ("summarisation", "From next Monday, the Hillcrest public library will extend its weekday opening hours until 8 p.m., thanks to a grant from the regional arts fund. The children's section will host homework clubs on Tuesday and Thursday evenings, staffed by volunteer tutors. Members will also be able to borrow laptops for up to two weeks. The library café, however, will still close at 5 p.m., and weekend hours remain unchanged. Staff say the changes respond to a survey in which many residents said they could not visit during working hours.",
     ["Summarise this announcement in two sentences for a local news website.",
      "Write five short social media posts, each under 30 words, that promote the different changes described in this announcement."]),
    ("email", "Dear customer services, I ordered a blue desk lamp (order 48213) on 2 May and paid for next-day delivery. It arrived on 9 May, the box was crushed and the lamp's base was cracked. When I called your helpline I waited forty minutes and was then disconnected. I would like either a replacement delivered this week or a full refund including the delivery charge. I have attached photos of the damage. I have been a customer for six years and have never had a problem before, so I hope this can be resolved quickly. Regards, J. Moreau",
     ["You work in customer services. Write a reply to this complaint that apologises sincerely, addresses every issue the customer raises, and states clearly what will happen next.",
      "List every separate problem the customer describes in this letter, and for each one suggest what the company could change so that it does not happen again."]),
    ("summarisation", "At 14:05 on Wednesday, the company's online checkout began returning errors for about one in five customers. The on-call engineer traced the problem to a configuration change made at 13:50 that lowered the database connection limit. The change was rolled back at 14:40, and error rates were back to normal by 14:45. Roughly 1,200 orders failed during the incident, though most customers retried successfully. The team plans to add an automatic check for connection limits to the deployment pipeline and to raise an alert whenever checkout errors exceed two per cent.",
     ["Write a short incident summary for senior managers who are not engineers. Explain what happened, the impact, and what will prevent it from happening again, in under 100 words.",
      "Create a timeline of this incident as a bulleted list, with one bullet per event, and calculate how long customers were affected."]),
    ("summarisation", "The town council of Marlow Bay voted six to three on Tuesday to close the harbour road to cars on summer weekends. Supporters say the change will make the seafront safer for pedestrians and help cafés set up outdoor tables. Several shop owners opposed the plan, arguing that delivery vans will struggle to reach them and that older residents rely on parking near the harbour. The council has promised a shuttle bus from the car park on Hill Street and says it will review the scheme in October.",
     ["Summarise this news item in one neutral sentence, then list the arguments on each side as two short bulleted lists.",
      "Write a letter of about 150 words to the council from the point of view of a shop owner on the harbour road, responding to this decision politely but firmly."]),
    ("summarisation", "To all staff: starting on 1 September, the office will move to a hybrid schedule. Each team will choose two fixed office days per week and share them with HR by 20 August. Desks will no longer be assigned; instead, staff will book a desk through the internal app up to one week in advance. Lockers will be available for personal items. Managers should discuss any accessibility needs with HR before the change. Questions can be sent to the facilities team, who will also run two drop-in sessions in the last week of August.",
     ["Turn this memo into a short FAQ with five questions and answers that staff are likely to ask.",
      "Extract every date and deadline from this memo and explain, for each one, who needs to do what by then."]),
    ("summarisation", "Week 6 update on the mobile app redesign. The new onboarding screens are finished and passed user testing with eight participants, although three of them found the skip button hard to see. The payment screen is delayed by a week because the payment provider changed its API. Design work has started on the settings page. Risks: the Android tester is on leave next week, and the German and Polish translation files have not arrived. The team still expects to release the beta on 30 June, provided the payment work is finished by 14 June.",
     ["Write a three-sentence status summary of this update for a busy director, using the traffic-light labels green, amber or red for overall progress.",
      "List the risks and problems mentioned in this update and propose one concrete mitigation for each."]),
    ("recipe", "ok so for the lentil soup: fry one chopped onion and two carrots in olive oil for maybe ten minutes, add two cloves of garlic and a teaspoon of cumin, then 200 g red lentils and a litre of stock. simmer about 20 min till the lentils are soft. squeeze in half a lemon at the end. salt to taste. you can blend half of it if you want it thicker. serves four. keeps 3 days in the fridge, freezes fine.",
     ["Rewrite these messy notes as a properly formatted recipe with a title, an ingredient list, numbered steps and storage advice.",
      "Using these notes, scale the recipe to serve ten people and write out the new ingredient list with sensible rounded quantities."]),
    ("summarisation", "Review 1: 'Battery lasts all day, but the strap broke after a month.' Review 2: 'Love the screen, hate the app; syncing fails every other day.' Review 3: 'Comfortable, accurate heart rate, and the battery is great.' Review 4: 'The strap is cheap. I replaced it with a leather one and now it's perfect.' Review 5: 'The app crashes on my phone, and support never replied.'",
     ["Summarise these customer reviews of a fitness watch as a short list of strengths and weaknesses, noting how many reviews mention each point.",
      "Based on these reviews, write a short memo to the product team recommending the two most important improvements, with reasons."]),
    ("writing", "We are a small bakery in the old town looking for an early-morning assistant baker, four days a week from 5 a.m. to 11 a.m. You will help prepare dough, shape loaves and keep the kitchen clean. No formal training is needed, but you should be reliable, able to lift 20 kg sacks of flour, and happy working in a warm environment. We offer free bread, a friendly team and the chance to learn traditional sourdough techniques. To apply, send a short note about yourself to the owner, Marta, by the end of the month.",
     ["Write a short application note to Marta in response to this advert, from someone who has worked in a café but never in a bakery.",
      "Rewrite this job advert so that it is more inclusive and easier to scan, using headings and bullet points, without adding any new facts."]),
]

INSTRUCTION_BRIEFS = [
    ("writing", "Write a one-page welcome guide for new volunteers at a small animal shelter. It must cover what to wear, how to sign in and out, the basic rules for handling dogs and cats, what to do if an animal seems ill or aggressive, and who to ask for help. Use clear headings, write in the second person, and keep the whole guide under 350 words. Finish with a checklist of five things to remember on the first day. Avoid jargon, because many volunteers are teenagers."),
    ("writing", "Draft a short speech, of about three minutes when read aloud, for a head teacher to give at the opening of a new school library. The speech should thank the parents who raised the money, mention that the library has 4,000 books and a quiet reading corner, encourage pupils to borrow at least one book a week, and end with a short, memorable line. The tone should be warm and a little humorous, suitable for children aged eleven to sixteen and their families."),
    ("planning", "Plan a fundraising bake sale for a primary school that wants to raise money for new playground equipment. Your plan should include a timeline starting four weeks before the event, a list of volunteer roles, a simple pricing strategy, ideas for cakes that avoid the most common allergens, a way to handle card payments, and three ideas for promoting the event. Present the plan with headings and bullet points, and keep it under 400 words."),
    ("writing", "Write a clear set of instructions for using a shared office coffee machine, to be printed and stuck on the wall next to it. Cover how to make a standard coffee, how to clean up afterwards, what to do when the water tank or bean container is empty, and who to contact when the machine shows an error light. Use numbered steps, bold headings written in capital letters, and no more than 150 words in total. The tone should be friendly but firm."),
    ("summarisation", "I need a briefing for my grandmother, who is 82, about how to spot scam phone calls and emails. Explain the five most common warning signs, give one realistic example of a scam message and point out what is suspicious about it, and list three simple rules she can follow. Use large, simple sentences, avoid technical words such as 'phishing' unless you explain them, and keep it reassuring rather than frightening. The whole briefing should fit on one printed page."),
    ("planning", "Create a four-week beginner's plan for someone who wants to start running but has not exercised for years. Each week should have three sessions, combining walking and running, and the plan should build up gradually so that by the end of week four the person can run for ten minutes without stopping. Include advice on warming up, choosing shoes and what to do after a missed session. Present the sessions in a table and keep the advice section under 150 words."),
    ("writing", "Write a product comparison to help a customer choose between three imaginary e-readers, called Leaf, Quill and Lantern. Leaf is the cheapest and lightest but has no front light; Quill is mid-priced, waterproof and has a front light; Lantern is the most expensive, with a larger screen and support for handwritten notes. Present a comparison table first, then recommend one model for a student, one for a commuter and one for someone who reads in the bath, explaining each choice in one or two sentences."),
    ("rewriting", "Rewrite the following house rules for a holiday cottage so that they sound welcoming rather than strict, while keeping every rule: no smoking inside; no parties; quiet after 10 p.m.; dogs allowed but not on the beds; check-out by 10 a.m.; put rubbish in the correct bins; report any breakages. Present them as a short friendly introduction followed by a bulleted list, and add a closing line that tells guests where to find the spare key and the Wi-Fi password."),
    ("planning", "Design a simple morning routine chart for a family with two children aged six and nine who keep being late for school. School starts at 8:45 and the walk takes fifteen minutes. The chart should cover getting up, washing, dressing, breakfast, packing bags and leaving the house, with times for each step and a small reward system that the children would find motivating. Explain briefly how the parents should introduce the chart so that the children take part willingly."),
    ("writing", "Write the text for a tri-fold leaflet promoting a new community repair café, where volunteers help people fix broken lamps, clothes, bicycles and small electronics for free. The leaflet has six panels: a cover with a title and slogan, what the café is, what you can bring, how a visit works, why repairing matters for the environment, and when and where it meets (the first Saturday of every month, 10 a.m. to 1 p.m., at St Anne's church hall). Label each panel's text clearly."),
    ("summarisation", "Explain the key points of a typical residential tenancy agreement to a first-time renter who is about to sign one. Cover the deposit, the length of the contract and notice periods, who is responsible for repairs, rules about guests and pets, and what happens at the end of the tenancy. For each point, suggest one question the renter should ask the landlord. Use plain language, add a short disclaimer that the rules vary by country, and keep it under 400 words."),
    ("lists", "Prepare a packing and preparation checklist for a family of four going on a week-long camping trip by car to a site with showers but no shop. Group the items under the headings Sleeping, Cooking, Clothing, Health and safety, Entertainment, and Documents and money. Mark with an asterisk the items that are easy to forget, and add a short section at the end about what to check on the car before leaving. Keep each item to a few words."),
    ("writing", "Write a polite but persuasive letter to a bus company asking them to restore an early-morning bus route that was cancelled last month. Explain that many shift workers and students relied on it, give two concrete examples of how people have been affected, suggest a compromise such as running the route only on weekdays, and ask for a reply within four weeks. The letter should be under 300 words, formal in tone, and signed on behalf of a residents' association."),
    ("planning", "A small café wants to reduce its waste. Write an action plan with at least six concrete measures, covering food waste, packaging, coffee grounds and energy use. For each measure, give an estimated cost (low, medium or high), how quickly it could be introduced, and how the café could measure whether it is working. Present the measures in a table, then finish with a short paragraph suggesting which two measures to start with and why."),
]

MESSY_DATA = [
    ("formatting", "Here is a list of book loans typed quickly by a volunteer: 'harry - the hobbit - out 3/4 - back 17/4; sue: pride & prejudice, out 5 apr, not back; DAN, dune, out 2 april, returned 20 april; harry - emma - out 21/4, not back yet; sue - dune - borrowed 22nd april - still out'. All dates are in April of this year. Turn this into a clean table with the columns Member, Title, Date out and Date returned, using the same date format throughout. Then list which books are still on loan and who has them, and note any entries you had to interpret."),
    ("formatting", "The following contact details were copied from several emails and are inconsistent: 'Ana Ruiz, ana.ruiz@example.com, +34 612 345 678, Madrid'; 'ruiz, ana - phone 612345678 - email ANA.RUIZ@EXAMPLE.COM'; 'Ben Osei (Accra) ben.osei@example.org tel 0244 123 456'; 'B. Osei, Accra, ben.osei@example.org'. Merge the duplicates and produce one clean record per person in JSON, with the fields name, email, phone and city. Normalise email addresses to lower case and explain any decision you made when the entries disagreed."),
    ("statistics", "A sports club recorded attendance at its Saturday training sessions for two months: 6 Jan 14, 13 Jan 12, 20 Jan 9, 27 Jan 15, 3 Feb 16, 10 Feb no session (pitch frozen), 17 Feb 11, 24 Feb 18. Present this data as a tidy table, calculate the average attendance per session held, identify the best and worst weeks, and write a two-sentence summary that the club secretary could read out at the next meeting. Mention how you treated the week without a session."),
    ("formatting", "These are notes from a phone call with a supplier, written in no particular order: 'delivery moved to Thursday', 'price per box now 12.50 instead of 11.80', 'contact person changed to Mira', 'minimum order still 20 boxes', 'Thursday delivery between 8 and 10 a.m.', 'Mira's number is 0161 555 0199', 'new price applies from next month'. Organise these notes into a short, well-structured summary with the headings Delivery, Pricing and Contact, and calculate how much more a minimum order will cost under the new price."),
    ("formatting", "Here are the results of a quiz night, written on a scrap of paper: 'Table 3 - The Owls - 42 pts; table 1 (Quizteama Aguilera) 38; The Know-It-Alls, table 5, 47; tbl 2, Pub Scholars, 38; Table 4 Mind the Gap 29'. Produce a ranked results table with the columns Rank, Team, Table and Points, handle the tie correctly, and then write a short, cheerful announcement of the winners suitable for the pub's social media page."),
    ("formatting", "Convert this rough schedule for a one-day conference into a clean timetable with start and end times for every item: 'registration and coffee from 8:30, welcome talk at 9 (15 min), keynote right after for 45 min, break 20 min, then two workshops in parallel until 12, lunch an hour, panel discussion 1 to 2:15, short break, lightning talks 2:30 till 3:30, closing remarks 15 min then drinks'. Point out any gaps or overlaps you notice."),
]


def build_instruction(rng):
    b = Bucket("instruction")
    for g in TIP_GOALS:
        b.add("lists", "low", rng.choice(TIP_TEMPLATES).format(g=g))
    for d in DISHES:
        b.add("recipe", "low", rng.choice(DISH_TEMPLATES).format(d=d))
    for w in FAMOUS_WORKS:
        b.add("summarisation", "low", rng.choice([
            f"Summarise the plot of {w} in three sentences.",
            f"Give a one-paragraph summary of {w} for someone who has never read it.",
        ]))
    for t in TRIPS:
        b.add("lists", "low", f"Write a packing checklist for {t}.")
    for sentence, lang in TRANSLATIONS:
        b.add("translation", "medium", f"Translate into {lang}: \"{sentence}\"")
    for task in HOWTO_TASKS:
        b.add("how-to", "low", rng.choice([
            f"Explain how to {task} in numbered steps.",
            f"What is the easiest way to {task}?",
            f"Give step-by-step instructions to {task}.",
        ]))
    for recipient, purpose in EMAIL_SCENARIOS:
        tone = rng.choice(EMAIL_TONES)
        constraint = rng.choice(EMAIL_CONSTRAINTS)
        b.add("email", "medium", f"Write a {tone} email to {recipient} {purpose}. {constraint}")
    for s in INFORMAL_SENTENCES:
        b.add("rewriting", "high", rng.choice([
            f"Rewrite this message in a professional tone suitable for a workplace email: \"{s}\"",
            f"Make the following sentence formal and polite without changing its meaning: \"{s}\"",
        ]))
    for s in WORDY_SENTENCES:
        b.add("rewriting", "high", f"Make this sentence more concise while keeping its meaning: \"{s}\"")
    for s in ERROR_SENTENCES:
        b.add("editing", "high", f"Correct the grammar and spelling in this sentence, and briefly explain each correction: \"{s}\"")
    for subject, text in FORMAT_TASKS:
        b.add(subject, "high", text)
    for place in PLAN_PLACES:
        days = rng.choice([2, 3, 4])
        traveller = rng.choice(PLAN_TRAVELLERS)
        constraint = rng.choice(PLAN_CONSTRAINTS)
        b.add("planning", "medium", f"Create a {days}-day itinerary for {place} for {traveller}, with {constraint}. "
                                    f"Present it day by day with morning, afternoon and evening suggestions.")
    for subject, text in INSTRUCTION_MISC_MEDIUM:
        b.add(subject, "medium", text)
    for subject, text, tasks in INSTRUCTION_TEXTS:
        for task in tasks:
            b.add(subject, "high", rng.choice([
                f"Read the following text and complete the task. Text: \"{text}\" Task: {task}",
                f"\"{text}\" {task}",
            ]))
    for subject, text in INSTRUCTION_BRIEFS:
        b.add(subject, "medium", text)
    for subject, text in MESSY_DATA:
        b.add(subject, "high", text)
    return b


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------

# (subject, passage, passage-specific questions)
READING_PASSAGES = [
    ("biology",
     "When a honeybee forager finds a good patch of flowers, she returns to the hive and performs what scientists call the waggle dance. On the vertical surface of the honeycomb, she runs forward in a straight line while shaking her body from side to side, then loops back and repeats the run. The angle of the straight run, measured from the vertical, shows the direction of the food relative to the Sun, and the length of the waggle part signals the distance: the longer the waggle, the farther away the flowers. Other bees follow the dancer closely, sensing her movements in the darkness of the hive. Because the Sun moves across the sky during the day, the dancer gradually adjusts her angle, a remarkable feat for an insect with a brain smaller than a grain of rice.",
     ["According to the passage, how does a bee communicate how far away the food is?",
      "Why does the dancer change the angle of her run over the course of the day?",
      "How are the other bees able to follow the dance, given that the hive is dark?"]),
    ("physics",
     "Twice a day, along most coastlines, the sea creeps up the shore and then retreats. These tides are caused mainly by the Moon's gravity. The Moon pulls most strongly on the side of Earth facing it, drawing the ocean into a bulge. A second bulge forms on the opposite side, because there the Moon's pull is weaker than it is on the planet as a whole. As Earth rotates through these two bulges, a given coast usually experiences two high tides and two low tides roughly every 24 hours and 50 minutes. The Sun also affects the tides, though less strongly. When the Sun and Moon line up, at new moon and full moon, their effects combine to produce especially large spring tides; when they pull at right angles to each other, the smaller neap tides occur.",
     ["Why does a second tidal bulge form on the side of Earth facing away from the Moon?",
      "What are spring tides, and when do they happen?",
      "How long does a full cycle of two high tides and two low tides take, according to the passage?"]),
    ("history",
     "Before the middle of the fifteenth century, books in Europe were mostly copied by hand, a slow process that made them rare and expensive. Around 1450, Johannes Gutenberg, a goldsmith from Mainz, developed a printing system built around movable metal type. Individual letters were cast in metal, arranged into lines, inked, and pressed onto paper with a screw press adapted from those used to make wine and olive oil. Gutenberg also worked on an oil-based ink that clung well to metal. His most famous product, a Latin Bible, was completed around 1455. Within fifty years, printing shops had spread to more than two hundred European towns, and millions of books had been produced. Cheaper books helped new ideas travel quickly, from scientific discoveries to religious arguments.",
     ["What earlier technology did Gutenberg adapt for his press?",
      "Why were books expensive before printing?",
      "According to the passage, what were some effects of cheaper books?"]),
    ("culture",
     "In the hill village of Santel, the first rain after the dry season is celebrated with a festival called the Opening of the Jars. For months, families store water in clay jars painted with their family symbols. When the rain finally arrives, usually in late May, the children carry the jars to the square and pour the old water into the dry fountain, as a way of thanking the land for getting them through the drought. Then the jars are washed, repainted by the eldest member of each family, and placed outside to collect the new rain. Visitors are often surprised that the festival has no fixed date; the village simply waits. In some years people have waited nearly three weeks, with the square already decorated and the musicians ready.",
     ["Why does the festival not have a fixed date?",
      "Who repaints the jars, and at what point in the festival?",
      "What does pouring the old water into the fountain mean to the villagers?"]),
    ("biology",
     "Octopuses are among the most intelligent invertebrates. An octopus has around 500 million neurons, and roughly two-thirds of them are located not in its central brain but in its eight arms. This allows each arm to respond to touch and taste on its own, even exploring a crevice while the animal's attention seems to be elsewhere. In laboratory studies, octopuses have learned to open screw-top jars, find their way through simple mazes and recognise individual human keepers. Their skill at camouflage is just as impressive: special skin cells called chromatophores let them change colour in a fraction of a second. Yet most octopus species live only one to two years, which means that almost everything they know must be learned quickly, without any help from their parents.",
     ["Where are most of an octopus's neurons located, and what does this allow the animal to do?",
      "Name two things octopuses have learned to do in laboratory studies.",
      "Why does the passage say that octopuses must learn quickly?"]),
    ("psychology",
     "For a long time, sleep was thought of as a simple rest period for the body. Research over the past few decades has shown that the brain stays busy while we sleep. In particular, sleep appears to help strengthen memories formed during the day. In many experiments, people who learned a list of words or a new motor skill, such as a finger-tapping sequence, performed better after a night's sleep than after the same number of hours awake. Scientists think that during deep sleep the brain replays patterns of activity from earlier learning, helping to move information into longer-term storage. This does not mean that studying late at night is useless, but it does suggest that a student who sleeps well may remember more of what they studied.",
     ["What evidence does the passage give that sleep helps memory?",
      "What do scientists think happens in the brain during deep sleep?",
      "What advice for students can reasonably be drawn from this passage, and what advice would go beyond it?"]),
    ("story",
     "Mrs Adeyemi opened her bakery on Calder Street at six every morning, and by half past six there was always a queue. The regulars knew her rules: no more than two loaves each on Saturdays, cash or card but never cheques, and anyone who complained about the queue would be served last. Her sourdough was famous across the city, but what people remembered most was how she remembered them. She knew who had a new baby, who had lost a job, who was training for a marathon. When the bakery finally closed after thirty-one years, the regulars did not hold a party. Instead, they formed one last queue on Calder Street at six in the morning, each of them carrying a loaf they had baked themselves.",
     ["What were Mrs Adeyemi's rules for her customers?",
      "Why do you think the regulars formed a queue on the last morning instead of holding a party?",
      "What does the passage suggest people valued most about the bakery?"]),
    ("geology",
     "In April 2010, an eruption beneath the Eyjafjallajökull glacier in Iceland sent a cloud of fine volcanic ash high into the atmosphere. The eruption itself was not especially large, but the wind carried the ash south-east towards mainland Europe. Because ash particles can melt inside jet engines and damage them, aviation authorities closed large parts of European airspace. For about six days, most flights across northern and western Europe were cancelled, stranding millions of travellers. The event led to new rules allowing aircraft to fly through low concentrations of ash, and it showed how a fairly modest natural event could disrupt a highly connected modern economy.",
     ["Why was airspace closed even though the eruption was not especially large?",
      "For how long were most flights cancelled, according to the passage?",
      "What lasting change resulted from the event?"]),
    ("science",
     "For the school science fair, Priya decided to test whether plants grow better with music. She planted twelve bean seeds in identical pots and divided them into three equal groups. One group heard classical music for two hours a day, one heard rock music, and one was kept in silence. After three weeks, the plants in the silent group were actually the tallest. Priya was disappointed at first, but her teacher pointed out that the speakers gave off a little heat and that the silent group had been placed nearest the window. Priya realised that her experiment had not controlled for light. She decided to repeat it, this time rotating the pots every day and placing the speakers at an equal distance from each group.",
     ["How many seeds were in each group?",
      "What problem with the experiment did the teacher point out?",
      "How did Priya plan to improve her experiment, and why would those changes help?"]),
    ("history",
     "Coffee's origins are wrapped in legend. One popular story tells of an Ethiopian goat herder who noticed that his animals became lively after eating red berries from a certain shrub. Whatever the truth of that tale, historians agree that by the fifteenth century coffee was being brewed in Sufi monasteries in Yemen, where it helped people stay awake during night-time prayers. From there it spread to Mecca, Cairo and Istanbul, where coffee houses became lively places for conversation, music and debate. Some rulers tried to ban them, worried that they encouraged dangerous political talk. By the seventeenth century, coffee houses had appeared in Venice, London and Paris, and in London they were sometimes called 'penny universities', because for the price of a cup one could listen to learned discussion.",
     ["Why did Sufi communities in Yemen drink coffee?",
      "Why did some rulers try to ban coffee houses?",
      "What does the nickname 'penny universities' suggest about London coffee houses?"]),
    ("civics",
     "Our town should introduce a shared bicycle scheme this summer. At present, the short trips that make up most of our daily travel, to the station, the shops and the school gate, are made by car, filling the centre with traffic and making the streets unpleasant for everyone. A scheme of two hundred bicycles at twenty docking stations would cost less than resurfacing a single kilometre of road. Towns of a similar size have seen car trips in their centres fall noticeably within two years. Critics argue that our hills make cycling impractical, but electric-assist bicycles solve this problem. The real question is not whether we can afford such a scheme, but whether we can afford to keep ignoring the problem.",
     ["What is the writer's main argument?",
      "How does the writer respond to the objection about hills?",
      "Identify one claim in the passage that would need evidence to be convincing, and say what evidence would help."]),
    ("biology",
     "Emperor penguins breed during the Antarctic winter, when temperatures can fall below minus forty degrees Celsius. After the female lays a single egg, she passes it to the male and walks back to the sea to feed. The male balances the egg on his feet, covering it with a warm fold of skin called a brood pouch, and for about two months of incubation he does not eat at all. To survive the wind and cold, the males huddle together in large groups, slowly shuffling so that each bird takes turns on the exposed outer edge and in the warmer centre. When the chick hatches, the female usually returns, and the parents then take turns travelling to the sea to bring back food.",
     ["What does the male penguin do while the female is at sea?",
      "How does huddling help the penguins survive?",
      "What is a brood pouch, according to the passage?"]),
    ("story",
     "When Biscuit the terrier slipped his lead in the park, Leo searched for three hours before going home in tears. His mother suggested making posters, and together they drew a picture of Biscuit, wrote their phone number in large letters, and stuck copies on lampposts around the neighbourhood. The next morning there were no calls. By lunchtime, Leo had given up hope. Then, at about two o'clock, there was a knock at the door. It was Mr Hale, the elderly neighbour Leo had always been slightly afraid of, holding Biscuit in his arms. He explained that the dog had turned up in his shed the night before, curled up on an old blanket, and that he did not own a telephone.",
     ["Why did Mr Hale not call the number on the posters?",
      "How might Leo's feelings about Mr Hale change after this event? Use evidence from the passage.",
      "Put the main events of the story in order, as a numbered list."]),
    ("environment",
     "Not all plastics are equally easy to recycle. Many plastic items carry a small number from 1 to 7 inside a triangle, which identifies the type of resin used. Bottles made from type 1 plastic, known as PET, and containers made from type 2, HDPE, are widely accepted by recycling programmes because there are established markets for the recovered material. Other types, such as mixed or multi-layer packaging, are much harder to process and often end up in landfill or incineration even when they are placed in recycling bins. Contamination is another problem: a container with food left inside can spoil a whole batch of otherwise useful material. For these reasons, experts often advise that using less plastic matters more than recycling it.",
     ["What does the number inside the triangle on plastic items indicate?",
      "Why are PET and HDPE more widely recycled than other plastics?",
      "Why can food left in a container be a problem for recycling?"]),
    ("history",
     "The modern marathon race takes its name from a legend about ancient Greece. According to the story, after the Athenian victory over the Persians at the Battle of Marathon in 490 BC, a messenger ran to Athens to announce the news, then collapsed and died. Historians doubt many details of the tale, and the earliest surviving accounts of the battle say nothing about such a run. Nevertheless, when the first modern Olympic Games were held in Athens in 1896, the organisers included a long-distance race from Marathon to the city, and it was won by a Greek water carrier named Spyridon Louis. The distance varied at early Games; the now-standard 42.195 kilometres was first used at the 1908 London Olympics and officially fixed in 1921.",
     ["What legend is the marathon named after?",
      "Who won the first modern Olympic marathon, and in what year?",
      "How does the passage show that the historical basis of the legend is uncertain?"]),
    ("story",
     "Old Bertrand had repaired clocks in the same narrow shop for fifty years, and he did not want an apprentice. But his daughter insisted, and so fifteen-year-old Noor arrived one Monday with a notebook and no experience. For the first week, Bertrand gave her nothing to do but sort screws by size. Noor sorted them carefully and, without being asked, labelled every drawer. In the second week, he let her clean gears. In the third, a customer brought in a carriage clock that had stopped, and Bertrand, whose hands had begun to shake, could not fit the tiny spring back into place. He looked at Noor for a long moment, then slid the clock across the bench towards her.",
     ["What tasks did Bertrand give Noor in her first two weeks?",
      "What does Noor's labelling of the drawers suggest about her character?",
      "What is the significance of Bertrand sliding the clock towards Noor at the end?"]),
    ("geography",
     "The Amazon rainforest does more than store carbon; it also helps to make its own rain. Trees draw water from the soil through their roots and release it as vapour through tiny pores in their leaves, a process called transpiration. A single large tree can release hundreds of litres of water on a hot day. Across the whole forest, this moisture forms vast streams of water vapour in the atmosphere, sometimes called flying rivers, which carry rain far inland and even to farming regions further south. Scientists warn that if too much forest is cleared, this cycle could weaken, leading to longer dry seasons and putting both the remaining forest and the agriculture that depends on its rain at risk.",
     ["What is transpiration, according to the passage?",
      "What are the 'flying rivers' described in the passage?",
      "Why do scientists worry about clearing too much forest?"]),
    ("community",
     "When the regional newspaper closed last year, residents of the Kessel Valley lost their main source of local news. Three retired teachers decided to do something about it. With a second-hand transmitter, a borrowed microphone and a small grant from the parish council, they launched Valley Radio, broadcasting for two hours every evening from a converted garage. The programmes cover council meetings, school events, weather warnings for farmers and, on Fridays, a request show that has become unexpectedly popular with teenagers. The station now has twenty-three volunteers, the youngest aged fourteen and the oldest eighty-one. Its founders say that their biggest challenge is not money but time: editing interviews takes far longer than any of them expected.",
     ["Why was Valley Radio started?",
      "What do the founders say is their biggest challenge?",
      "Which details suggest that the station appeals to people of different ages?"]),
    ("medicine",
     "When Alexander Fleming returned from holiday in September 1928, he noticed that a mould had contaminated one of his dishes of bacteria, and that the bacteria around the mould had died. The mould was a species of Penicillium, and the substance it produced became known as penicillin. Fleming published his findings, but purifying penicillin in useful quantities proved difficult. It was not until the early 1940s that a team at Oxford, led by Howard Florey and Ernst Chain, developed ways to produce and test it. Mass production during the Second World War saved many lives. In 1945, Fleming, Florey and Chain shared the Nobel Prize in Physiology or Medicine. Fleming himself warned that misusing the drug could allow bacteria to become resistant to it.",
     ["What did Fleming observe on his contaminated dish?",
      "Why was penicillin not widely used immediately after Fleming's discovery?",
      "What warning did Fleming give, and why is it still relevant today?"]),
    ("business",
     "Last spring, Tallis Design, a company of forty employees, trialled a four-day working week for six months. Staff kept the same pay but worked thirty-two hours instead of forty. To make this possible, the company cut its regular meetings from an hour to thirty minutes and introduced focus mornings, on which no internal messages were allowed before noon. At the end of the trial, the number of completed projects was almost unchanged, sick days had fallen by a third, and in an anonymous survey thirty-seven of the forty employees asked to continue. The managing director admitted that some clients were annoyed about the Friday closure at first, but said that most adjusted within a few weeks.",
     ["What two changes did the company make to keep work on track?",
      "How many employees did not ask to continue, according to the survey?",
      "What downside of the trial does the passage mention?"]),
    ("history",
     "The Great Wall of China is not a single wall but a series of fortifications built and rebuilt over roughly two thousand years. Early walls were made of packed earth and wood by rival states during the Warring States period. After China was unified in 221 BC, the first emperor, Qin Shi Huang, linked and extended some of these defences. Most of the brick and stone sections that tourists visit today, however, date from the Ming dynasty, which ruled from 1368 to 1644. Contrary to a popular myth, the wall is not easily visible to the naked eye from the Moon; it is long but very narrow, and similar in colour to the land around it.",
     ["When were most of the sections that tourists visit today built?",
      "Why is the wall not easily visible from the Moon, according to the passage?",
      "What materials were used in the earliest walls?"]),
    ("story",
     "Every Tuesday after school, the chess club met in Room 12, and every Tuesday, Marcus lost. He lost to the older students, he lost to the new members, and once, memorably, he lost to the caretaker, who had only come in to empty the bins. Marcus did not mind as much as people assumed. He kept a small notebook in which he wrote down every game, and at home he replayed them, looking for the moment things went wrong. By the spring tournament, the notebook was full. In the first round he was drawn against the club champion, a girl named Elif who had not lost a game all year. Forty minutes later, she offered him her hand, looking slightly puzzled, and said, 'Well played.'",
     ["How did Marcus use his notebook?",
      "What probably happened in Marcus's first-round game? Explain how you can tell.",
      "What lesson might a reader take from this story?"]),
    ("astronomy",
     "Mars today is a cold, dry desert, but there is strong evidence that liquid water once flowed across its surface. Orbiting spacecraft have photographed dried-up river valleys, deltas where rivers once flowed into lakes, and minerals such as clays that usually form in the presence of water. Rovers on the ground have found rounded pebbles like those shaped by streams on Earth. Water still exists on Mars, but mostly as ice, in the polar caps and beneath the surface. The planet's atmosphere is less than one per cent as dense as Earth's, so liquid water on the surface would quickly evaporate or freeze. Why Mars lost most of its early atmosphere remains an active area of research.",
     ["What evidence suggests that Mars once had liquid water?",
      "Where is most of the water on Mars found today?",
      "Why can liquid water not easily exist on the surface of Mars now?"]),
    ("story",
     "Clearing out her grandmother's flat, Rosa found a shoebox of letters tied with green ribbon. They were written in Portuguese, a language Rosa understood only a little, and they were all addressed to someone called Alberto. None had been posted. Rosa's mother said she had never heard of an Alberto. Over the next month, Rosa sat at the kitchen table with a dictionary, translating a few lines each evening. The letters described a summer in a fishing town, a promise made on a harbour wall, and a decision to emigrate that the writer never fully explained. The last letter, dated the year Rosa's mother was born, ended with a single sentence: 'I hope you are as happy as I have decided to be.'",
     ["Why did Rosa need a dictionary to read the letters?",
      "What do we learn about Alberto from the passage, and what remains unknown?",
      "What might the final sentence of the last letter suggest about the grandmother's feelings?"]),
    ("medicine",
     "Vaccines protect individuals, but they also protect communities. When a large enough share of a population is immune to a contagious disease, the disease has difficulty spreading, because each infected person is likely to meet mostly people who cannot catch it. This effect is known as herd immunity or community immunity. It is especially important for people who cannot be vaccinated, such as newborn babies or people with certain medical conditions. The share of the population that needs to be immune depends on how contagious the disease is. For measles, which spreads very easily, it is estimated at around 95 per cent; for less contagious diseases, the threshold is lower.",
     ["Explain herd immunity in your own words, using the passage.",
      "Why is herd immunity especially important for newborn babies?",
      "Why is the threshold for measles higher than for many other diseases?"]),
    ("technology",
     "In the low-lying town of Weerdam, where the river floods several times a decade, a group of architects has built twenty homes designed to float. Each house sits on a hollow concrete base that rests on the ground in normal conditions. When the water rises, the base lifts the house upwards, guided by two steel posts that stop it from drifting away. Flexible pipes and cables keep water, electricity and sewage connected as the house rises and falls. The first real test came last winter, when the river rose nearly two metres in a single night. Residents reported that they slept through it and woke to find their gardens underwater but their living rooms dry.",
     ["What stops the floating houses from drifting away?",
      "How do the houses stay connected to water and electricity during a flood?",
      "What happened during the first real test of the houses?"]),
    ("history",
     "Silk is made by the caterpillars of the silk moth, Bombyx mori, which feed almost entirely on mulberry leaves. When a caterpillar is ready to pupate, it spins a cocoon from a single continuous thread that can be several hundred metres long, sometimes more than a kilometre. To obtain the silk, producers usually soften the cocoons in hot water and carefully unwind the thread. Several threads are then twisted together to make a yarn strong enough to weave. Silk production began in China thousands of years ago, and for a long time the methods were kept secret. The trade in silk was so important that the network of routes linking China with Central Asia, the Middle East and Europe later became known as the Silk Road.",
     ["What do silk moth caterpillars eat?",
      "Describe the process of obtaining silk thread from a cocoon.",
      "How did the Silk Road get its name, according to the passage?"]),
    ("story",
     "At three in the morning, Ward 6 was quiet except for the beeping of monitors and the soft squeak of Ada's shoes on the floor. She had worked night shifts for nine years and had learned to love this hour, when the corridors were dim and the patients slept. In bed 4, an old man was awake, staring at the ceiling. Ada made him a cup of tea, although tea was not strictly allowed after midnight, and sat with him for ten minutes while he talked about the dance hall where he had met his wife. When her shift ended at seven, she found a note on the nurses' desk, written in shaky capitals: THANK YOU FOR THE WALTZ.",
     ["Why might Ada have learned to love three o'clock in the morning?",
      "Which rule did Ada bend, and why do you think she did it?",
      "What do you think the note 'THANK YOU FOR THE WALTZ' means?"]),
    ("technology",
     "Many people imagine that international internet traffic travels mainly by satellite, but the vast majority actually runs through cables on the ocean floor. These cables, often no thicker than a garden hose, contain strands of optical fibre that carry data as pulses of light. Hundreds of them cross the world's oceans, linking the continents. In shallow water near the coast, cables are usually buried and protected with steel armour, because the greatest threats come from fishing trawlers and ships' anchors. In the deep ocean, they simply lie on the seabed. When a cable is damaged, specialised repair ships locate the break, lift the cable ends to the surface and splice in a new section, a job that can take days or even weeks.",
     ["How is data carried through undersea cables?",
      "Why are cables near the coast buried and armoured?",
      "How are damaged cables repaired?"]),
    ("agriculture",
     "The drought had lasted two summers when Hamid decided to change the way he farmed. Instead of ploughing his fields each spring, he left the stubble of the previous crop on the ground and planted directly into it. His neighbours shook their heads; the fields looked untidy, and his father called it lazy farming. But the stubble shaded the soil and slowed evaporation, and the old roots left in the earth helped rainwater soak in instead of running off. In the third dry summer, Hamid's wheat harvest fell, but by much less than his neighbours'. The following year, two of them asked to borrow his seed drill.",
     ["What change did Hamid make to the way he farmed?",
      "How did leaving the stubble on the ground help his fields?",
      "What does the ending suggest about how the neighbours' opinion had changed?"]),
    ("linguistics",
     "Children who grow up hearing two languages from birth usually learn both without special effort. In their early years, they may mix words from the two languages in a single sentence, which sometimes worries parents. Linguists generally see this mixing as a normal stage rather than a sign of confusion: bilingual children often use whichever word is most available to them at that moment, and they soon learn which language to use with which person. Research suggests that bilingual children may reach some early vocabulary milestones slightly later in each separate language, but their combined vocabulary across both languages is typically similar to that of children who speak only one.",
     ["How do linguists generally view children mixing two languages in one sentence?",
      "What does research suggest about bilingual children's vocabulary?",
      "What reassurance could this passage offer to worried parents?"]),
    ("history",
     "Before electric lamps, lighthouses relied on fires, candles and oil lamps, whose light was weak and scattered in every direction. In 1822, the French physicist Augustin Fresnel presented a new kind of lens made of concentric rings of glass prisms. Because it was built in sections rather than as one thick curved piece, the Fresnel lens was much lighter and thinner than an ordinary lens of the same size, yet it gathered light from the lamp and focused it into a powerful beam. Lighthouses fitted with Fresnel lenses could be seen many kilometres farther out to sea. Each lighthouse was also given its own pattern of flashes, so that sailors could identify it at night.",
     ["What problem did earlier lighthouse lights have?",
      "Why was the Fresnel lens lighter than an ordinary lens of the same size?",
      "Why was each lighthouse given its own pattern of flashes?"]),
]

READING_GENERIC_QUESTIONS = [
    "What is the main idea of this passage?",
    "Suggest a suitable title for this passage and explain your choice.",
    "Summarise the passage in one sentence.",
    "What is the tone of this passage, and which words or phrases create it?",
    "List three facts or details stated in the passage.",
    "Which sentence in the passage do you think is the most important, and why?",
    "Write two questions that a curious reader might ask after reading this passage, and say whether the passage answers them.",
    "Is this passage mainly informative, persuasive or narrative? Justify your answer with examples from the text.",
    "Explain the passage to a ten-year-old in three simple sentences.",
    "Write a true-or-false quiz of four statements based on the passage, and give the answers.",
]

READING_FORMATS = [
    "Read the following passage and answer the question that follows. Passage: {p} Question: {q}",
    "Passage: {p} Based only on the passage above, {q_lower}",
    "{p} Answer the following question using the text above. {q}",
    "Read this text carefully. \"{p}\" {q}",
]

READING_VOCAB = [
    ("The committee's decision was provisional and could change after the public consultation.", "provisional"),
    ("After weeks of rain, the river was swollen and the footpath was impassable.", "impassable"),
    ("Her account of the evening was so meticulous that the detective could picture every minute.", "meticulous"),
    ("The mayor's speech was deliberately ambiguous, so both sides believed she agreed with them.", "ambiguous"),
    ("The old bridge was dismantled piece by piece and rebuilt in the museum courtyard.", "dismantled"),
    ("Despite a lacklustre first half, the team rallied to win in the final minutes.", "lacklustre"),
    ("The scientist remained sceptical of the results until another laboratory reproduced them.", "sceptical"),
    ("The hikers rationed their water carefully, knowing the next spring was a day's walk away.", "rationed"),
    ("His apology seemed perfunctory, delivered without looking up from his phone.", "perfunctory"),
    ("The village's population dwindled as young people moved to the cities for work.", "dwindled"),
    ("The new policy was lauded by teachers but criticised by some parents.", "lauded"),
    ("She gave a candid answer, admitting that the project had been badly planned.", "candid"),
    ("The kitten, ever inquisitive, had climbed into the open suitcase within seconds.", "inquisitive"),
    ("The assembly instructions were so convoluted that nobody could build the shelf.", "convoluted"),
    ("The long drought left the farmers in a precarious position, one bad month from ruin.", "precarious"),
    ("The two companies reached an amicable agreement without going to court.", "amicable"),
    ("The speaker's voice was barely audible over the noise of the traffic outside.", "audible"),
    ("The evidence was scant, so the journalist decided not to publish the story yet.", "scant"),
]


def build_reading(rng):
    b = Bucket("reading")
    for subject, passage, specific in READING_PASSAGES:
        n_words = len(passage.split())
        assert 80 <= n_words <= 200, (n_words, passage[:40])
        generic = rng.sample(READING_GENERIC_QUESTIONS, 4)
        for q in specific + generic:
            fmt = rng.choice(READING_FORMATS)
            q_lower = q[0].lower() + q[1:]
            b.add(subject, "high", fmt.format(p=passage, q=q, q_lower=q_lower))
    for sentence, word in READING_VOCAB:
        b.add("vocabulary", "medium", rng.choice([
            f"In the sentence \"{sentence}\", what does the word \"{word}\" mean? Explain how the context helps.",
            f"What does \"{word}\" mean in this sentence: \"{sentence}\"",
        ]))
    return b


# ---------------------------------------------------------------------------
# long: several reading passages as the sections of one document, with a
# question about one section or about the whole. These are the prompts long
# enough (400 to 900 tokens of the embedded model's tokenizer; checked by the
# Rust test `long_prompts_fit_the_embedded_model`) for the long-context
# pruning actions (KV window, heads) to matter.
# ---------------------------------------------------------------------------

LONG_COUNT = 200
LONG_WORDS = (215, 420)

LONG_INTROS = [
    "Read the following document, which has {n} sections, and answer the question at the end.",
    "Below is a collection of {n} short articles from a school magazine. Read all of them, then answer the question.",
    "The text below is made of {n} separate passages. Use only the information in them to answer the question that follows.",
    "Here are {n} excerpts from a general-knowledge reader. Study them carefully before answering.",
]

LONG_WHOLE_QUESTIONS = [
    "Which two sections are most closely related, and why?",
    "Give each section a short title.",
    "Which section did you find the most surprising, and what detail in it supports your answer?",
    "Summarise the whole document in three sentences.",
    "Name one fact from the first section and one from the last section.",
    "Which section explains a process step by step? Describe the steps it gives.",
]


def build_long(rng):
    b = Bucket("long")
    passages = list(READING_PASSAGES)
    tries = 0
    while len(b) < LONG_COUNT and tries < 20000:
        tries += 1
        k = rng.randint(2, 4)
        chosen = rng.sample(passages, k)
        words = sum(len(p.split()) for _, p, _ in chosen)
        if not (LONG_WORDS[0] <= words <= LONG_WORDS[1]):
            continue
        sections = " ".join(f"Section {i + 1}. {p}" for i, (_, p, _) in enumerate(chosen))
        intro = rng.choice(LONG_INTROS).format(n=k)
        target = rng.randrange(k)
        subject, _, specific = chosen[target]
        if rng.random() < 0.7:
            q = rng.choice(specific)
            question = f"Question about section {target + 1}: {q}"
        else:
            subject = "document"
            question = f"Question: {rng.choice(LONG_WHOLE_QUESTIONS)}"
        b.add(subject, "high", f"{intro} {sections} {question}")
    assert len(b) == LONG_COUNT, len(b)
    return b


# ---------------------------------------------------------------------------
# commonsense
# ---------------------------------------------------------------------------

COMMONSENSE_SHORT = [
    ("physical", "What happens to an ice cube left on a warm kitchen counter?"),
    ("physical", "Why do people spread salt or grit on icy roads?"),
    ("physical", "If you drop a glass onto a tiled floor, what is likely to happen?"),
    ("safety", "Why should you not put a metal fork in a microwave oven?"),
    ("physical", "Can you dry clothes outside on a rainy day? Why or why not?"),
    ("physical", "Which cools down faster, a cup of tea or a large pot of soup?"),
    ("physical", "Why do people wear light-coloured clothes in hot weather?"),
    ("plants", "What would probably happen if you watered a cactus every day?"),
    ("food", "Why does bread go stale faster in the fridge than in a bread bin?"),
    ("physical", "Why is it harder to walk on dry sand than on pavement?"),
    ("physical", "What might happen to a balloon left in a hot car?"),
    ("food", "Why do you need to shake a bottle of oil-and-vinegar salad dressing?"),
    ("home", "Why might a wooden door stick more in humid weather?"),
    ("physical", "Can a paper bag hold a litre of water for long?"),
    ("physical", "Why does a metal spoon left in hot soup become hot?"),
    ("physical", "Why is it a bad idea to freeze a full glass bottle of water?"),
    ("food", "What might happen to milk left out of the fridge overnight in summer?"),
    ("physical", "Why do puddles disappear on a sunny day?"),
    ("physical", "Why do cyclists lean into a turn?"),
    ("home", "Why is a sharp knife safer for cutting tomatoes than a blunt one?"),
    ("safety", "What happens if you put a plastic bowl on a hot stove?"),
    ("home", "Why should matches be stored in a dry place?"),
    ("physical", "Why does the bathroom mirror fog up during a hot shower?"),
    ("physical", "Why can a huge steel ship float while a small pebble sinks?"),
    ("physical", "Why does a frozen pond have ice on top rather than at the bottom?"),
    ("social", "Why do people say thank you when someone holds a door open for them?"),
    ("social", "Is it polite to answer your phone during a job interview?"),
    ("social", "What should you do if you accidentally bump into someone on the street?"),
    ("social", "Why do people speak quietly in a library?"),
    ("social", "If a friend starts crying, what is a kind thing to do?"),
    ("social", "Why might someone bring a small gift when visiting a friend's new home?"),
    ("social", "Why is it rude to read someone else's messages without permission?"),
    ("social", "What would most people do if they found a wallet on the pavement?"),
    ("social", "Why do some hosts ask guests to take their shoes off indoors?"),
    ("social", "Why do people queue at a bus stop instead of crowding the door?"),
    ("social", "Why should you reply to a wedding invitation by the date requested?"),
    ("social", "How might someone feel if everyone forgot their birthday?"),
    ("social", "Why do people lower their voices at a funeral?"),
    ("social", "Would it be appropriate to wear a swimsuit to an office meeting?"),
    ("social", "Why might a new employee arrive a little early on their first day?"),
    ("social", "What should you do if a waiter brings you the wrong dish?"),
    ("social", "Why do neighbours sometimes warn each other before holding a noisy party?"),
    ("safety", "Why do drivers slow down near schools?"),
    ("time", "Can you bake a whole cake in five minutes in a normal oven?"),
    ("planning", "Why do people check the weather forecast before a picnic?"),
    ("planning", "What should you bring for an overnight camping trip in the mountains?"),
    ("time", "If the walk to the station takes 20 minutes and your train leaves at 8:00, when should you leave home?"),
    ("time", "Why do most people set an alarm before going to sleep?"),
    ("safety", "Why should you never leave a dog in a parked car on a hot day?"),
    ("safety", "Why is it unwise to swim outdoors when thunder can be heard?"),
    ("food", "Which is more useful for eating soup, a fork or a spoon?"),
    ("shopping", "Why do shops put umbrellas near the entrance on rainy days?"),
    ("planning", "Why do people write shopping lists before going to the supermarket?"),
    ("physical", "Can a person read a printed book in complete darkness?"),
    ("technology", "What will happen if you do not charge your phone for three days?"),
    ("hygiene", "Why do people wash their hands before cooking?"),
    ("home", "Why do people leave a spare key with a trusted neighbour?"),
    ("physical", "Could you carry a sofa home on a bicycle? Why or why not?"),
    ("planning", "Why is it helpful to label boxes when moving house?"),
    ("physical", "Why do candles get shorter as they burn?"),
    ("travel", "Why do pilots warn passengers before flying through turbulence?"),
    ("time", "Why are restaurants usually busiest around midday and in the evening?"),
    ("clothing", "Why do people wear gloves in freezing weather?"),
    ("plants", "If a houseplant's leaves turn yellow and droop, what might be wrong?"),
    ("home", "Why do people close the curtains in the evening?"),
    ("safety", "Why do schools hold regular fire drills?"),
    ("safety", "Why do people look both ways before crossing a street?"),
    ("home", "What might happen if you leave a window open during a storm?"),
    ("planning", "Why would someone carry an umbrella on a cloudy morning?"),
    ("physical", "Which is more likely to break when dropped, a rubber ball or an egg?"),
    ("safety", "Why should you never pour water on a pan of burning oil?"),
    ("social", "Why do people often tip delivery drivers more in bad weather?"),
    ("safety", "Why do toddlers need to be watched near stairs?"),
    ("travel", "Why do people often feel tired after a long flight across time zones?"),
    ("physical", "Why does a cold drink can get wet on the outside on a warm day?"),
    ("food", "Why do people put food in the fridge?"),
    ("physical", "Why do we see lightning before we hear thunder?"),
    ("social", "Why do people usually shake hands or smile when they meet someone new?"),
    ("planning", "Why do people book hotels in advance during holiday seasons?"),
    ("physical", "Why does a snowman melt faster in the sun than in the shade?"),
    ("home", "Why is it a good idea to turn off the tap while brushing your teeth?"),
    ("animals", "Why do dogs pant on hot days?"),
    ("animals", "Why might a cat hide under the bed during a thunderstorm?"),
    ("travel", "Why do airports ask passengers to arrive well before their flight?"),
    ("time", "Is it possible to be in two different cities at exactly the same moment?"),
    ("social", "Why would it be strange to clap loudly during a quiet exam?"),
    ("physical", "Why is it easier to open a jar after running the lid under hot water?"),
    ("food", "Why does a sliced apple turn brown after a while?"),
    ("home", "Why do people put a mat at the front door?"),
    ("physical", "Why do wet roads make braking distances longer?"),
]

COMMONSENSE_SCENARIOS = [
    ("safety", "{a} put a pot of water on the stove, turned the heat to high, and then went into the garden to answer a long phone call. What is likely to have happened by the time {a} comes back twenty minutes later, and what should {a} do?"),
    ("planning", "{a} packed sandwiches, sunscreen and a blanket for a day at the beach, but on arrival the sky was dark and a strong, cold wind was blowing. What might {a} decide to do, and why?"),
    ("social", "At a dinner party, {a} notices that {b} has barely touched the main course, which contains a lot of meat. What might explain this, and what would be a tactful thing for the host to do?"),
    ("physical", "{a} left a chocolate bar on the dashboard of a car parked in the sun all afternoon. Describe what {a} will probably find, and suggest where the chocolate should have been kept."),
    ("social", "{a} borrowed {b}'s favourite book and accidentally spilled coffee on it. What are two reasonable ways {a} could handle the situation, and which is better?"),
    ("time", "{a} has a job interview at 9:00 on the other side of the city. The bus usually takes 40 minutes, but it is snowing heavily this morning. What time should {a} leave, and what else should {a} consider?"),
    ("home", "{a} notices a small damp patch on the ceiling of the upstairs bathroom that seems to be getting bigger each day. What could be causing it, and what should {a} do first?"),
    ("social", "{a} is invited to two birthday parties on the same Saturday afternoon, one for a close friend and one for a colleague. How might {a} handle this politely?"),
    ("physical", "{a} is trying to push a heavy wardrobe across a carpeted floor and it will not move. Suggest three practical ways to make the job easier, and explain why each works."),
    ("planning", "{a} is planning a hike that will take about six hours and starts at 3 p.m. in late autumn. What problem might {a} run into, and how could the plan be improved?"),
    ("social", "During a group project, {b} has done almost none of the work, and the deadline is in two days. What could {a} say or do that is fair but does not damage the friendship?"),
    ("food", "{a} wants to make a salad for twelve guests but only has one small bowl and half an hour. What practical solutions might {a} come up with?"),
    ("physical", "{a} filled a glass right to the brim with cold water and added several ice cubes. What happens to the water level as the ice melts, and why might this surprise some people?"),
    ("social", "{a} is on a crowded train with a seat, and an elderly man carrying heavy shopping gets on. Nobody else moves. What would most people expect {a} to do, and why?"),
    ("safety", "{a} smells gas in the kitchen when coming home from work. What should {a} do, and which actions should be avoided?"),
    ("animals", "{a}'s dog, normally calm, starts barking at the front door late at night even though nobody has knocked. What are some possible explanations, from ordinary to worrying?"),
    ("planning", "{a} is going on holiday for two weeks and has a fridge full of food, several houseplants and a goldfish. What should {a} arrange before leaving?"),
    ("social", "{a} receives a birthday present from an aunt: a knitted jumper in a colour {a} really dislikes. What is a kind and honest way to respond?"),
    ("physical", "{a} tries to cool a room on a hot night by opening the fridge door and leaving it open. Will this work? Explain what actually happens to the temperature of the room."),
    ("time", "{a} says, 'I will call you in the morning,' at 11 p.m. on Friday. {b} lives in a city eight hours ahead. What could go wrong, and how could they avoid confusion?"),
    ("home", "{a} has just painted the hallway and needs to leave the house for an hour. What precautions might {a} take, considering pets, children and the wet paint?"),
    ("social", "At a job interview, the interviewer mispronounces {a}'s name several times. Should {a} correct them, and if so, how?"),
    ("travel", "{a} arrives at the airport and discovers that the flight is delayed by five hours. Suggest what {a} might do with the time and whom {a} should contact."),
    ("food", "{a} is baking bread for the first time and the dough has not risen at all after two hours in a cold kitchen. What might have gone wrong, and what could {a} try?"),
    ("social", "{a} hears that a neighbour, {b}, has just come home from hospital after an operation and lives alone. What are some helpful things {a} could offer to do?"),
    ("physical", "{a} wants to hang a heavy mirror on a plasterboard wall using a single small nail. What is likely to happen, and what would be a better approach?"),
    ("planning", "{a} wants to run a lemonade stand on a street corner. List the things {a} needs to think about beyond making the lemonade, such as weather, location and pricing."),
    ("social", "In a meeting, {b} keeps interrupting {a} before {a} can finish a sentence. How might {a} respond in a way that is assertive but not rude?"),
    ("safety", "{a} is walking home at night and realises that the usual path through the park is completely unlit because of a power cut. What should {a} consider before deciding which way to go?"),
    ("physical", "{a} puts a sealed can of fizzy drink in the freezer to chill it quickly and then forgets about it for a day. What might {a} find, and why?"),
    ("home", "{a} returns from a week away and finds that the freezer was accidentally unplugged the whole time. What should {a} do with the food inside, and why?"),
    ("social", "{a}'s best friend, {b}, has been quieter than usual for several weeks and keeps cancelling plans. What might be going on, and how could {a} gently check in?"),
    ("planning", "{a} has three hours to clean the whole flat before visitors arrive. In what order should {a} tackle the tasks to be efficient, and why?"),
    ("animals", "{a} finds a baby bird on the ground under a tree in spring. It has feathers and is hopping about. What should {a} do, and what should {a} avoid?"),
    ("travel", "{a} is driving in a country where cars keep to the opposite side of the road from what {a} is used to. What situations are most likely to cause mistakes?"),
    ("food", "{a} wants to keep a pot of soup warm for guests arriving in two hours without burning it. What are some sensible options?"),
    ("social", "{a} accidentally sent a message complaining about the boss to the boss instead of to a friend. What should {a} do next?"),
    ("physical", "{a} notices that the tyres of a bicycle that has stood in a cold garage all winter feel soft. Why might this be, and what should {a} check before riding?"),
    ("time", "{a} needs to be at a concert at 7:30 p.m. Dinner takes an hour, the journey 35 minutes, and {a} wants to arrive 15 minutes early. What is the latest time {a} can start dinner?"),
    ("home", "The power goes out in {a}'s home on a winter evening and is expected to stay off until morning. What should {a} do to stay warm and safe?"),
    ("social", "{a} has promised to help {b} move house on Saturday, but on Friday evening {a} feels unwell with a fever. What should {a} do?"),
    ("planning", "{a} is taking a group of ten-year-olds to a busy city museum. What rules and arrangements would help keep everyone together and safe?"),
    ("physical", "{a} puts a wet wooden chopping board directly on a radiator to dry it quickly. What might happen to the board, and what is a better way to dry it?"),
    ("social", "{a} is at a friend's house for dinner and finds a hair in the food. What is the most polite way to deal with it?"),
    ("plants", "{a} moved a healthy potted plant from a sunny windowsill to a dark corner of the room. Over the next few weeks, what changes might {a} notice in the plant?"),
    ("physical", "{a} is struggling to get ketchup out of a nearly full glass bottle. Suggest two or three tricks that might help, and explain why each one works."),
    ("social", "{a} notices that a shop assistant has given back twenty too much in change. What should {a} do, and why does it matter even if nobody would ever notice?"),
    ("food", "{a} wants to take a packed lunch on a long train journey on a hot day, with no fridge available. Which foods are sensible choices, and which should {a} avoid?"),
    ("time", "{a} has been told to take a tablet every eight hours and took the first one at 7 a.m. When are the next two doses due, and how could {a} avoid missing the late one?"),
    ("physical", "{a} is sitting in a rowing boat on a small pond and drops a heavy iron anchor over the side. {b}, watching from the shore, wonders whether the water level of the pond rises, falls or stays the same. What do you think, and why?"),
    ("social", "{a} is the only person at a work lunch who does not drink alcohol, and colleagues keep offering wine. How can {a} decline politely without giving a long explanation?"),
    ("home", "{a}'s smoke alarm goes off every time someone makes toast. What is probably happening, and what should {a} do about it that still keeps the household safe?"),
    ("animals", "{a} is adopting a rescue dog that is nervous around loud noises and strangers. What could {a} do in the first few weeks to help the dog settle in?"),
    ("planning", "{a} has an exam at 9 a.m. tomorrow and tends to oversleep. What could {a} do tonight and tomorrow morning to be sure of arriving on time?"),
    ("physical", "{a} needs to carry five full mugs of tea from the kitchen to people sitting in the garden without spilling any. What is the most sensible way to do it?"),
    ("social", "{a} is visiting a country for the first time and knows nothing about local customs for tipping, greetings or clothing. How could {a} find out, and what is a safe way to behave in the meantime?"),
    ("safety", "{a} wants to go skating on a frozen lake that nobody else is using. What should {a} check, and whom could {a} ask, before stepping onto the ice?"),
]

COMMONSENSE_MC = [
    ("physical", "A glass of water is left in the freezer overnight. Which is most likely in the morning? (a) The water has boiled. (b) The water has turned to ice. (c) The glass is empty. (d) The water is warmer than before. Explain your choice."),
    ("social", "Your friend tells you they have just lost their job. Which response is most supportive? (a) 'At least you can sleep in now.' (b) 'That's really hard. Do you want to talk about it?' (c) 'I never liked that company anyway.' (d) Changing the subject. Explain why."),
    ("physical", "You want to keep a cup of coffee hot for as long as possible. Which container is best? (a) A thin paper cup. (b) An open glass. (c) A vacuum-insulated flask with a lid. (d) A metal bowl. Explain your reasoning."),
    ("time", "Which activity would most likely take the longest? (a) Boiling an egg. (b) Reading a 500-page novel. (c) Brushing your teeth. (d) Making a cup of tea. Explain briefly."),
    ("tools", "You need to tighten a loose screw on a cupboard hinge. Which tool do you need? (a) A hammer. (b) A screwdriver. (c) A saw. (d) A paintbrush. Explain why the others are unsuitable."),
    ("social", "You arrive at a party and realise you have forgotten the host's name. What is the most graceful option? (a) Avoid the host all evening. (b) Admit it warmly and ask again. (c) Call them by a wrong name. (d) Leave immediately. Explain your choice."),
    ("physical", "Which object would float in a bucket of water? (a) A steel key. (b) A wooden spoon. (c) A glass marble. (d) A stone. Explain what decides whether something floats."),
    ("safety", "A small fire starts in a frying pan on the stove. What should you do first? (a) Throw water on it. (b) Carry the pan outside. (c) Turn off the heat and cover the pan with a lid or damp towel. (d) Open all the windows. Explain."),
    ("plants", "A plant kept in a dark cupboard for two weeks will most likely: (a) grow faster and greener. (b) become pale and spindly. (c) produce more flowers. (d) stay exactly the same. Explain why."),
    ("social", "A colleague has spinach stuck in their teeth just before a big presentation. What is the kindest thing to do? (a) Say nothing. (b) Tell them quietly in private. (c) Point it out in front of everyone. (d) Laugh about it later. Explain."),
    ("planning", "You are going on a two-hour hike on a hot, sunny day. Which item is most important to bring? (a) A heavy winter coat. (b) Plenty of water. (c) A laptop. (d) An umbrella for rain. Explain your choice."),
    ("physical", "Which would be easiest to cut with ordinary scissors? (a) A sheet of paper. (b) A metal spoon. (c) A wooden plank. (d) A glass plate. Explain."),
    ("food", "You bought fresh fish for dinner tomorrow. Where should you store it tonight? (a) On the kitchen counter. (b) In the fridge. (c) In a sunny window. (d) In a cupboard. Explain why."),
    ("social", "At a cinema, the person behind you keeps kicking your seat. What is the most reasonable first step? (a) Kick their seat back. (b) Politely ask them to stop. (c) Shout at them. (d) Leave the cinema. Explain."),
    ("time", "It is 11:50 p.m. on 31 December. What will happen in ten minutes? (a) It will be noon. (b) A new year will begin. (c) It will be 1 December. (d) Nothing special. Explain."),
    ("physical", "You leave a metal spoon and a wooden spoon outside on a freezing night. In the morning, which feels colder to touch, and why? (a) The metal spoon. (b) The wooden spoon. (c) They feel the same. (d) Neither is cold."),
    ("animals", "A cat is sitting by its empty food bowl and meowing loudly at its owner. What is it most likely trying to say? (a) It wants to go to sleep. (b) It is hungry. (c) It wants a bath. (d) It is bored of the bowl's colour. Explain."),
    ("travel", "You are driving and the fuel warning light comes on. What should you do? (a) Ignore it for a week. (b) Plan to refuel at the next convenient petrol station. (c) Stop the car in the middle of the road. (d) Drive faster. Explain."),
    ("social", "A classmate who is new to the school is eating lunch alone. What would be a friendly thing to do? (a) Ignore them. (b) Invite them to join your table. (c) Take a photo of them. (d) Tell everyone they are alone. Explain."),
    ("physical", "Which is the best way to cool a very hot bowl of soup quickly? (a) Cover it with a thick blanket. (b) Stir it and spread it into a wider, shallow dish. (c) Put it in the oven. (d) Add more hot soup. Explain."),
    ("home", "Your smoke alarm starts beeping once every minute, but there is no smoke. What is the most likely cause? (a) A fire in the next town. (b) The battery is running low. (c) The alarm is hungry. (d) The house is too tidy. Explain."),
    ("planning", "You need to buy a present for a friend whose birthday is tomorrow, and the shops are closed. What is the most practical option? (a) Forget about it. (b) Make a card or a small handmade gift. (c) Give them your old toothbrush. (d) Pretend it is not their birthday. Explain."),
    ("physical", "You blow up a balloon and rub it on your jumper. When you hold it near your hair, what happens? (a) Nothing. (b) Your hair is pulled towards the balloon. (c) The balloon pops immediately. (d) The balloon gets heavier. Explain."),
    ("social", "You receive an invitation that says 'Dress code: formal'. Which outfit fits best? (a) Gym shorts and a T-shirt. (b) A suit or an elegant dress. (c) Pyjamas. (d) A swimming costume. Explain."),
    ("time", "A recipe says to let bread dough rise for one hour. You started at 2:40 p.m. When will it be ready? (a) 3:00 p.m. (b) 3:40 p.m. (c) 2:40 a.m. (d) 4:40 p.m. Explain."),
    ("physical", "Which material would make the warmest winter hat? (a) Wool. (b) Thin cotton. (c) Paper. (d) Aluminium foil. Explain your choice."),
    ("hygiene", "After cutting raw chicken on a chopping board, what should you do before cutting salad vegetables on it? (a) Nothing. (b) Wipe it with a dry cloth. (c) Wash it thoroughly with hot soapy water, or use a different board. (d) Turn it upside down. Explain why."),
    ("social", "Your neighbour's parcel was delivered to your door by mistake. What should you do? (a) Open it. (b) Keep it. (c) Take it to your neighbour or leave them a note. (d) Throw it away. Explain."),
    ("physical", "You push a toy car with the same force across a smooth wooden floor and across a thick rug. Where will it roll farther? (a) On the rug. (b) On the wooden floor. (c) The same distance on both. (d) It will not move on either. Explain."),
    ("social", "You are in a lift and someone is hurrying towards it carrying heavy bags. What is the polite thing to do? (a) Press the close button. (b) Hold the door open. (c) Pretend not to see them. (d) Get out of the lift. Explain."),
    ("food", "Which of these is most likely to spoil first if left out of the fridge on a warm day? (a) A packet of dry pasta. (b) A bowl of cooked rice. (c) A jar of honey. (d) An unopened tin of beans. Explain."),
    ("time", "Which of these could you realistically do in one minute? (a) Run a marathon. (b) Write your name. (c) Read a whole novel. (d) Grow a tree from a seed. Explain."),
    ("physical", "A heavy box and a light box are sitting on the same floor. Which needs a bigger push to start moving? (a) The heavy box. (b) The light box. (c) Both need the same push. (d) Neither can be moved. Explain."),
    ("planning", "You have five minutes before leaving for the airport. What should you check first? (a) Whether the plants need water. (b) That you have your passport and tickets. (c) What is on television. (d) Whether your socks match. Explain."),
    ("social", "A friend shows you a painting they made and asks what you think, but you do not like it much. What is the most considerate reply? (a) 'It's terrible.' (b) Mention something you genuinely like and ask about how they made it. (c) Say nothing and walk away. (d) Laugh. Explain."),
    ("physical", "Why does a spinning top eventually fall over? (a) It gets tired. (b) Friction gradually slows its spin. (c) Gravity switches off. (d) The air gets heavier. Explain in your own words."),
    ("safety", "You see a 'wet floor' sign in a supermarket aisle. What should you do? (a) Run across the wet area. (b) Walk carefully around it or use another aisle. (c) Move the sign somewhere else. (d) Ignore it. Explain."),
    ("home", "Your bathroom mirror fogs up after every shower. What is the best fix? (a) Only take cold showers. (b) Open a window or switch on the extractor fan. (c) Paint over the mirror. (d) Shower in the dark. Explain."),
]

COMMONSENSE_LONG = [
    ("social", "Mira has organised a surprise fortieth birthday party for her husband, Tom. Twenty guests are hiding in the living room, the lights are off, and a cake with candles is ready in the kitchen. At 7:55 p.m., five minutes before Tom is due home, Mira gets a text from him saying that his boss has asked him to stay late and he will not be back until ten. Several guests have young children with them and a long drive home, and the food is already on the table.",
     ["What options does Mira have, and what are the advantages and disadvantages of each? Which would you recommend?",
      "Describe how the different people in this situation (Mira, the guests with children, Tom) are likely to feel, and suggest what Mira could say to the guests."]),
    ("physical", "Sam is moving into a third-floor flat in an old building with a narrow, winding staircase and no lift. Among the things that need to go up are a double mattress, a large bookcase that does not come apart, a washing machine, twenty boxes of books and a glass-topped coffee table. Two friends have offered to help on Saturday morning, and the van has been hired for only four hours. It is forecast to rain in the afternoon.",
     ["In what order should they carry the items, and why? Think about weight, fragility, the rain and the time limit.",
      "Which items are likely to cause problems on the staircase, and what practical solutions could Sam consider for each one?"]),
    ("planning", "A primary school is planning its sports day for the last Friday of June on the school field. About 300 children aged five to eleven will take part, along with parents who want to watch. Last year, several children felt unwell in the heat, the parents' cars blocked the road outside, and the younger children got bored waiting for their events. The head teacher has asked the organising committee for a better plan.",
     ["Propose concrete changes that address each of last year's three problems, and explain why each change would help.",
      "What could still go wrong this year, even with a better plan? List the risks and a backup plan for each."]),
    ("social", "Daniel and his flatmate Lucy have shared a flat for a year. Lately, Lucy's boyfriend has been staying over four or five nights a week. He uses the kitchen and bathroom, eats food from the shared cupboard, and has started leaving his bicycle in the hallway. He does not pay any rent or bills. Daniel likes him but feels increasingly uncomfortable, and Lucy seems unaware that there is a problem.",
     ["How could Daniel raise the issue with Lucy in a way that is honest but unlikely to start an argument? Suggest what he might actually say.",
      "What would be a fair arrangement for everyone, and what should Daniel do if Lucy reacts badly?"]),
    ("physical", "Ana wants to grow tomatoes on the balcony of her city flat. The balcony faces north, gets strong wind because it is on the ninth floor, and has no outdoor tap. She has a budget for a few large pots, compost and young plants, and she goes away for ten days every August. Her neighbour on the floor below has already complained once about water dripping from her balcony.",
     ["What problems is Ana likely to face with this plan, and how could she solve each of them?",
      "Would you advise Ana to grow tomatoes at all, or something else? Explain your reasoning using the details given."]),
    ("social", "At a weekly team meeting, the manager, Greg, praises Priya for a report that was mostly written by her colleague Jonas, who was on holiday that week. Priya thanks Greg and does not mention Jonas. When Jonas returns and hears about it from another colleague, he is upset but says nothing. Two weeks later, the team is told that one person will be chosen to lead a new project.",
     ["What might each of the three people be thinking, and what are the possible consequences if nobody says anything?",
      "What should Jonas do now? Suggest two possible approaches and explain which is more likely to lead to a good outcome."]),
    ("safety", "A family of four is driving through a remote area in winter when snow begins to fall heavily. The sat-nav suggests a shortcut along a narrow mountain road that would save forty minutes. The car has half a tank of fuel, there is weak phone signal, and it will be dark in an hour. In the boot they have a few blankets, some water and a bag of snacks. The children are tired and want to get to the hotel.",
     ["Should they take the shortcut? Weigh up the risks and benefits using the details given, and make a recommendation.",
      "If the car did get stuck in the snow, what should the family do to stay safe until help arrives? Explain the reasons for each step."]),
    ("planning", "Kwame runs a small café that closes at 4 p.m. He has noticed that from 2 p.m. onwards the café is nearly empty, but he still pays two staff members, and he throws away about fifteen unsold sandwiches and pastries every day. At the same time, regular customers often complain that the café is too crowded between 8 and 9 a.m., and some leave without buying anything because the queue is too long.",
     ["Suggest several practical changes Kwame could make to reduce waste and costs in the afternoon, and explain the likely effect of each.",
      "How could Kwame handle the morning rush better? Consider staffing, layout and ordering, and point out any trade-offs."]),
    ("social", "Leila's grandmother is turning ninety and the family is planning a celebration. Leila's uncle wants a big party at a hotel with a hundred guests. Her mother thinks that would be too tiring and suggests a quiet lunch at home. The grandmother herself has said she 'doesn't want any fuss' but also mentioned that she would love to see her old friends from the choir, several of whom use wheelchairs.",
     ["What kind of celebration would best respect the grandmother's wishes? Explain your reasoning using the details in the situation.",
      "How could Leila help her uncle and her mother reach an agreement without either of them feeling ignored?"]),
    ("physical", "Jonas leaves a full two-litre plastic bottle of fizzy water in his car on a hot summer day. In the evening he opens it quickly while driving, and water sprays over the dashboard. The next week he leaves a sealed glass jar of homemade jam on the back seat, and a bar of chocolate and a pair of sunglasses on the dashboard. He also leaves a half-full aerosol can of deodorant in the glove box.",
     ["Explain why the water sprayed out, and predict what might happen to each of the other items left in the hot car.",
      "Which of the items Jonas left in the car is most dangerous, and why? Give him some simple rules for what not to leave in a car in summer."]),
    ("planning", "A group of six friends wants to go on holiday together for a week. Two of them can only travel in July, one is vegetarian, one is afraid of flying, two have young children, and their budgets range from very tight to comfortable. They have agreed that they want somewhere warm with things to do for both adults and children.",
     ["Suggest a type of holiday and destination that could work for everyone, explaining how it meets each person's constraint.",
      "What arrangements could the group make in advance to avoid arguments about money and activities during the trip?"]),
    ("social", "Tomasz is a quiet student who has just joined a new class halfway through the school year. In the first week, his classmates notice that he eats lunch alone, does not say much in lessons, and always leaves as soon as the bell rings. One student, Ella, tries talking to him, but he answers in single words. Some classmates have started to say that he is unfriendly.",
     ["What are some possible reasons for Tomasz's behaviour, and why might the classmates' judgement be unfair?",
      "What could Ella and the teacher do to help Tomasz settle in, without making him feel uncomfortable or singled out?"]),
    ("home", "The Okafor family's kitchen sink has been draining slowly for a week, and this morning it stopped draining altogether. The water smells unpleasant, and there is a gurgling sound from the bathroom sink when the washing machine empties. They have a plunger, a bottle of drain cleaner and a bucket, but no experience with plumbing, and a plumber cannot come for three days.",
     ["What might be causing the problem, given the clues described? Explain how each clue helps.",
      "What should the family try first, what should they avoid, and at what point should they stop and wait for the plumber?"]),
    ("social", "Hannah agreed to look after her neighbour's cat for a week while the neighbour was away. On the fourth day, the cat slipped out of the door and did not come back. Hannah searched the street, put up posters and checked with the local animal shelter, but the cat is still missing, and the neighbour returns in two days. Hannah has not told the neighbour yet, hoping the cat would come home first.",
     ["Should Hannah contact the neighbour now or wait until they come back? Explain the reasons on both sides and give your recommendation.",
      "Write what Hannah could say to the neighbour, and list what else she could still do to find the cat."]),
    ("physical", "A family wants to keep their house cool during a week-long heatwave without air conditioning. The house has large south-facing windows, a loft that gets very hot, ceiling fans in two rooms, and trees that shade the north side of the garden. Temperatures reach 35 degrees Celsius in the afternoon but fall to 18 degrees at night.",
     ["Using these details, suggest a daily routine for opening and closing windows, curtains and doors, and explain the physics behind each choice.",
      "Which rooms should the family use for sleeping and for spending the afternoon, and why?"]),
]


def build_commonsense(rng):
    b = Bucket("commonsense")
    for subject, text in COMMONSENSE_SHORT:
        b.add(subject, "low", text)
    for subject, template in COMMONSENSE_SCENARIOS:
        a, other = rng.sample(NAMES, 2)
        b.add(subject, "medium", template.format(a=a, b=other))
    for subject, text in COMMONSENSE_MC:
        b.add(subject, "medium", text)
    for subject, situation, questions in COMMONSENSE_LONG:
        for q in questions:
            b.add(subject, "high", f"{situation} {q}")
    return b


# ---------------------------------------------------------------------------
# dialogue
# ---------------------------------------------------------------------------

DIALOGUE_MESSAGES = [
    ("career", "I just got my first job offer but I'm not sure if the salary is fair."),
    ("pets", "My cat keeps scratching the sofa. Any ideas?"),
    ("family", "Can you help me plan a birthday surprise for my dad?"),
    ("emotional support", "I failed my driving test again today."),
    ("books", "What's a good book to read on a long flight?"),
    ("hobbies", "I can't decide between learning the guitar or the piano."),
    ("home", "My neighbour's dog barks all night and I'm exhausted."),
    ("work", "I think I'm getting a cold right before my big presentation."),
    ("fitness", "I want to start running but I get bored really quickly."),
    ("food", "Is it weird to eat cereal for dinner?"),
    ("relationships", "My sister and I had a fight and we haven't spoken for a week."),
    ("memory", "I keep forgetting people's names right after I meet them."),
    ("cooking", "What can I cook tonight with rice, a tin of beans and an onion?"),
    ("emotional support", "I'm moving abroad next month and I'm terrified."),
    ("programming", "My code works on my laptop but not on the server."),
    ("etiquette", "How do I politely decline a wedding invitation?"),
    ("pets", "I just adopted a rescue dog and he's very shy."),
    ("study", "I have three exams next week and no idea where to start."),
    ("plants", "The tips of my houseplant's leaves are turning brown."),
    ("relationships", "I want to surprise my partner with breakfast in bed. Any easy ideas?"),
    ("admin", "I got a parking ticket that I think is unfair."),
    ("hobbies", "Is forty too old to learn to swim?"),
    ("smalltalk", "I'm bored. Tell me something interesting."),
    ("work", "My manager keeps giving me urgent work at 5 p.m. on Fridays."),
    ("games", "I'm hosting a board game night. Which games work well for six people?"),
    ("work", "I accidentally sent an email to the wrong person."),
    ("writing", "I want to write a novel but I never finish anything."),
    ("pets", "What should I name my new goldfish?"),
    ("emotional support", "I'm nervous about giving a speech at my best friend's wedding."),
    ("technology", "My laptop has become really slow lately."),
]
DIALOGUE_MESSAGE_TEMPLATES = [
    "A user says: \"{m}\" Reply as a friendly, helpful assistant.",
    "Reply to this message from a friend: \"{m}\"",
    "How would you respond to someone who says \"{m}\"?",
    "Write a short, kind reply to: \"{m}\"",
]

DIALOGUE_STARTERS = [
    ("smalltalk", "Start a friendly conversation with a new colleague on their first day."),
    ("customer service", "Greet a customer who has just walked into your bookshop."),
    ("community", "Write a message welcoming a new member to an online gardening forum."),
    ("smalltalk", "How would you start a conversation with a stranger at a wedding?"),
    ("community", "Write a friendly first message to a new neighbour."),
    ("customer service", "Write a chatbot's greeting for a pizza delivery website."),
    ("smalltalk", "Start some small talk with a taxi driver on a rainy evening."),
    ("education", "Write the first message a tutor might send to a new student."),
    ("career", "How could you open a conversation at a networking event?"),
    ("language", "Write a friendly opening message to a new language-exchange partner."),
    ("hospitality", "Greet a guest checking in at a seaside hotel after a long journey."),
    ("family", "Start a chat with a shy child at a birthday party."),
    ("community", "Write a welcoming message for a new player joining a chess club."),
    ("family", "Open a conversation with your grandparent about their childhood."),
    ("customer service", "Write a chatbot greeting for a public library's website."),
    ("customer service", "Begin a phone call to book a table at a busy restaurant."),
    ("smalltalk", "Start a conversation with a classmate you have never spoken to."),
    ("customer service", "Write the first message of a support chat for a banking app."),
    ("travel", "How would you greet a tourist who looks lost at a train station?"),
    ("smalltalk", "Write an icebreaker question for the first meeting of a book club."),
]

# Short exchanges: alternating turns starting with the user, ending with the user.
DIALOGUE_SHORT_CONVERSATIONS = [
    ("travel", ["I'm going to Portugal in October. Is it still warm enough for the beach?",
                "In the south, around the Algarve, October is often still mild and sunny, though the weather is less reliable than in summer and the sea is cooler.",
                "Nice. What about Porto? I'd like to spend a few days there too."]),
    ("cooking", ["I want to bake bread but I don't have any yeast.",
                 "You could make soda bread, which rises with baking soda and buttermilk instead of yeast.",
                 "I don't have buttermilk either. Is there a substitute?"]),
    ("tech support", ["My laptop won't connect to the Wi-Fi, but my phone connects fine.",
                      "Let's start simple: have you tried switching the laptop's Wi-Fi off and on again, or restarting the laptop?",
                      "Yes, I've restarted it twice. Still nothing."]),
    ("study", ["I have a history essay due on Friday about the causes of the First World War.",
               "Great topic. Do you already have a thesis, or would you like help deciding which causes to focus on?",
               "I don't really have a thesis. I just know there were alliances and an assassination."]),
    ("fitness", ["I want to start doing push-ups but I can't even do one.",
                 "That's very common. You could start with push-ups against a wall or on your knees and build up gradually.",
                 "How many should I do each day, and how long until I can do a real one?"]),
    ("pets", ["We're thinking of getting a cat, but we both work full time.",
              "Many cats cope well with owners who work, especially if they have toys, places to climb and perhaps a companion.",
              "Would getting two cats be better than one?"]),
    ("finance", ["I've just received my first salary and I want to start saving.",
                 "Congratulations! A common first step is to build an emergency fund that covers a few months of essential costs.",
                 "How much of my salary should I put aside each month?"]),
    ("language", ["I'm learning Spanish and I keep mixing up 'ser' and 'estar'.",
                  "You're not alone! Broadly, 'ser' is used for lasting characteristics and 'estar' for states and locations.",
                  "But then why do people say 'está muerto'? Being dead is pretty permanent."]),
    ("gardening", ["My basil plant keeps wilting even though I water it every day.",
                   "Too much water can also cause wilting, because the roots can't get enough air. Does the pot have drainage holes?",
                   "Oh. No, it's a decorative pot without any holes."]),
    ("shopping", ["I need a present for my dad's 60th birthday. He likes fishing and old films.",
                  "How about a box set of classic films, or a good fishing accessory he wouldn't buy for himself?",
                  "He already owns most classic films. Anything more original?"]),
    ("career", ["I have a job interview tomorrow for a marketing assistant role.",
                "Exciting! Have you prepared answers to common questions, like why you want the role and an example of teamwork?",
                "Yes, but I'm worried they'll ask about my weaknesses. What should I say?"]),
    ("wellbeing", ["I've been having trouble falling asleep lately.",
                   "I'm sorry to hear that. Some people find it helps to keep a regular bedtime and avoid screens for an hour before bed.",
                   "I usually watch videos in bed to relax. Is that really a problem?"]),
    ("cooking", ["How long should I boil an egg to get a runny yolk?",
                 "For a medium egg lowered into boiling water, about six minutes usually gives a set white and a runny yolk.",
                 "And if the egg comes straight from the fridge?"]),
    ("travel", ["I have a ten-hour layover in Istanbul. Is it worth leaving the airport?",
                "Ten hours can be enough for a short visit, depending on the entry rules for your nationality and how long it takes to get into the city.",
                "I have a British passport. What exactly should I check before deciding?"]),
    ("programming", ["My Python script says 'IndentationError: unexpected indent'.",
                     "That usually means a line is indented more than Python expects, often because of mixed tabs and spaces or a stray space.",
                     "How do I find which line it is? The file is pretty long."]),
    ("relationships", ["My best friend forgot my birthday and I'm more hurt than I expected.",
                       "That's understandable. Birthdays can feel like a sign of how much we matter to people.",
                       "Should I tell her, or just let it go?"]),
    ("home", ["There's a musty smell in our basement.",
              "A musty smell often points to damp or mould. Have you noticed any wet patches, condensation or visible mould?",
              "There's some black stuff in one corner near the floor."]),
    ("music", ["I'm 35 and I want to learn the guitar. Is it too late?",
               "Not at all. Adults often progress quickly because they can practise with a clear purpose.",
               "Should I start with an acoustic or an electric guitar?"]),
    ("books", ["I loved a novel about a lonely lighthouse keeper. Can you recommend something similar?",
               "What did you enjoy most about it: the setting, the loneliness, the mystery or the writing style?",
               "Mainly the isolated setting and the slow, quiet pace."]),
    ("customer service", ["I was charged twice for my order.",
                          "I'm sorry about that. Could you give me your order number and the dates of the charges so I can look into it?",
                          "It's order 55120, and both charges were on 3 June."]),
    ("math", ["I don't understand why a negative times a negative is positive.",
              "One way to see it is through a pattern: 3 × -2 = -6, 2 × -2 = -4, 1 × -2 = -2, 0 × -2 = 0. Each step adds 2.",
              "Okay, so what comes next in the pattern, and why does that prove anything?"]),
    ("cooking", ["I'm hosting six people for dinner. One is vegan and one can't eat gluten.",
                 "A good approach is a main dish that suits everyone, such as a vegetable curry with rice.",
                 "Sounds good, but what can I make for dessert?"]),
    ("travel", ["Is it better to exchange money before I travel or when I arrive?",
                "It depends on the destination, but airport exchange counters often give poor rates. Many travellers use a card with low foreign fees instead.",
                "What about cash for small things like taxis and markets?"]),
    ("parenting", ["My four-year-old refuses to eat vegetables.",
                   "That's a very common phase. Repeated, low-pressure exposure often works better than insisting.",
                   "What does low-pressure exposure actually look like at dinner time?"]),
    ("environment", ["I want to cut down my household's plastic use but don't know where to start.",
                     "A good first step is to look at what fills your bin most often and tackle those items first.",
                     "It's mostly food packaging from the supermarket."]),
    ("cars", ["My car makes a squealing noise when I brake.",
              "Squealing brakes are often caused by worn brake pads, which may have a small metal tab that squeals when they get thin.",
              "Is it safe to keep driving until my service in two months?"]),
    ("writing", ["I'm writing a short story but my dialogue sounds stiff.",
                 "Try reading it aloud. Real people interrupt each other, use contractions and rarely say exactly what they mean.",
                 "Can you show me a before-and-after example?"]),
    ("productivity", ["I keep putting off a big report for work.",
                      "Breaking it into small, concrete tasks can help, like 'write the outline' rather than 'do the report'.",
                      "I've tried that, but I still end up scrolling on my phone instead."]),
    ("history", ["Why did the Titanic sink?",
                 "It struck an iceberg late on 14 April 1912, and the collision opened several of its forward compartments to the sea.",
                 "But wasn't it supposed to be unsinkable?"]),
    ("science", ["Why is the sea salty when rivers aren't?",
                 "Rivers carry small amounts of dissolved minerals from rocks into the sea. When seawater evaporates, the salt stays behind, so it builds up over time.",
                 "So are rivers a tiny bit salty too?"]),
    ("technology", ["Should I buy a laptop with 8 GB or 16 GB of RAM?",
                    "It depends on what you'll use it for. For browsing and documents 8 GB is often enough, but heavier work benefits from 16 GB.",
                    "I do some photo editing and keep lots of browser tabs open."]),
    ("events", ["I'm organising a picnic for my office, about twenty people.",
                "Fun! Do you have a place and date yet, and will people bring food or will it be catered?",
                "It's in a park next Saturday, and everyone's bringing something."]),
    ("emotional support", ["I've just moved to a new city and I don't know anyone.",
                           "That can feel lonely at first. Are there activities you enjoyed back home, like a sport or a hobby group?",
                           "I used to play in a five-a-side football team."]),
    ("chemistry", ["What's the difference between an atom and a molecule?",
                   "An atom is the smallest unit of an element, and a molecule is two or more atoms bonded together.",
                   "So is a single oxygen atom the same as the oxygen we breathe?"]),
    ("work", ["My colleague keeps taking credit for my ideas in meetings.",
              "That's frustrating. One approach is to share your ideas in writing before meetings, so there's a record of where they came from.",
              "Should I also talk to my manager about it?"]),
    ("finance", ["Is it a good idea to pay off my student loan early?",
                 "It depends on the interest rate and repayment terms of your loan, and on your other financial goals.",
                 "The interest rate is fairly low, and I have no other debts."]),
    ("pets", ["My dog pulls really hard on the lead during walks.",
              "Many dogs do. A common technique is to stop whenever the lead goes tight and carry on only when it's loose.",
              "I tried that, but then we barely reach the end of the street."]),
    ("travel", ["What should I pack for a week in Iceland in March?",
                "Layers are key: a warm base layer, a fleece and a waterproof, windproof jacket, plus sturdy boots.",
                "Do I need special shoes if I want to walk on a glacier?"]),
    ("diy", ["I want to paint my bedroom. Do I really need a primer?",
             "It depends on the surface. Bare plaster, patched areas or a big change from a dark colour to a light one usually benefit from a primer.",
             "The walls are dark green at the moment and I want white."]),
    ("cooking", ["My rice always comes out mushy.",
                 "That often comes from too much water or too much stirring. Rinsing the rice first also removes excess starch.",
                 "What ratio of water to rice should I use for basmati?"]),
    ("astronomy", ["I'd love to see the Milky Way with my own eyes.",
                   "You'll need a dark place far from city lights, a clear night without a bright Moon, and about twenty minutes for your eyes to adjust.",
                   "When is the best time of year to see it from Europe?"]),
    ("language", ["How long does it take to learn Japanese?",
                  "It varies a lot, but for an English speaker, reaching comfortable conversation usually takes a few years of regular study.",
                  "I only have twenty minutes a day. Is that even worth it?"]),
]

DIALOGUE_SHORT_INSTRUCTIONS = [
    "Write the assistant's next reply.",
    "Continue the conversation with the assistant's next turn, in no more than 80 words.",
    "Write the assistant's next reply in a warm, encouraging tone.",
    "What should the assistant say next? Make sure the reply answers the user's last message directly.",
    "Write the next assistant turn, ending with a question that helps the user move forward.",
]

DIALOGUE_ROLEPLAYS = [
    ("customer service", "a customer support agent for an internet provider", "My internet has been down since this morning and I work from home!", "in a calm, helpful way, and ask for the information you need"),
    ("library", "a librarian at a public library", "I'm looking for a book for my nine-year-old, who says all books are boring.", "and ask two or three questions to narrow down the choice"),
    ("hospitality", "a hotel receptionist", "Our room is right next to the lift and it's very noisy. Can we move?", "politely, without promising anything you cannot guarantee"),
    ("tourism", "a guide at a natural history museum", "Are the dinosaur skeletons real bones or copies?", "enthusiastically, in a way that suits a family with young children"),
    ("education", "a patient maths tutor", "I just don't get fractions. I never have.", "encouragingly, starting with a simple question to find out what the student already knows"),
    ("retail", "a mechanic in a bicycle shop", "My gears keep slipping when I ride uphill.", "and explain two likely causes in plain language"),
    ("travel", "a travel agent", "I want somewhere warm in February, not too far from London, with good food.", "suggesting two options and asking about the budget"),
    ("outdoors", "a park ranger at a lake", "Is it safe to swim in the lake today?", "and mention what the visitor should check and be careful about"),
    ("cooking", "a chef teaching a beginners' cooking class", "My onions always burn before they go soft.", "with practical tips the student can try straight away"),
    ("tech support", "an IT help-desk technician at a company", "I've forgotten my password and I have a presentation in ten minutes.", "quickly and clearly, while keeping security in mind"),
    ("banking", "a bank's customer service adviser", "I think someone has used my card without my permission.", "calmly, explaining the immediate steps"),
    ("career", "a university careers adviser", "I'm in my final year and I have no idea what job I want.", "encouragingly, suggesting two concrete first steps"),
    ("tourism", "a tour guide in Rome", "We only have one afternoon. What's the one thing we shouldn't miss?", "with a confident recommendation and a practical tip"),
    ("fitness", "a personal trainer at a gym", "I've been coming here for a month and I haven't lost any weight.", "supportively, asking questions before giving any advice"),
    ("travel", "an airline gate agent", "I've just missed my connecting flight because the first one was late.", "explaining what will happen next in a reassuring way"),
    ("retail", "an assistant in a bookshop", "I want a gift for someone who reads a lot, but I don't know what they've already read.", "with a few creative suggestions"),
    ("hospitality", "a waiter in a busy restaurant", "We've been waiting forty minutes for our main course.", "apologetically, offering a reasonable solution"),
    ("healthcare admin", "a receptionist at a doctor's surgery", "I need an appointment today, but your online system says there's nothing until next week.", "kindly, explaining the options without giving medical advice"),
    ("education", "a primary school teacher talking to a parent at the school gate", "My son says nobody plays with him at break time.", "with empathy and a clear plan"),
    ("customer service", "a customer service agent for an online clothes shop", "The jumper I ordered is much smaller than the size guide said.", "offering clear options for a return or an exchange"),
    ("housing", "a letting agent", "The heating in my flat has been broken for three days and it's freezing.", "taking the problem seriously and explaining the next steps"),
    ("art", "a guide in a modern art gallery", "I don't get modern art. Isn't this just a blue square?", "with humour and respect, helping the visitor look at the painting differently"),
    ("science", "an explainer at a science museum", "Why can't we feel the Earth spinning?", "in a way that a ten-year-old would understand"),
    ("sports", "a football coach for an under-12 team", "I missed the penalty and we lost. It's all my fault.", "kindly, in a way that helps the player learn from it"),
    ("gardening", "an assistant in a garden centre", "What can I plant in a shady corner that never gets direct sun?", "suggesting a few plants and asking about the soil"),
    ("transport", "a worker at a train station information desk", "The board says my train is cancelled. How do I get to Leeds now?", "calmly, with practical alternatives"),
    ("technology", "an assistant in a phone shop", "My phone battery runs out by lunchtime, even though the phone is only a year old.", "asking a couple of diagnostic questions and suggesting settings to check"),
    ("hospitality", "the owner of a campsite", "Our tent pole snapped in the wind last night.", "helpfully, offering practical options"),
    ("education", "a driving instructor", "I stalled three times at the roundabout and now I'm too nervous to carry on.", "calmly, helping the learner regain confidence"),
    ("pets", "a volunteer at an animal shelter", "We'd like to adopt a dog, but we live in a small flat.", "honestly, asking about their lifestyle before recommending anything"),
]

DIALOGUE_LONG_CONVERSATIONS = [
    ("travel", ["I'm planning a five-day trip to Scotland in May with my partner. We like hiking but also good food.",
                "That sounds lovely. Would you prefer to stay in one place, or move around and see different regions?",
                "Probably two bases. We'll have a car.",
                "A common combination is Edinburgh for a couple of days of food and history, then the Highlands, for example around Fort William or the Isle of Skye, for hiking.",
                "Skye sounds amazing, but I've heard it gets very crowded. Also, my partner has a bad knee, so long steep descents are a problem."]),
    ("tech support", ["My website loads really slowly on phones but fine on my laptop.",
                      "Is the site made with a website builder, or did you or a developer write it?",
                      "I used a website builder, and I uploaded lots of photos straight from my camera.",
                      "Large images are a very common cause. Photos straight from a camera can be several megabytes each.",
                      "Some of them are about 8 MB, and there are about forty on the home page.",
                      "That means the home page could be downloading over 300 MB on every visit, which is far too much for a mobile connection.",
                      "Wow. How do I fix that without losing quality? I'm a photographer, so the photos really matter."]),
    ("emotional support", ["I didn't get into the university I wanted. Everyone else in my class got their first choice.",
                           "I'm really sorry. That's a painful disappointment, especially when it feels like everyone around you is celebrating.",
                           "My parents say it doesn't matter, but it does to me. I worked so hard.",
                           "Your feelings make sense. When hard work doesn't lead to the result you hoped for, it can be very difficult to accept.",
                           "I got into my second choice. It's a good university, but I just don't feel excited about it."]),
    ("cooking", ["I'm making a cheese sauce for macaroni and it's gone grainy.",
                 "That usually happens when the sauce gets too hot after the cheese goes in, and the proteins clump together.",
                 "I had it bubbling away when I added the cheese.",
                 "That's probably the cause. Next time, take the pan off the heat before adding the cheese and stir it in a little at a time.",
                 "Okay, but can I rescue this batch? My guests arrive in twenty minutes."]),
    ("study", ["I have a chemistry exam in two weeks and I'm really behind.",
               "Let's make a plan. Which topics does the exam cover, and which feel weakest?",
               "Atomic structure, bonding, moles and reaction rates. Moles are a disaster; the rest is okay-ish.",
               "Then it makes sense to give moles the most time, with short reviews of the other topics so they stay fresh.",
               "I can study about two hours on weekdays. I work on Saturdays, so only Sundays are completely free."]),
    ("customer service", ["I ordered a sofa six weeks ago and it still hasn't arrived.",
                          "I'm sorry about the delay. Could you give me your order number so I can check the status?",
                          "It's SF-20931. I was told four weeks when I ordered.",
                          "Thank you. I can see the sofa is delayed because the fabric you chose is out of stock at our supplier. The new estimated delivery date is in three weeks.",
                          "Three more weeks? I've already got rid of my old sofa, and nobody told me about any of this."]),
    ("fitness", ["I've started running three times a week, but my shins hurt after every run.",
                 "Shin pain is common in new runners, often because distance is increased too quickly. How long have you been running?",
                 "About three weeks. I went from nothing to 5 km each time.",
                 "That's quite a big jump. Muscles, tendons and bones need time to adapt to running.",
                 "But I've signed up for a 10 km race in two months, and I don't want to fall behind."]),
    ("programming", ["My JavaScript function that adds up prices returns '0102030' instead of 60.",
                     "That suggests the prices are strings rather than numbers, so the plus sign is joining them together.",
                     "They come from input fields on a form.",
                     "Yes, the value of an input element is always a string, even when the user types digits.",
                     "So how do I convert them? And what happens if someone types 'abc' or leaves a field empty?"]),
    ("career", ["I've been offered a job, but the salary is lower than I hoped.",
                "Congratulations on the offer. Do you know the typical pay range for this role in your area?",
                "Roughly. Similar jobs advertise about ten per cent more than they offered me.",
                "That gives you a reasonable basis for asking. Many employers expect some negotiation.",
                "I'm scared they'll withdraw the offer if I ask. I really want this job."]),
    ("travel", ["My flight to Madrid has just been cancelled and the airline's app isn't working.",
                "That's stressful. Are you at the airport now, or still at home?",
                "At the airport. There's a huge queue at the airline desk.",
                "While you wait in the queue, it can help to phone the airline at the same time, since phone agents can sometimes rebook you faster.",
                "I tried, and there's a 90-minute wait. I have an important meeting in Madrid tomorrow at 11."]),
    ("gardening", ["I want to start a vegetable garden but I've never grown anything.",
                   "Great idea! How much space do you have, and how much sun does it get?",
                   "A small back garden, maybe four metres by three, sunny in the afternoon.",
                   "That's plenty for a beginner. Raised beds or large containers can make it easier to manage.",
                   "What should I plant first? I'd like to eat something this summer, and it's April now."]),
    ("parenting", ["My 14-year-old spends every evening on his phone and barely talks to us.",
                   "That's a common worry with teenagers. Has something changed recently, or has it built up gradually?",
                   "Gradually, over about a year. When I try to take the phone away we just end up shouting.",
                   "Confrontations like that often make things worse. Some families find it helps to agree rules together rather than impose them.",
                   "How would I even start that conversation without it turning into another argument?"]),
    ("housing", ["We're about to make an offer on our first house.",
                 "Exciting! Have you had a survey done yet, or is that the next step?",
                 "Not yet. The house is a hundred years old, and the estate agent says it's in great condition.",
                 "For an older property, a detailed survey is usually worth it, because problems like damp or roof damage can be expensive to fix.",
                 "The survey costs quite a lot and we've already stretched our budget. Is it really necessary if the agent says it's fine?"]),
    ("language", ["Can we practise French? I'm a beginner.",
                  "Bien sûr ! Let's start simply. Comment tu t'appelles ?",
                  "Je m'appelle Sam. Et toi ?",
                  "Je m'appelle Claude. Tu habites où, Sam ?",
                  "J'habite à Manchester. Je suis... how do I say that I'm a nurse? And did I make any mistakes so far?"]),
    ("writing", ["Here's the opening line of my novel: 'It was a dark and stormy night, and Jane was sad.' What do you think?",
                 "It's a clear start, but 'a dark and stormy night' is a very well-known cliché, and 'Jane was sad' tells us her feeling instead of showing it.",
                 "Okay, that's fair. How can I show that she's sad?",
                 "You could show it through what she does, what she notices, or how she speaks to someone.",
                 "She's sad because her brother has left home and won't tell her why. Can you help me rewrite the line?"]),
    ("moving", ["I've accepted a job in Berlin and I move in six weeks. I don't speak any German.",
                "Congratulations! Is your workplace English-speaking, or will you need German at work?",
                "Work is in English, but I want to be able to live normally: shopping, talking to neighbours, that kind of thing.",
                "Six weeks is enough to learn a useful set of everyday phrases, and you can keep learning once you arrive.",
                "What else should I sort out before I go? I feel like I'm forgetting something important."]),
    ("science", ["My daughter asked me why the sky is blue and I didn't know what to say.",
                 "It's a great question. Sunlight contains all the colours, and when it passes through the air, blue light is scattered around the sky much more than red light.",
                 "Okay, but then why is the sunset red?",
                 "At sunset, sunlight travels through much more air to reach us, so most of the blue is scattered away before it arrives, leaving the reds and oranges.",
                 "She's six. How can I explain all that in a way she'll understand? Maybe with a simple experiment?"]),
    ("data", ["Our sales report says we sold 1,200 items last month, but the warehouse says 950.",
              "A gap like that often comes from how the report counts things. Does it include returns or cancelled orders?",
              "I'm not sure. The report was written by someone who has since left.",
              "Then it's worth checking the query behind it. Do you have access to it?",
              "Yes. It joins the orders table to the order_items table and sums the quantity column. There's no filter on the order status."]),
    ("pets", ["My cat has started drinking much more water than usual.",
              "Increased thirst in cats can have several causes, some of which need a vet's attention. How old is your cat?",
              "She's thirteen.",
              "In older cats, increased thirst can be a sign of conditions such as kidney disease or diabetes, so it's a good idea to get her checked.",
              "She seems fine otherwise; she's eating well and playing. Can it wait a month? The vet is expensive."]),
    ("events", ["I'm organising a surprise party for my sister's 30th birthday.",
                "How lovely! How many people are you thinking of inviting, and do you have a place in mind?",
                "About 25 people. I thought of my flat, but it's quite small.",
                "Twenty-five people could be a squeeze in a small flat. Some pubs and restaurants have private rooms that can be booked if guests buy food and drinks.",
                "That's a good idea. But how do I keep it secret? She sometimes uses my laptop and we share a calendar."]),
    ("energy", ["I want to make my house more energy efficient but I have a limited budget.",
                "Good plan. The best first steps depend on the house. How old is it, and how is it heated?",
                "It's from the 1970s, with a gas boiler and single-glazed windows in some rooms.",
                "For a house of that age, loft insulation, draught-proofing and better heating controls are often among the cheapest improvements with the biggest effect.",
                "The loft already has some insulation, but I don't know how thick it is. Should I replace the windows first?"]),
    ("education", ["My teacher says we can't use AI to write our essays. That seems unfair.",
                   "I can see why that feels frustrating. What's the essay about, and what would you want to use AI for?",
                   "It's about the causes of the Industrial Revolution. I just want it to write a first draft that I can edit.",
                   "Teachers often set essays so that students practise organising their own thinking, which a generated draft would skip.",
                   "But in real jobs people use AI all the time. Why should school be any different?"]),
]

DIALOGUE_LONG_INSTRUCTIONS = [
    "Write the assistant's next reply.",
    "Write the assistant's next reply. Acknowledge what the user has said so far and give specific, practical advice.",
    "Continue the conversation with the assistant's next turn, keeping it under 120 words.",
    "Summarise the conversation so far in two sentences, then write the assistant's next reply.",
    "Write the assistant's next reply, making sure it addresses the user's latest concern directly and ends with a helpful question.",
]

DIALOGUE_LONG_ROLEPLAYS = [
    ("customer service", "You are a customer-support assistant for GreenRide, a company that rents electric scooters. Company policy: rides that ended early because of a scooter fault are refunded; rides cut short by the user's own choice are not; an account credit can be offered instead of a refund if the customer agrees; and staff must never share other customers' data. A customer writes: 'My scooter stopped working halfway through my ride yesterday, the app charged me for 40 minutes, and I had to walk the rest of the way in the rain. I want my money back, and I want to know who used the scooter before me.' Write your reply."),
    ("library", "You are the virtual assistant of Hollowbrook Library. You know the following: the library is open Monday to Friday from 9:00 to 19:00 and on Saturday from 10:00 to 16:00, and is closed on Sundays; members can borrow up to 12 items for three weeks; loans can be renewed twice online unless another member has reserved the item; late fees were abolished last year; and children's story time is on Wednesdays at 10:30. A member writes: 'Hi, can I come in on Sunday to return my books, and will I be fined? They were due last Friday. Also, can I renew the one I haven't finished?' Reply helpfully, using only these facts."),
    ("cooking", "You are a friendly cooking assistant on a recipe website. The user is following a recipe for a lemon drizzle loaf cake that serves eight and needs 225 g butter, 225 g caster sugar, 4 eggs, 225 g self-raising flour and the zest of one lemon, baked at 180 degrees Celsius for 45 to 50 minutes. The user writes: 'I only have 3 eggs and plain flour, and my oven runs hot. Can I still make this today? Also, I'd like it a bit less sweet.' Answer each of their questions clearly."),
    ("banking", "You are a support agent for a mobile banking app. Rules: never ask for a full card number, PIN or password; you may ask for the last four digits of the card; a lost card can be frozen instantly in the app under Cards > Freeze; a replacement card takes five working days to arrive; and disputed transactions must be reported within 60 days. A customer writes in a panic: 'I lost my wallet on the bus an hour ago. There's a payment I don't recognise for 49.99 from this morning. What do I do? My PIN is 4821 if that helps.' Write your reply."),
    ("hospitality", "You are the assistant at a hostel reception in Lisbon, chatting with a guest through the hostel's messaging app. You know that breakfast is served from 7:30 to 10:30, checkout is at 11:00, luggage can be stored free of charge until 20:00 on the day of departure, late checkout costs 10 euros per hour, and the metro line to the airport is a ten-minute walk away. A guest writes: 'My flight isn't until 22:00 tomorrow. What's the cheapest way to keep my room or my bags until I leave, and how do I get to the airport?' Write your reply."),
    ("education", "You are a study-buddy chatbot for secondary-school students. You should help students think rather than simply giving homework answers, ask guiding questions, and be encouraging. A student writes: 'I need to answer this for homework: a train travels 180 km in 2 hours and 15 minutes. What is its average speed in km/h? I did 180 divided by 2.15 and got 83.7, but the answer sheet says 80. The answer sheet must be wrong.' Write your reply."),
    ("theatre", "You are an assistant for a small theatre's box office. Tonight's show starts at 19:30 and doors open at 18:45; latecomers are admitted only at the interval, at around 20:40; tickets can be exchanged for another date up to 24 hours before the show for a fee of 2 pounds; and the wheelchair space in row A must be booked in advance. A customer writes at 17:00: 'My train is delayed and I'll probably arrive around 19:50. Can I still get in? If not, can I swap my tickets for Saturday? My mum uses a wheelchair, if that matters.' Write your reply."),
    ("language", "You are a patient, encouraging tutor helping an adult learner improve their written English. The learner sends this paragraph: 'Yesterday I go to the doctor because my back is hurting since two weeks. The doctor say me that I must to do exercises every days and not sitting too long in the computer.' They add: 'Please correct my mistakes and explain them simply. I want to learn, not only get the right text.' Write your reply."),
    ("recycling", "You are a virtual assistant for a city's recycling service. You know that paper, cardboard, cans and plastic bottles go in the blue bin; glass bottles and jars go in the green box; food waste goes in the brown caddy; batteries must be taken to a collection point such as a supermarket; broken drinking glasses and window glass go in general waste, wrapped safely; and collections happen every Tuesday, except after a Monday public holiday, when they move to Wednesday. A resident writes: 'Where do I put a pizza box with cheese stuck to it, an old phone battery and a broken drinking glass? And next Monday is a holiday, does that change my collection?' Write your reply."),
    ("cooking", "You are an assistant that helps users plan meals. Earlier in the conversation, the user told you that they are vegetarian, allergic to peanuts, cooking for two, and have about 30 minutes on weeknights. They now write: 'I've got half a bag of spinach, a tin of chickpeas, some feta, rice and a couple of sad-looking tomatoes. What can I make tonight, and what should I buy so I can make a different dinner tomorrow with the leftovers?' Write your reply."),
]


def render_turns(turns):
    parts = []
    for i, turn in enumerate(turns):
        speaker = "User" if i % 2 == 0 else "Assistant"
        parts.append(f"{speaker}: {turn}")
    return " ".join(parts)


def build_dialogue(rng):
    b = Bucket("dialogue")
    for subject, m in DIALOGUE_MESSAGES:
        b.add(subject, "medium", rng.choice(DIALOGUE_MESSAGE_TEMPLATES).format(m=m))
    for subject, text in DIALOGUE_STARTERS:
        b.add(subject, "low", text)
    for subject, turns in DIALOGUE_SHORT_CONVERSATIONS:
        assert len(turns) % 2 == 1
        convo = render_turns(turns)
        for k in rng.sample(range(len(DIALOGUE_SHORT_INSTRUCTIONS)), 2):
            b.add(subject, "high", f"{convo} {DIALOGUE_SHORT_INSTRUCTIONS[k]}")
    for subject, role, msg, how in DIALOGUE_ROLEPLAYS:
        b.add(subject, "medium", f"You are {role}. Someone says to you: \"{msg}\" Respond in character, {how}.")
    for subject, turns in DIALOGUE_LONG_CONVERSATIONS:
        assert len(turns) % 2 == 1
        convo = render_turns(turns)
        for k in rng.sample(range(len(DIALOGUE_LONG_INSTRUCTIONS)), 2):
            b.add(subject, "high", f"{convo} {DIALOGUE_LONG_INSTRUCTIONS[k]}")
    for subject, text in DIALOGUE_LONG_ROLEPLAYS:
        b.add(subject, "high", text)
    return b


# ---------------------------------------------------------------------------
# assembly
# ---------------------------------------------------------------------------

BUILDERS = {
    "knowledge": build_knowledge,
    "math": build_math,
    "programming": build_programming,
    "creative": build_creative,
    "instruction": build_instruction,
    "reading": build_reading,
    "commonsense": build_commonsense,
    "dialogue": build_dialogue,
    "long": build_long,
}

MIN_PER_CATEGORY = 200
MIN_TOTAL = 1600


def length_class(text):
    n = len(text.split())
    if n < 20:
        return "short"
    if n <= 80:
        return "medium"
    return "long"


def main():
    rows = []
    for index, category in enumerate(CATEGORIES):
        bucket = BUILDERS[category](rng_for(index))
        rows.extend(bucket.rows)

    # Checks.
    texts = [r[0] for r in rows]
    assert len(texts) == len(set(texts)), "duplicate prompt texts"
    assert len(rows) >= MIN_TOTAL, len(rows)
    for category in CATEGORIES:
        cat_rows = [r for r in rows if r[1] == category]
        assert len(cat_rows) >= min(MIN_PER_CATEGORY, LONG_COUNT), (category, len(cat_rows))
        assert len({r[2] for r in cat_rows}) >= 5, category
        # Every long prompt depends on its passages.
        assert len({r[3] for r in cat_rows}) >= (1 if category == "long" else 2), category
    for text, category, subject, dep in rows:
        assert category in CATEGORIES and dep in DEPENDENCY_LEVELS
        assert "\r" not in text and text == text.strip()

    # The rows of the first eight categories keep the order they had before the long category
    # existed; the long rows go in at seeded positions.
    long_rows = [r for r in rows if r[1] == "long"]
    rows = [r for r in rows if r[1] != "long"]
    random.Random(SEED).shuffle(rows)
    place = random.Random(SEED + 1)
    for r in long_rows:
        rows.insert(place.randrange(len(rows) + 1), r)

    with open(OUT_PATH, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(["prompt", "category", "subject", "context_dependency"])
        writer.writerows(rows)

    # Report.
    print(f"wrote {len(rows)} rows to {os.path.relpath(OUT_PATH)}")
    header = f"{'category':<12} {'rows':>5} {'short':>6} {'medium':>7} {'long':>5}   {'low':>4} {'med':>4} {'high':>5}  {'subjects':>8}  {'words min/median/max':>20}"
    print(header)
    totals = {"short": 0, "medium": 0, "long": 0}
    for category in CATEGORIES:
        cat_rows = [r for r in rows if r[1] == category]
        lengths = {"short": 0, "medium": 0, "long": 0}
        deps = {d: 0 for d in DEPENDENCY_LEVELS}
        words = sorted(len(r[0].split()) for r in cat_rows)
        for r in cat_rows:
            lengths[length_class(r[0])] += 1
            deps[r[3]] += 1
        for k in totals:
            totals[k] += lengths[k]
        n_subjects = len({r[2] for r in cat_rows})
        spread = f"{words[0]}/{words[len(words) // 2]}/{words[-1]}"
        print(f"{category:<12} {len(cat_rows):>5} {lengths['short']:>6} {lengths['medium']:>7} {lengths['long']:>5}   "
              f"{deps['low']:>4} {deps['medium']:>4} {deps['high']:>5}  {n_subjects:>8}  {spread:>20}")
    n = len(rows)
    print(f"{'total':<12} {n:>5} {totals['short']:>6} {totals['medium']:>7} {totals['long']:>5}")
    print("length share: " + ", ".join(
        f"{k} {100 * v / n:.1f}%" for k, v in totals.items()) + "  (short <20 words, medium 20-80, long >80)")


if __name__ == "__main__":
    main()
