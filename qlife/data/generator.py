"""Built-in seeded corpus: the embedded default data of stage 1 (curate), with ground truth.

`generate_corpus(seed, ...)` returns a `GeneratedCorpus`: short English news-style documents over 4–6
labelled topics (balanced, or the last one a minority class: `minority_frac`), built from sentence templates,
topic vocabularies and a shared general vocabulary, with planted exact duplicates (case/whitespace/punctuation-
spacing changes only), planted near duplicates (paraphrase-level edits: synonyms, filler words, moved phrases,
sentence order) and two live windows, one drawn like the corpus and one drifted (topic mix and vocabulary).
The planted copy -> original id maps and the drift flags are the ground truth that dedup recall and drift
detection are scored against.
Same seed, same arguments -> identical output; ids are positional ("doc-000123", "live-001-0042").
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from qlife.data.text import normalize_text


def _v(s: str) -> list[str]:
    return [w.strip() for w in s.split("|")]


# Per topic: a(gent), v(erb, past), o(bject), e(vent), r(esult clause), j (adjective), u (noun),
# d (drift sub-topic terms, only in the drifted live window).
TOPICS: dict[str, dict[str, list[str]]] = {
    "sports": {
        "a": _v("the head coach|the veteran striker|the team captain|the young goalkeeper|the home side|"
                "the visiting team|the club owner|the league commissioner|the star forward|the rookie pitcher|"
                "the defending champion|the assistant coach|the national squad|the tennis star|"
                "the marathon runner|the referee|the team manager|the new signing"),
        "v": _v("signed|defeated|celebrated|criticised|appealed|clinched|extended|missed|praised|rejected|"
                "secured|dropped|questioned|defended|won|lost"),
        "o": _v("a two-year contract|the league title|the penalty decision|a late equaliser|the transfer fee|"
                "the relegation battle|the home crowd|the training schedule|the playoff spot|"
                "the championship trophy|a hamstring injury|the offside rule|the new stadium|"
                "the opening fixture|the final whistle|the defensive record|a shock upset|the scoring record|"
                "the season tickets|the youth academy"),
        "e": _v("the derby|the cup final|the second half|the away game|the season opener|the qualifying round|"
                "the charity match|the penalty shootout|the championship race|the training camp|"
                "the semi-final|the relay race"),
        "r": _v("ended in a narrow win|drew a record crowd|went to extra time|finished in a goalless draw|"
                "was delayed by rain|turned into a rout|sparked a heated debate among fans|"
                "left the title race wide open|ended the unbeaten run|produced a late comeback"),
        "j": _v("dramatic|decisive|tense|physical|disappointing|thrilling|historic|controversial|scrappy|"
                "remarkable"),
        "u": _v("match|season|comeback|performance|transfer|victory|tournament|rivalry|defence|lineup"),
        "d": _v("the esports roster|the streaming league|the battle royale final|the gaming chair sponsor|"
                "the ranked ladder|the clutch play|the speedrun record|the fantasy draft|the loot box rules|"
                "the VR arena|the pro gamer|the Valorant qualifier|the controller meta|the Twitch stream"),
    },
    "science": {
        "a": _v("the research team|the lead author|the physicists|the biologists|the space agency|"
                "the university lab|the astronomers|the chemists|the field researchers|the climate scientists|"
                "the geologists|the principal investigator|the graduate students|the observatory staff|"
                "the genetics group|the marine biologists"),
        "v": _v("published|measured|observed|confirmed|simulated|sequenced|detected|analysed|replicated|"
                "calibrated|mapped|tested|challenged|proposed"),
        "o": _v("a new particle|the genome of a rare orchid|the ocean temperature data|a distant exoplanet|"
                "the fossil record|the telescope images|the quantum experiment|the enzyme structure|"
                "a sample of lunar soil|the ice core data|the gravitational waves|the crystal lattice|"
                "the migration patterns|the laboratory mice|the peer review process|the carbon isotopes|"
                "a dark matter signal|the microscope data|the volcanic ash samples|the neutrino detector"),
        "e": _v("the experiment|the field season|the lunar mission|the satellite launch|"
                "the conference session|the drilling expedition|the sequencing run|the particle collision|"
                "the eclipse|the survey"),
        "r": _v("produced unexpected results|confirmed the earlier theory|raised new questions|"
                "was published in a leading journal|failed to replicate the effect|"
                "revealed a surprising pattern|was funded for another year|ran into calibration problems|"
                "drew criticism from rival labs|doubled the previous estimate"),
        "j": _v("surprising|rigorous|preliminary|ambitious|peer reviewed|landmark|controversial|precise|"
                "novel|tentative"),
        "u": _v("study|finding|hypothesis|measurement|discovery|experiment|dataset|model|theory|paper"),
        "d": _v("the large language model|the AI chatbot|the foundation model|the GPU cluster|"
                "the prompt engineering work|the benchmark leaderboard|the model weights|the AlphaFold predictions|"
                "the synthetic data|the transformer architecture|the hallucination problem|"
                "the open weights release|the token budget|the neural network"),
    },
    "business": {
        "a": _v("the chief executive|the board of directors|the retail chain|the investment bank|"
                "the startup founders|the shareholders|the central bank|the hedge fund|the finance director|"
                "the supermarket group|the airline|the carmaker|the trade union|the private equity firm|"
                "the analysts|the sales team"),
        "v": _v("announced|acquired|reported|cut|raised|approved|delayed|launched|restructured|sold|forecast|"
                "negotiated|blocked|lowered|doubled"),
        "o": _v("quarterly profits|the merger deal|a hiring freeze|the dividend payout|the share price|"
                "the annual revenue|a new store format|the interest rate|the supply contract|the bond issue|"
                "the cost cutting plan|the market share|the takeover bid|the pricing strategy|"
                "the factory expansion|the pension fund|the export orders|the quarterly guidance|"
                "the stock listing|the holiday sales"),
        "e": _v("the earnings call|the annual meeting|the trading session|the product launch|the board vote|"
                "the audit|the funding round|the price war|the strike|the stock market rally"),
        "r": _v("beat analyst expectations|sent the shares lower|lifted investor confidence|"
                "triggered a sell off|ended without a deal|added billions in market value|"
                "raised fears of job losses|pushed the stock to a record high|left the outlook unchanged|"
                "prompted a regulatory review"),
        "j": _v("profitable|volatile|cautious|aggressive|disappointing|strong|weak|competitive|lucrative|risky"),
        "u": _v("quarter|deal|forecast|strategy|merger|investment|market|budget|outlook|acquisition"),
        "d": _v("the crypto exchange|the stablecoin|the NFT marketplace|the Bitcoin ETF|the DeFi protocol|"
                "the token launch|the memecoin rally|the blockchain ledger|the crypto wallet|the mining rig|"
                "the Ethereum upgrade|the digital asset fund|the airdrop|the Web3 startup"),
    },
    "health": {
        "a": _v("the hospital staff|the family doctor|the health ministry|the nursing union|"
                "the clinical researchers|the patients|the public health agency|the surgeons|the pharmacists|"
                "the medical board|the care home|the vaccine makers|the dietitians|the paramedics|"
                "the mental health charity|the drug regulator"),
        "v": _v("approved|prescribed|treated|screened|warned|recommended|vaccinated|diagnosed|reviewed|"
                "recalled|tested|monitored|reduced|expanded"),
        "o": _v("a new cancer drug|the flu vaccine|the waiting lists|the blood pressure guidelines|"
                "the hospital beds|a rare infection|the antibiotic supply|the clinical trial|"
                "the childhood obesity rates|the emergency department|the diabetes treatment|the sleep study|"
                "the nutrition labels|the heart surgery|the dementia care plan|the measles outbreak|"
                "the screening programme|the air quality warning|the physiotherapy sessions|"
                "the prescription costs"),
        "e": _v("the outbreak|the trial|the flu season|the heatwave|the vaccination drive|the ward inspection|"
                "the health survey|the surgery|the night shift|the winter surge"),
        "r": _v("cut infection rates by half|put pressure on emergency wards|showed promising early results|"
                "led to longer waiting times|reduced hospital admissions|was paused for safety checks|"
                "improved patient recovery times|raised concerns among doctors|was extended to more clinics|"
                "doubled demand for appointments"),
        "j": _v("healthy|chronic|contagious|experimental|preventive|severe|mild|clinical|routine|urgent"),
        "u": _v("treatment|diagnosis|therapy|symptom|vaccine|recovery|diet|clinic|infection|checkup"),
        "d": _v("the GLP-1 injections|the Ozempic prescriptions|the wellness app|the smart ring|"
                "the telehealth visit|the gut microbiome test|the longevity clinic|the cold plunge trend|"
                "the sleep tracker|the weight loss jab|the fitness influencer|the glucose monitor|"
                "the mindfulness app|the biohacking routine"),
    },
    "technology": {
        "a": _v("the software company|the chip maker|the security researchers|the app developers|"
                "the cloud provider|the smartphone maker|the open source community|the engineering team|"
                "the tech giant|the data centre operator|the robotics startup|the network operator|"
                "the game studio|the browser vendor|the hardware team|the product manager"),
        "v": _v("released|patched|upgraded|shipped|unveiled|hacked|encrypted|redesigned|benchmarked|deployed|"
                "debugged|discontinued|integrated|leaked"),
        "o": _v("a new smartphone|the operating system update|a security flaw|the cloud platform|"
                "the processor design|the mobile app|the fibre network|the password manager|the server outage|"
                "the video codec|the developer tools|the laptop battery|the search engine|the data breach|"
                "the programming language|the home router|the touchscreen|the firmware update|"
                "the storage drives|the user interface"),
        "e": _v("the product launch|the outage|the developer conference|the beta test|the software update|"
                "the cyber attack|the hardware review|the code freeze|the rollout|the hackathon"),
        "r": _v("crashed thousands of devices|improved battery life|exposed millions of passwords|"
                "slowed down older phones|was rolled back within hours|doubled download speeds|"
                "won praise from reviewers|broke several popular apps|cut energy use in data centres|"
                "delayed the next release"),
        "j": _v("wireless|faster|buggy|encrypted|portable|reliable|outdated|innovative|compatible|expensive"),
        "u": _v("device|update|platform|chip|network|app|server|gadget|feature|interface"),
        "d": _v("the Vision Pro headset|the foldable phone|the robotaxi fleet|the Starlink dish|"
                "the humanoid robot|the USB-C port|the quantum chip|the AI PC|the smart glasses|"
                "the Zephyr X2 earbuds|the e-bike battery|the drone delivery|the 6G trial|the mixed reality app"),
    },
    "politics": {
        "a": _v("the prime minister|the opposition leader|the city council|the senate committee|the governor|"
                "the ruling party|the campaign team|the election commission|the foreign minister|the mayor|"
                "the lawmakers|the coalition partners|the supreme court|the trade negotiators|"
                "the parliamentary group|the voters"),
        "v": _v("passed|vetoed|debated|proposed|criticised|endorsed|blocked|amended|signed|postponed|"
                "investigated|defended|announced|rejected"),
        "o": _v("the budget bill|the tax reform|a new housing policy|the immigration law|the election results|"
                "the trade agreement|the climate pledge|the voting rules|the minimum wage increase|"
                "the defence spending|the corruption inquiry|the border checks|the pension reform|"
                "the coalition deal|the public sector pay|the referendum|the party manifesto|"
                "the foreign aid package|the police budget|the constitutional amendment"),
        "e": _v("the election|the debate|the vote|the summit|the rally|the hearing|the campaign|the recount|"
                "the cabinet meeting|the by-election"),
        "r": _v("split the ruling coalition|drew large protests|passed by a narrow margin|"
                "was delayed until next month|raised questions about turnout|ended in a stalemate|"
                "boosted the party in the polls|was challenged in court|prompted calls for a resignation|"
                "secured cross-party support"),
        "j": _v("partisan|bipartisan|contentious|historic|controversial|narrow|sweeping|symbolic|populist|"
                "diplomatic"),
        "u": _v("policy|vote|reform|campaign|bill|coalition|mandate|debate|budget|scandal"),
        "d": _v("the TikTok ban|the deepfake ads|the AI regulation bill|the influencer campaign|"
                "the crypto lobby|the viral clip|the disinformation unit|the podcast interview|"
                "the meme campaign|the online petition|the chatbot rules|the livestreamed debate|"
                "the digital ID scheme|the group chat leak"),
    },
}

# Shared vocabulary: t(ime), p(lace), s(ource), l (role), f(iller adverb), person names.
GENERAL: dict[str, list[str]] = {
    "t": _v("on Monday|on Tuesday|on Wednesday|on Thursday|on Friday|over the weekend|last week|"
            "earlier this year|late on Sunday|this morning|in recent months|at the end of the month|"
            "during the summer|for the second time|after weeks of talks|this week"),
    "p": _v("in Chicago|in Madrid|in Nairobi|in Toronto|in the capital|in Leeds|in Osaka|across the region|"
            "in Melbourne|in the north|in Lisbon|in Denver|in Cape Town|in Glasgow|near the coast|in Mumbai"),
    "s": _v("local reporters|a spokesperson|officials|people familiar with the matter|several witnesses|"
            "the local newspaper|industry observers|the regional broadcaster|two independent experts|"
            "a senior source"),
    "l": _v("a senior official|an outside adviser|a long-time observer|a former employee|a local resident|"
            "a veteran journalist|a policy analyst|a close ally"),
    "f": _v("also|reportedly|quietly|finally|again|now|already|still|openly|formally"),
    "first": _v("Maria|James|Aisha|Tom|Elena|David|Priya|Lucas|Sofia|Daniel|Chen|Fatima|Oliver|Grace|Mateo|"
                "Hannah|Kwame|Yuki|Noah|Leila"),
    "last": _v("Lopez|Smith|Khan|Novak|Rossi|Okafor|Tanaka|Berg|Schmidt|Dubois|Walsh|Patel|Nguyen|Kowalski|"
               "Silva|Moreau|Jensen|Ahmed|Costa|Brennan"),
}
SLANG = _v("viral|lowkey|next level|game changing|hyped|mid|iconic|wild|unhinged|elite")

# (lead, body): lead is an optional fronted phrase that a paraphrase may move to the end; {F} marks a
# filler slot that a paraphrase may fill or empty. Other slots: see TOPICS / GENERAL keys, {n} a person.
TEMPLATES: list[tuple[str | None, str]] = [
    ("{t}", "{a} {F}{v} {o} {p}"),
    ("{t}", "{e} {p} {F}{r}"),
    (None, "{a} {F}{v} {o} after {e} {r}"),
    ("according to {s}", "{e} {F}{r}"),
    (None, "{n}, {l}, said the {j} {u} {F}{r}"),
    (None, "{a} said that {o} looked {j}, and {s} {F}agreed"),
    ("{t}", "{n} told {s} that {a} had {F}{v} {o}"),
    (None, "many observers expect {a} to {F}focus on {o} {t}"),
    ("{t}", "the {j} {u} {p} {F}drew attention from {s}"),
    (None, "{a} {F}{v} {o}, citing the {j} {u}"),
]

# Paraphrase table for near duplicates: whole-word substitutions that keep the sentence grammatical.
SYNONYMS: dict[str, str] = {
    "said": "stated", "told": "informed", "expect": "anticipate", "observers": "analysts",
    "many": "several", "focus": "concentrate", "drew": "attracted", "attention": "interest",
    "agreed": "concurred", "citing": "pointing to", "after": "following", "according to": "as reported by",
    "last week": "the previous week", "earlier this year": "earlier in the year", "this morning": "early today",
    "officials": "authorities", "local reporters": "local journalists", "a spokesperson": "a representative",
    "several witnesses": "a number of witnesses", "the capital": "the capital city", "over the weekend":
    "at the weekend", "match": "game", "coach": "manager", "victory": "win", "crowd": "audience",
    "contract": "agreement", "record": "best", "injury": "strain", "team": "squad", "scientists": "researchers",
    "study": "investigation", "finding": "result", "results": "findings", "experiment": "trial run",
    "confirmed": "verified", "published": "released", "questions": "doubts", "surprising": "unexpected",
    "profits": "earnings", "company": "firm", "shares": "stock", "announced": "unveiled", "raised": "lifted",
    "strong": "robust", "weak": "soft", "deal": "pact", "market": "sector", "doctors": "physicians",
    "patients": "people being treated", "treatment": "therapy", "hospital": "clinic", "severe": "serious",
    "reduced": "lowered", "outbreak": "spread", "device": "gadget", "released": "launched",
    "security flaw": "vulnerability", "app": "application", "faster": "quicker", "reliable": "dependable",
    "lawmakers": "legislators", "bill": "measure", "vote": "ballot", "protests": "demonstrations",
    "criticised": "attacked", "rejected": "turned down", "historic": "landmark", "controversial": "divisive",
}

DUP_CASING = ("upper", "lower", "title", "same")


@dataclass(frozen=True)
class GeneratedCorpus:
    """Generated documents ({"id", "text", "label"}), live windows and their ground truth."""

    docs: list[dict]
    live: dict[str, list[dict]]
    label_names: list[str]
    exact_duplicates: dict[str, str]  # planted copy id -> original id
    near_duplicates: dict[str, str]  # planted copy id -> original id
    live_drift: dict[str, bool]  # window -> drift planted?


@dataclass
class _Doc:
    label: int
    sentences: list[list]  # [lead | None, body with "{F}", filler] per sentence


@dataclass(frozen=True)
class _Mix:
    """How a document draws its words: ambiguity and drift knobs."""

    amb_rate: float = 0.2  # share of docs that mix in a second topic
    amb_mix: float = 0.45  # per-slot chance of that second topic in such docs
    cross: float = 0.06  # per-slot chance of a random other topic in any doc
    drift: float = 0.0  # per-slot chance of drift vocabulary


# ----------------------------------------------------------------------------- base documents

def _pick(rng: np.random.Generator, items: list[str]) -> str:
    return items[int(rng.integers(len(items)))]


Vocab = dict[str, list[str]]


def _fill(rng: np.random.Generator, text: str, vocab: list[tuple[float, Vocab]], mix: _Mix) -> str:
    """Fill every {slot}; each slot picks its topic vocabulary from the per-doc mixture."""
    cum = list(np.cumsum([w for w, _ in vocab]))

    def one(m: re.Match) -> str:
        key = m.group(1)
        if key == "F":
            return "{F}"
        if key == "n":
            return f"{_pick(rng, GENERAL['first'])} {_pick(rng, GENERAL['last'])}"
        if key in GENERAL:
            return _pick(rng, GENERAL[key])
        voc = vocab[min(bisect.bisect(cum, rng.random()), len(vocab) - 1)][1]
        if mix.drift and key in ("o", "e") and rng.random() < mix.drift:
            return _pick(rng, voc["d"])
        if mix.drift and key == "j" and rng.random() < mix.drift:
            return _pick(rng, SLANG)
        return _pick(rng, voc[key])

    return re.sub(r"\{(\w+)\}", one, text)


def _slot_vocab(rng: np.random.Generator, label: int, topics: list[Vocab], mix: _Mix
                ) -> list[tuple[float, Vocab]]:
    """Per-doc mixture [(weight, topic vocab)]: mostly its own topic, some cross-topic words."""
    k = len(topics)
    w = np.full(k, mix.cross / (k - 1))
    w[label] = 1.0 - mix.cross
    if rng.random() < mix.amb_rate:  # ambiguous doc: a second topic takes a large share
        other = (label + 1 + int(rng.integers(k - 1))) % k
        w = (1 - mix.amb_mix) * w
        w[other] += mix.amb_mix
    return [(float(x), t) for x, t in zip(w / w.sum(), topics)]


def _make_doc(rng: np.random.Generator, label: int, topics: list[Vocab], mix: _Mix) -> _Doc:
    vocab = _slot_vocab(rng, label, topics, mix)
    while True:
        sents, n_words = [], 0
        while n_words < 21 or (len(sents) < 3 and rng.random() < 0.35):
            lead, body = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
            filler = _pick(rng, GENERAL["f"]) if rng.random() < 0.35 else ""
            sents.append([_fill(rng, lead, vocab, mix) if lead else None, _fill(rng, body, vocab, mix), filler])
            n_words = len(_render(_Doc(label, sents)).split())
        if n_words <= 43:
            return _Doc(label, sents)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _render(doc: _Doc, moved: frozenset[int] = frozenset()) -> str:
    out = []
    for i, (lead, body, filler) in enumerate(doc.sentences):
        body = body.replace("{F}", f"{filler} " if filler else "")
        if lead is None:
            out.append(_cap(body) + ".")
        elif i in moved:  # paraphrase: fronted phrase moved to the end
            sep = ", " if lead.startswith("according") else " "
            out.append(_cap(body) + sep + lead + ".")
        else:
            out.append(_cap(lead) + ", " + body + ".")
    return " ".join(out)


# ----------------------------------------------------------------------------- planted copies

def _exact_copy(rng: np.random.Generator, text: str) -> str:
    """Same text after normalisation: casing, whitespace and punctuation spacing only."""
    mode = DUP_CASING[int(rng.integers(len(DUP_CASING)))]
    text = {"upper": text.upper(), "lower": text.lower(), "title": text.title(), "same": text}[mode]
    if rng.random() < 0.5:
        text = re.sub(r" ", lambda m: "  " if rng.random() < 0.15 else " ", text)
    if rng.random() < 0.4:
        text = re.sub(r"([.,])", lambda m: " " + m.group(1) if rng.random() < 0.5 else m.group(1), text)
    if rng.random() < 0.3:
        text = ("\n" if rng.random() < 0.5 else " ") + text + "  "
    if rng.random() < 0.15:  # a no-break space, as pasted from the web (NFKC maps it back)
        text = text.replace(" ", "\u00a0", 1)
    return text


def _swap_words(rng: np.random.Generator, text: str, n: int) -> str:
    """Replace one occurrence each of up to n words/phrases from the synonym table."""
    keys = [k for k in SYNONYMS if re.search(rf"\b{k}\b", text, flags=re.IGNORECASE)]
    for k in rng.permutation(keys)[:n]:
        syn = SYNONYMS[str(k)]
        text = re.sub(rf"\b{k}\b", lambda m, syn=syn: _cap(syn) if m.group(0)[0].isupper() else syn, text,
                      count=1, flags=re.IGNORECASE)
    return text


def _near_copy(rng: np.random.Generator, doc: _Doc, original: str, idf: dict[str, float], top: float | None = None
               ) -> str:
    """Paraphrase-level edit of `original`, redrawn until TF-IDF-close yet not a normalised copy."""
    for _ in range(30):
        text = _paraphrase(rng, doc)
        if normalize_text(text) != normalize_text(original) and _tfidf_cosine(text, original, idf, top) >= 0.75:
            return text
    return "Meanwhile, " + original[:1].lower() + original[1:]  # never reached in practice


def _paraphrase(rng: np.random.Generator, doc: _Doc) -> str:
    """Synonyms, a filler dropped/inserted, a moved phrase or sentence, casing/punctuation."""
    sents = [list(s) for s in doc.sentences]
    if rng.random() < 0.7:
        i = int(rng.integers(len(sents)))
        sents[i][2] = "" if sents[i][2] else _pick(rng, GENERAL["f"])
    if rng.random() < 0.4:
        sents.append(sents.pop(int(rng.integers(len(sents)))))
    leads = [k for k, s in enumerate(sents) if s[0] is not None]
    moved = frozenset(leads[:1] if leads and rng.random() < 0.5 else [])
    text = _swap_words(rng, _render(_Doc(doc.label, sents), moved), int(rng.integers(1, 4)))
    if rng.random() < 0.3:
        text = text.replace(", ", " ", 1) if rng.random() < 0.5 else text.lower()
    return text


def _grams(text: str) -> list[str]:
    w = re.findall(r"\w\w+", text.lower())  # TfidfVectorizer's default tokens, word 1-2 grams
    return w + [f"{x} {y}" for x, y in pairwise(w)]


def _idf(texts: list[str]) -> dict[str, float]:
    df = Counter(g for t in texts for g in set(_grams(t)))
    return {g: float(np.log((1 + len(texts)) / (1 + c)) + 1) for g, c in df.items()}


def _tfidf_cosine(a: str, b: str, idf: dict[str, float], top: float | None = None) -> float:
    """Cosine under sublinear-tf TF-IDF of word 1-2 grams, as the default embedder sees the pair. `top`: the largest
    idf (an unseen gram's), max(idf.values()) when not given: pass it, computed once, on a large corpus (10^6
    documents: ~10^6 grams scanned per call made the generator quadratic)."""
    top = max(idf.values()) if top is None else top
    va, vb = ({g: (1 + np.log(c)) * idf.get(g, top) for g, c in Counter(_grams(t)).items()} for t in (a, b))
    dot = sum(x * vb.get(g, 0.0) for g, x in va.items())
    return dot / np.sqrt(sum(x * x for x in va.values()) * sum(x * x for x in vb.values()))


# ----------------------------------------------------------------------------- corpus

def _labels(rng: np.random.Generator, n: int, probs: np.ndarray) -> np.ndarray:
    """Labels matching `probs` as closely as integers allow, in random order."""
    counts = np.floor(probs * n).astype(int)
    counts[np.argsort(-(probs * n - counts))[: n - counts.sum()]] += 1
    return rng.permutation(np.repeat(np.arange(len(probs)), counts))


def _unique_docs(rng: np.random.Generator, labels: np.ndarray, topics: list[Vocab], mix: _Mix, seen: set[bytes]
                 ) -> list[tuple[_Doc, str]]:
    from tqdm.auto import tqdm  # a bar for a large corpus (10^6 documents: minutes), none for the usual sizes

    out = []
    for y in tqdm(labels, desc="generate documents", unit="doc", mininterval=10, leave=False,
                  disable=len(labels) < 100_000):
        while True:  # redraw on a (rare) collision so distinct docs stay distinct
            doc = _make_doc(rng, int(y), topics, mix)
            text = _render(doc)
            # the normalised text's digest, not the text: a 10^6-document corpus holds 10^6 of them
            if (key := hashlib.blake2b(normalize_text(text).encode("utf-8"), digest_size=16).digest()) not in seen:
                seen.add(key)
                out.append((doc, text))
                break
    return out


def _topic_probs(k: int, minority_frac: float | None) -> np.ndarray:
    """Class mix: balanced, or the last topic at `minority_frac` and the others sharing the rest equally."""
    if minority_frac is None:
        return np.full(k, 1 / k)
    probs = np.full(k, (1.0 - minority_frac) / (k - 1))
    probs[-1] = minority_frac
    return probs


def _live_window(rng: np.random.Generator, name: str, size: int, topics: list[Vocab], drift: bool,
                 seen: set[bytes], probs: np.ndarray | None = None) -> list[dict]:
    """One live window: drawn with the corpus's class mix `probs` (default balanced), or drifted."""
    k = len(topics)
    probs = np.full(k, 1.0 / k) if probs is None else probs
    mix = _Mix()
    if drift:  # one topic dominates, another is absent, new vocabulary mixed in
        dom, gone = rng.choice(k, size=2, replace=False)
        rest = 0.4 if k > 2 else 0.0
        probs = np.full(k, rest / max(k - 2, 1))
        probs[dom], probs[gone] = 1.0 - rest, 0.0
        mix = _Mix(drift=0.5)
    docs = _unique_docs(rng, _labels(rng, size, probs), topics, mix, seen)
    w = name.split("-")[1]
    return [{"id": f"live-{w}-{i:04d}", "text": t, "label": d.label} for i, (d, t) in enumerate(docs)]


