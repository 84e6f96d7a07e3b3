"""Recall and precision of redaction per kind of personal data: the detector (:mod:`core.redact`) against the
patterns it replaced, on the same texts in the same run.

Run with ``make bench-pii`` (``python -m bench.pii [--texts N] [--real N] [--seed S]``).

- **Labelled texts**: sentences in English, German, French and Spanish, each with one to three values planted from
  Faker (the locale of the sentence's language) among 17 kinds: names, street addresses, e-mails, phone numbers in
  each locale's formats, cards, IBANs, US SSNs, IPv4 and IPv6 addresses, AWS access and secret keys, JWTs,
  ``password=`` values, GitHub, Slack and OpenAI-style tokens and private-key blocks. Some values stand with a cue
  (``my SSN is``), some without.
- **Real prompts**: ShareGPT human turns (cut to the 1,000 characters evidence keeps). They carry no planted value:
  a value found there counts against precision unless it is one of :data:`REVIEWED`, the findings of the default
  sample checked by hand (real people's names, a real street address).

A planted value counts as redacted when at least :data:`COVERED` of its letters and digits are masked. A masked
stretch is a true positive when it overlaps a planted value. Goal: recall ≥ 0.95 on structured identifiers, ≥ 0.85
on names and addresses, precision ≥ 0.9 (each detector kind, and overall).
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import re
import string
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from faker import Faker
from rich.console import Console
from rich.table import Table

from core.pii_estimate import _CARD, _INVISIBLE, _PATTERNS, luhn_valid
from core.redact import substitute
from devtools.traffic import sharegpt_pairs

console = Console(width=140)
COVERED = 0.9
"""Share of a planted value's letters and digits that must be masked for it to count as redacted."""
EVIDENCE_CHARS = 1000
LOCALES = {"en": ("en_US", "en_GB"), "de": ("de_DE",), "fr": ("fr_FR",), "es": ("es_ES",)}
NAMES_AND_ADDRESSES = ("person", "address")
REVIEWED = {
    # personal data the detector finds in the default sample of real prompts (--real 500), checked by hand
    "<PERSON>": {
        *("Ellie Goulding", "Erik Satie", "Frédéric Chopin", "Jean-Michel Blais", "Mark Gottfredson", "Maurice Ravel"),
        *("Michael Mankins", "Penny Pennington", "Philip Glass", "Sergei Rachmaninoff", "Steve Reich", "Yann Tiersen"),
        "Otávio Bopp",  # a participant of a pasted chat
        "Gene Starwind",  # the player's character of a role-play
    },
    "<ADDRESS>": {"10 STAR ISLAND DR, MIAMI BEACH, FL 33139"},
}


# --- baseline: the hand-written patterns that core/redact.py held before Presidio (core.pii_estimate keeps them,
# unchanged, for the per-event pii_count) -------------------------------------------------------------------
_OLD_HELD = 0xF0000
_OLD_HELD_RANGE = re.compile(f"[{chr(_OLD_HELD)}-{chr(0x10FFFF)}]")


def old_substitute(text: str, replace: Callable[[str, str], str]) -> str:
    """The former ``core.redact.substitute``, unchanged."""
    held: list[str] = []
    text = _OLD_HELD_RANGE.sub("", _INVISIBLE.sub("", text))
    for placeholder, pattern in _PATTERNS:
        found = list(pattern.finditer(text))
        for match in reversed([m for m in found if luhn_valid(m.group())] if pattern is _CARD else found):
            held.append(replace(placeholder, match.group()))
            text = f"{text[: match.start()]}{chr(_OLD_HELD + len(held) - 1)}{text[match.end() :]}"
    return _OLD_HELD_RANGE.sub(lambda m: held[ord(m.group()) - _OLD_HELD], text)


# --- the labelled texts --------------------------------------------------------------------------------------
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(fake: Faker, rng: random.Random) -> str:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": str(rng.randrange(10**9)), "name": fake.name(), "iat": rng.randrange(1_500_000_000, 1_800_000_000)}
    return f"{header}.{_b64url(json.dumps(claims).encode())}.{_b64url(rng.randbytes(32))}"


