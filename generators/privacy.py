"""Privacy-preserving augmentation: PII in evidence becomes consistent, seeded surrogate values.

Evidence arrives redacted by the monitor (``<PERSON>``, ``<EMAIL>``, … placeholders of :mod:`core.pii`); any
value the detector would still catch is real. :class:`Surrogates` maps each real value to one surrogate for the
whole job (the same value always gets the same surrogate) and fills each placeholder with a fresh one. Surrogates
come from Faker, seeded, in reserved ranges where there are any (``example.*`` mail domains, 555-01xx phone
numbers, RFC 5737 addresses, SSNs beginning with 9); each sample lists the ones it carries in
``metadata["surrogates"]`` (one per line). Prompts with no personal data get a contact line of surrogates, so a
model learns to answer around it.

>>> import random
>>> surrogates = Surrogates(random.Random(0))
>>> once = surrogates.rewrite("write to ann@example.org or <EMAIL>", slot="s1")
>>> again = surrogates.rewrite("ann@example.org again", slot="s2")
>>> once.split()[2] == again.split()[0] != "ann@example.org", "<EMAIL>" in once
(True, False)
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator

from faker import Faker

from core.pii import PLACEHOLDERS
from core.redact import count_pii, substitute
from generators.references import expected_for
from generators.samples import RuleGenerator, Sample
from monitor.incidents import DriftIncident

PLACEHOLDER = re.compile("|".join(map(re.escape, PLACEHOLDERS.values())))
DOCUMENTATION_NETS = ("192.0.2", "198.51.100", "203.0.113")
MAKERS: dict[str, Callable[[Faker], str]] = {
    "<PERSON>": lambda fake: fake.unique.name(),
    "<ADDRESS>": lambda fake: fake.unique.address().replace("\n", ", "),
    "<EMAIL>": lambda fake: fake.unique.safe_email(),
    "<PHONE>": lambda fake: fake.unique.numerify("+1 ### 555 01##"),
    "<CARD>": lambda fake: " ".join(re.findall("....", fake.unique.credit_card_number(card_type="visa16"))),
    "<IBAN>": lambda fake: fake.unique.iban(),
    "<SSN>": lambda fake: fake.unique.numerify("9##-##-####"),  # never issued: SSNs do not start with 9
    "<IP>": lambda fake: f"{fake.random_element(DOCUMENTATION_NETS)}.{fake.unique.random_int(1, 254)}",
    "<API_KEY>": lambda fake: "sk_test_" + fake.unique.lexify("?" * 24),
    "<SECRET>": lambda fake: fake.unique.password(length=16),
}
REWRITE, CONTACT = TECHNIQUES = ("pii_surrogates", "pii_contact_details")
CONTACT_LINES = (
    "You can reach me at {email} or {phone}.",
    "My e-mail is {email}; call {phone} if it is urgent.",
    "(Sent from {email}, phone {phone}.)",
)


class PrivacyLeak(RuntimeError):
    """A real personal-data value survived a rewrite; carries how many."""

    def __init__(self, leaked: int) -> None:
        super().__init__(f"{leaked} real personal-data values survived the privacy rewrite")
        self.leaked = leaked


class Surrogates:
    """Seeded surrogate values for one job: the same real value always gets the same surrogate."""

    def __init__(self, rng: random.Random) -> None:
        self.fake = Faker("en_US")
        self.fake.seed_instance(rng.getrandbits(64))
        self.real: dict[str, str] = {}
        self.slots: dict[tuple[str, str, int], str] = {}
        self.made: dict[str, None] = {}

    def new(self, placeholder: str) -> str:
        """A fresh surrogate for a value of the kind ``placeholder`` names (the placeholder itself for an unknown
        kind, so nothing real is left)."""
        surrogate = MAKERS.get(placeholder, lambda _: placeholder)(self.fake)
        self.made[surrogate] = None
        return surrogate

    def carried(self, *texts: str) -> list[str]:
        """The surrogates that occur in ``texts``, in the order they were made."""
        return [value for value in self.made if any(value in text for text in texts)]

    def for_value(self, placeholder: str, value: str) -> str:
        if value not in self.real:
            self.real[value] = next(s for s in iter(lambda: self.new(placeholder), None) if s not in self.real)
        return self.real[value]

    def for_slot(self, slot: str, placeholder: str, occurrence: int) -> str:
        key = (slot, placeholder, occurrence)
        if key not in self.slots:
            self.slots[key] = self.new(placeholder)
        return self.slots[key]

    def rewrite(self, text: str, slot: str) -> str:
        """``text`` with real values and placeholders replaced; the n-th placeholder of a kind in ``slot`` gets the
        same surrogate every time (so a prompt and its answer agree)."""
        text = substitute(text, self.for_value)
        seen: dict[str, int] = {}

        def fill(match: re.Match[str]) -> str:
            placeholder = match.group()
            seen[placeholder] = seen.get(placeholder, 0) + 1
            return self.for_slot(slot, placeholder, seen[placeholder])

        rewritten = PLACEHOLDER.sub(fill, text)
        leaked = sum(value in rewritten for value in self.real)
        if leaked:
            raise PrivacyLeak(leaked)
        return rewritten


class PrivacyGenerator(RuleGenerator):
    """Evidence with its personal data turned into surrogates; evidence without any gets surrogate contact details."""

    name = "privacy"
    version = "1.0"
    techniques = TECHNIQUES

    def samples(self, incident: DriftIncident, count: int, seed: str) -> Iterator[Sample]:
        rng = random.Random(f"{seed}:{incident.id}:{self.name}")
        surrogates = Surrogates(rng)
        origin = f"{self.name}/{self.version}"
        for i in range(count):
            evidence = rng.choice(incident.evidence)
            expected = expected_for(evidence)
            slot = f"sample-{i}"
            has_pii = bool(PLACEHOLDER.search(evidence.prompt)) or count_pii(evidence.prompt) > 0
            prompt = surrogates.rewrite(evidence.prompt, slot)
            if not has_pii:
                line = rng.choice(CONTACT_LINES)
                email, phone = surrogates.new("<EMAIL>"), surrogates.new("<PHONE>")
                prompt = f"{prompt}\n\n{line.format(email=email, phone=phone)}"
            metadata = {"surrogates": "\n".join(surrogates.carried(prompt))}
            technique = REWRITE if has_pii else CONTACT
            yield Sample.make(prompt, technique, expected, "", origin, seed, metadata)