def generate_corpus(seed: int = 0, n_docs: int = 3000, n_topics: int = 4, exact_dup_frac: float = 0.06,
                    near_dup_frac: float = 0.06, live_size: int = 400, minority_frac: float | None = None
                    ) -> GeneratedCorpus:
    """Seeded corpus with planted exact/near duplicates and an in-distribution and a drifted live window.

    `minority_frac` (0 < x < 0.5): the last topic's share of the base documents, the others share the rest
    equally (imbalance ground truth); duplicates are drawn uniformly from the base documents, so they and the
    in-distribution live window follow the same class mix. None: balanced topics (the historical corpus).
    """
    if not 2 <= n_topics <= len(TOPICS):
        raise ValueError(f"n_topics must be in 2..{len(TOPICS)}, got {n_topics}")
    if minority_frac is not None and not 0 < minority_frac < 0.5:
        raise ValueError(f"minority_frac must be in (0, 0.5) or None, got {minority_frac}")
    n_exact, n_near = round(exact_dup_frac * n_docs), round(near_dup_frac * n_docs)
    n_base = n_docs - n_exact - n_near
    if min(n_exact, n_near) < 0 or n_base < max(n_exact, n_near, 1):
        raise ValueError(f"duplicate fractions {exact_dup_frac}, {near_dup_frac} leave too few originals")
    names = list(TOPICS)[:n_topics]
    topics = [TOPICS[t] for t in names]
    # independent streams: live_size never changes the corpus
    r_base, r_dup, r_live, r_order = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))
    seen: set[bytes] = set()
    probs = _topic_probs(n_topics, minority_frac)
    base = _unique_docs(r_base, _labels(r_base, n_base, probs), topics, _Mix(), seen)
    records = [(d.label, t, -1, "") for d, t in base]  # (label, text, original index, kind)
    for i in r_dup.choice(n_base, n_exact, replace=False):
        records.append((base[i][0].label, _exact_copy(r_dup, base[i][1]), int(i), "exact"))
    idf = _idf([t for _, t in base])
    top = max(idf.values())
    for i in r_dup.choice(n_base, n_near, replace=False):
        records.append((base[i][0].label, _near_copy(r_dup, base[i][0], base[i][1], idf, top), int(i), "near"))
    order = r_order.permutation(len(records))
    ids = {int(pos): f"doc-{new:06d}" for new, pos in enumerate(order)}
    docs = [{"id": ids[int(p)], "text": records[p][1], "label": records[p][0]} for p in order]
    truth = {"exact": {}, "near": {}}
    for pos, (_, _, orig, kind) in enumerate(records):
        if kind:
            truth[kind][ids[pos]] = ids[orig]
    live = {w: _live_window(r_live, w, live_size, topics, drift, seen, probs)
            for w, drift in (("window-000", False), ("window-001", True))}
    return GeneratedCorpus(docs=docs, live=live, label_names=names, exact_duplicates=truth["exact"],
                           near_duplicates=truth["near"], live_drift={"window-000": False, "window-001": True})