def _chars(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _private_key(rng: random.Random) -> str:
    body = base64.b64encode(rng.randbytes(rng.choice((120, 180, 240)))).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    kind = rng.choice(("RSA ", "EC ", "OPENSSH ", ""))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{lines}\n-----END {kind}PRIVATE KEY-----"


def _grouped(value: str, rng: random.Random) -> str:
    """An IBAN or card number as written: in groups of four or in one run."""
    return " ".join(re.findall(".{1,4}", value)) if rng.random() < 0.5 else value


ALNUM = string.ascii_letters + string.digits
SSN_AREAS = [area for area in range(1, 900) if area != 666]
MAKERS: dict[str, Callable[[Faker, random.Random], str]] = {
    "person": lambda fake, rng: f"{fake.first_name()} {fake.last_name()}",
    "address": lambda fake, rng: fake.address().replace("\n", ", "),
    "email": lambda fake, rng: fake.email(),
    "phone": lambda fake, rng: fake.phone_number(),
    "card": lambda fake, rng: _grouped(fake.credit_card_number(), rng),
    "iban": lambda fake, rng: _grouped(fake.iban(), rng),
    "ssn": lambda fake, rng: f"{rng.choice(SSN_AREAS):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}",
    "ipv4": lambda fake, rng: fake.ipv4(),
    "ipv6": lambda fake, rng: fake.ipv6(),
    "aws_access_key": lambda fake, rng: "AKIA" + _chars(rng, string.ascii_uppercase + string.digits, 16),
    "aws_secret_key": lambda fake, rng: _chars(rng, ALNUM + "/+", 40),
    "jwt": _jwt,
    "password": lambda fake, rng: fake.password(length=rng.randint(8, 16)),
    "github_token": lambda fake, rng: "ghp_" + _chars(rng, ALNUM, 36),
    "slack_token": lambda fake, rng: (
        f"xoxb-{rng.randrange(10**11, 10**12)}-{rng.randrange(10**12, 10**13)}-" + _chars(rng, ALNUM, 24)
    ),
    "openai_key": lambda fake, rng: rng.choice(("sk-", "sk-proj-")) + _chars(rng, ALNUM + "_-", 48),
    "private_key": lambda fake, rng: _private_key(rng),
}
CUES: dict[str, dict[str, tuple[str, ...]]] = {
    # kind -> language -> how a value of the kind is introduced ({} is the value); "" marks no cue
    "person": {
        "en": ("My name is {}.", "{} asked me to", "I had a meeting with {} yesterday and"),
        "de": ("Ich heiße {}.", "{} hat mich gebeten,", "Gestern hatte ich ein Treffen mit {} und"),
        "fr": ("Je m'appelle {}.", "{} m'a demandé de", "Hier, j'ai rencontré {} et"),
        "es": ("Me llamo {}.", "{} me pidió que", "Ayer me reuní con {} y"),
    },
    "address": {
        "en": ("I live at {}.", "Ship it to {}."),
        "de": ("Ich wohne in der {}.", "Bitte an {} schicken."),
        "fr": ("J'habite au {}.", "Envoyez-le au {}."),
        "es": ("Vivo en {}.", "Envíalo a {}."),
    },
    "email": {
        "en": ("Email me at {}.", "from: {}"),
        "de": ("Schreib mir an {}.", "von: {}"),
        "fr": ("Écrivez-moi à {}.", "de : {}"),
        "es": ("Escríbeme a {}.", "de: {}"),
    },
    "phone": {
        "en": ("Call me on {}.", "{}"),
        "de": ("Ruf mich unter {} an.", "{}"),
        "fr": ("Appelez-moi au {}.", "{}"),
        "es": ("Llámame al {}.", "{}"),
    },
    "card": {
        "en": ("My card number is {}.", "charged {} twice"),
        "de": ("Meine Kartennummer ist {}.", "{} wurde zweimal belastet"),
        "fr": ("Mon numéro de carte est {}.", "{} a été débitée deux fois"),
        "es": ("Mi número de tarjeta es {}.", "{} fue cobrada dos veces"),
    },
    "iban": {
        "en": ("Send it to IBAN {}.", "account {}"),
        "de": ("Überweise es auf {}.", "Konto {}"),
        "fr": ("Virement sur {}.", "compte {}"),
        "es": ("Transfiere a {}.", "cuenta {}"),
    },
    "ssn": {
        "en": ("My SSN is {}.", "the number {} was rejected"),
        "de": ("Meine SSN ist {}.", "die Nummer {} wurde abgelehnt"),
        "fr": ("Mon SSN est {}.", "le numéro {} a été refusé"),
        "es": ("Mi SSN es {}.", "el número {} fue rechazado"),
    },
    "ipv4": {"*": ("the server at {} is down", "ping {}", "host={}")},
    "ipv6": {"*": ("the server at {} is down", "ping {}", "listen [{}]:443")},
    "aws_access_key": {"*": ("aws_access_key_id = {}", "key {} leaked", "AWS_ACCESS_KEY_ID={}")},
    "aws_secret_key": {"*": ("aws_secret_access_key = {}", "AWS_SECRET_ACCESS_KEY={}", "aws secret key: {}")},
    "jwt": {"*": ("Authorization: Bearer {}", "token {}", "{}")},
    "password": {
        "en": ("password={}", "my password is {}", "db_password: {}"),
        "de": ("password={}", "Passwort: {}", "DB_PASSWORD={}"),
        "fr": ("password={}", "mot de passe : {}", "pwd={}"),
        "es": ("password={}", "contraseña: {}", "secret={}"),
    },
    "github_token": {"*": ("GITHUB_TOKEN={}", "git clone https://{}@github.com/acme/app", "{}")},
    "slack_token": {"*": ("SLACK_BOT_TOKEN={}", "slack token {}", "{}")},
    "openai_key": {"*": ("OPENAI_API_KEY={}", "client = OpenAI(api_key='{}')", "{}")},
    "private_key": {"*": ("{}", "id_rsa:\n{}")},
}
FRAMES = {
    "en": ("{} Can you write a reply?", "Please fix this: {}", "{}", "Summarise the thread. {} Thanks!"),
    "de": ("{} Kannst du eine Antwort schreiben?", "Bitte korrigiere das: {}", "{}", "Fasse das zusammen. {}"),
    "fr": ("{} Peux-tu écrire une réponse ?", "Corrige ceci : {}", "{}", "Résume la discussion. {} Merci !"),
    "es": ("{} ¿Puedes escribir una respuesta?", "Arregla esto: {}", "{}", "Resume el hilo. {} ¡Gracias!"),
}


@dataclass(frozen=True)
class Labelled:
    text: str
    planted: list[tuple[str, int, int]]
    """(kind, start, end) of each planted value."""
    language: str = ""


def labelled_texts(count: int, seed: int) -> list[Labelled]:
    """``count`` texts with one to three planted values each, kinds in turn so each is planted about as often."""
    rng = random.Random(seed)
    fakers = {locale: Faker(locale) for locales in LOCALES.values() for locale in locales}
    for i, fake in enumerate(fakers.values()):
        fake.seed_instance(seed + i)
    kinds = list(MAKERS)
    texts, turn = [], 0
    for _ in range(count):
        language = rng.choice(list(LOCALES))
        fake = fakers[rng.choice(LOCALES[language])]
        parts: list[str | tuple[str, str]] = []
        for _ in range(rng.choice((1, 1, 2, 3))):
            kind = kinds[turn % len(kinds)]
            turn += 1
            cues = CUES[kind].get(language) or CUES[kind]["*"]
            before, after = rng.choice(cues).split("{}")
            parts += [before, (kind, MAKERS[kind](fake, rng)), after + "\n"]
        before, after = rng.choice(FRAMES[language]).split("{}")
        text, planted = before, []
        for part in parts:
            if isinstance(part, tuple):
                planted.append((part[0], len(text), len(text) + len(part[1])))
                part = part[1]
            text += part
        texts.append(Labelled(text + after, planted, language))
    return texts


# --- scoring -------------------------------------------------------------------------------------------------
MARK = 0xE000  # private-use characters stand for masked ones, one per placeholder


def masked(redactor: Callable[[str, Callable[[str, str], str]], str], text: str) -> list[tuple[str, int, int]]:
    """The masked stretches (placeholder, start, end) of ``text``: each value is replaced by as many private-use
    characters of its placeholder, so positions hold."""
    marks: dict[str, str] = {}
    out = redactor(text, lambda placeholder, value: marks.setdefault(placeholder, chr(MARK + len(marks))) * len(value))
    if len(out) != len(text):
        raise ValueError("a redactor changed the length of a text outside its values (invisible characters?)")
    names = {mark: placeholder for placeholder, mark in marks.items()}
    return [(names[m.group()[0]], m.start(), m.end()) for m in re.finditer(r"([\ue000-\ue0ff])\1*", out)]


@dataclass
class Score:
    planted: Counter
    redacted: Counter
    found: Counter
    true: Counter
    real_found: Counter
    real_true: Counter
    """Of ``found`` and ``true``: those in real prompts."""
    seconds: float = 0.0


def score(redactor: Callable[[str, Callable[[str, str], str]], str], texts: list[Labelled]) -> Score:
    """Planted and redacted values per kind; masked stretches and true ones per placeholder."""
    result = Score(Counter(), Counter(), Counter(), Counter(), Counter(), Counter())
    started = time.perf_counter()
    for item in texts:
        spans = masked(redactor, item.text)
        mask = [False] * len(item.text)
        for _, start, end in spans:
            mask[start:end] = [True] * (end - start)
        for kind, start, end in item.planted:
            chars = [i for i in range(start, end) if item.text[i].isalnum()]
            result.planted[kind] += 1
            result.redacted[kind] += sum(mask[i] for i in chars) >= COVERED * len(chars)
        for placeholder, start, end in spans:
            true = any(start < e and end > s for _, s, e in item.planted)
            true |= not item.planted and item.text[start:end] in REVIEWED.get(placeholder, ())
            result.found[placeholder] += 1
            result.true[placeholder] += true
            result.real_found[placeholder] += not item.planted
            result.real_true[placeholder] += not item.planted and true
    result.seconds = time.perf_counter() - started
    return result


def table(new: Score, old: Score, texts: int, real: int) -> tuple[Table, Table, bool]:
    """The recall and precision tables and whether the detector meets the goal."""
    recall = Table(title=f"Recall per planted kind ({texts:,} labelled texts)")
    for column in ("kind", "planted", "detector", "old patterns", "goal"):
        recall.add_column(column, justify="left" if column == "kind" else "right")
    met = True
    for kind in MAKERS:
        goal = 0.85 if kind in NAMES_AND_ADDRESSES else 0.95
        r_new, r_old = new.redacted[kind] / new.planted[kind], old.redacted[kind] / old.planted[kind]
        met &= r_new >= goal
        recall.add_row(kind, str(new.planted[kind]), _rate(r_new, goal), f"{r_old:.3f}", f"≥ {goal}")
    precision = Table(title=f"Precision per detected kind (labelled texts + {real:,} real ShareGPT prompts)")
    for column in ("placeholder", "found", "in real prompts (true)", "detector", "old: found", "old patterns"):
        precision.add_column(column, justify="left" if column == "placeholder" else "right")
    for placeholder in sorted(set(new.found) | set(old.found)):
        p_new = new.true[placeholder] / new.found[placeholder] if new.found[placeholder] else float("nan")
        p_old = old.true[placeholder] / old.found[placeholder] if old.found[placeholder] else float("nan")
        met &= not new.found[placeholder] or p_new >= 0.9
        real_prompts = f"{new.real_found[placeholder]} ({new.real_true[placeholder]})"
        found, old_found = str(new.found[placeholder]), str(old.found[placeholder])
        precision.add_row(placeholder, found, real_prompts, _rate(p_new, 0.9), old_found, f"{p_old:.3f}")
    overall_new = sum(new.true.values()) / max(1, sum(new.found.values()))
    overall_old = sum(old.true.values()) / max(1, sum(old.found.values()))
    met &= overall_new >= 0.9
    real_prompts = f"{sum(new.real_found.values())} ({sum(new.real_true.values())})"
    found, old_found = str(sum(new.found.values())), str(sum(old.found.values()))
    precision.add_row("all", found, real_prompts, _rate(overall_new, 0.9), old_found, f"{overall_old:.3f}")
    return recall, precision, met


def _rate(value: float, goal: float) -> str:
    return f"[{'green' if value >= goal else 'red'}]{value:.3f}[/]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1200, help="labelled texts")
    parser.add_argument("--real", type=int, default=500, help="real ShareGPT prompts (for false positives)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    texts = labelled_texts(args.texts, args.seed)
    prompts = [_INVISIBLE.sub("", prompt)[:EVIDENCE_CHARS] for prompt, _ in sharegpt_pairs(args.real * 6)][::6][
        : args.real
    ]
    everything = texts + [Labelled(prompt, []) for prompt in prompts]
    substitute("warm-up: load the model", lambda placeholder, _: placeholder)
    new, old = score(substitute, everything), score(old_substitute, everything)
    recall, precision, met = table(new, old, len(texts), len(prompts))
    console.print(recall)
    console.print(precision)
    per_text = {name: s.seconds / len(everything) * 1000 for name, s in (("detector", new), ("old patterns", old))}
    console.print("cost per text: " + ", ".join(f"{name} {ms:.2f} ms" for name, ms in per_text.items()))
    console.print("verdict: goal " + ("MET" if met else "NOT met"))


if __name__ == "__main__":
    main()
