"""The mixed-shift benchmark judges issue 16's mixes only; its pool wave is reported beside them."""

import math

from bench.mixed import MIXES, POOL_MIXES, Tally, name, report


def _tallies(judged_share: float, pool_share: float) -> dict[str, Tally]:
    """Ten runs a mix, each cause named (delay 100) in the given share of them, missed in the others."""
    tallies = {}
    for mixes, share in ((MIXES, judged_share), (POOL_MIXES, pool_share)):
        for mix in mixes:
            named = round(10 * share)
            delays = [100.0] * named + [math.inf] * (10 - named)
            tallies[name(mix)] = Tally(delays={shift.kind: list(delays) for shift in mix}, runs=10)
    return tallies


def test_goal_reads_the_judged_mixes_alone():
    assert report(_tallies(judged_share=1.0, pool_share=0.4))
    assert not report(_tallies(judged_share=0.8, pool_share=1.0))


def test_judged_attack_is_the_held_out_injection_wave():
    attacks = {shift for mix in MIXES for shift in mix if "attack" in shift.kind}
    assert attacks and all(shift.prompts == "held-out" for shift in attacks)
    assert {shift.prompts for mix in POOL_MIXES for shift in mix if "attack" in shift.kind} == {"attack"}