def draw_docs(seed: int, n: int, n_topics: int = 4, topic_probs: list[float] | None = None,
              drift_vocab: float = 0.0) -> list[dict]:
    """`n` distinct documents drawn like the corpus's (balanced topics, no drift vocabulary), or with another
    topic mix (`topic_probs`) and / or drift vocabulary (`drift_vocab`: the per-slot chance of the drift terms
    the drifted live window uses, 0.5 there): the pools of the drift power study (bench/drift.py)."""
    if not 2 <= n_topics <= len(TOPICS):
        raise ValueError(f"n_topics must be in 2..{len(TOPICS)}, got {n_topics}")
    probs = np.full(n_topics, 1.0 / n_topics) if topic_probs is None else np.asarray(topic_probs, dtype=float)
    if probs.shape != (n_topics,) or np.any(probs < 0) or not np.isclose(probs.sum(), 1.0):
        raise ValueError(f"topic_probs must be {n_topics} non-negative shares summing to 1; got {topic_probs}")
    if not 0.0 <= drift_vocab <= 1.0:
        raise ValueError(f"drift_vocab must be in [0, 1]; got {drift_vocab}")
    rng = np.random.default_rng(seed)
    topics = [TOPICS[t] for t in list(TOPICS)[:n_topics]]
    docs = _unique_docs(rng, _labels(rng, n, probs), topics, _Mix(drift=drift_vocab), set())
    return [{"id": f"draw-{seed}-{i:05d}", "text": t, "label": d.label} for i, (d, t) in enumerate(docs)]
