from statistics import mean

import numpy as np
import pytest

from core.embeddings import MODELS, Model, embed
from core.risk import injection_score
from devtools.traffic import jailbreak_prompts, sharegpt_pairs


def test_injection_score_separates_real_jailbreaks_from_real_chat() -> None:
    attacks = [injection_score(p) for p in jailbreak_prompts()]
    chat = [injection_score(p) for p, _ in sharegpt_pairs()[:3000]]
    assert mean(attacks) > 10 * mean(chat)
    assert sum(s > 0 for s in attacks) / len(attacks) > 0.6
    assert sum(s > 0 for s in chat) / len(chat) < 0.05


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_jailbreaks_are_semantically_closer_to_attack_exemplars_than_chat(model: Model) -> None:
    from core.risk import injection_similarity

    attacks = injection_similarity(embed([p[:1000] for p in jailbreak_prompts()[::20]], model), model)
    chat = injection_similarity(embed([p[:1000] for p, _ in sharegpt_pairs()[:3000:100]], model), model)
    assert attacks.mean() > chat.mean() + 0.15
    assert np.median(attacks) > np.quantile(chat, 0.9)
