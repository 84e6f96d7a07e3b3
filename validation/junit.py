"""JUnit XML of a stress run for CI: one test suite per family (a test case per probe) and one for the
``--fail-on`` conditions."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from validation.run import StressRun
from validation.scoring import Behaviour, Score
from validation.thresholds import Condition


def junit_xml(run: StressRun, conditions: list[Condition]) -> ET.ElementTree:
    summary = run.summary
    root = ET.Element("testsuites", name=f"driftloop stress {summary.suite}@{summary.suite_version}")
    by_family: dict[str, list[Score]] = defaultdict(list)
    for score in run.scores:
        by_family[score.family].append(score)
    for family, scores in sorted(by_family.items()):
        suite = _suite(root, f"{summary.suite}.{family}", scores)
        for score in scores:
            case = ET.SubElement(suite, "testcase", classname=f"{summary.suite}.{family}", name=score.probe_id)
            if score.behaviour == Behaviour.ERROR:
                ET.SubElement(case, "error", message=score.reason)
            elif not score.passed:
                ET.SubElement(case, "failure", message=score.reason).text = score.reply
    thresholds = ET.SubElement(root, "testsuite", name=f"{summary.suite}.fail-on", tests=str(len(conditions)))
    breaches = 0
    for condition in conditions:
        case = ET.SubElement(thresholds, "testcase", classname=f"{summary.suite}.fail-on", name=str(condition))
        if condition.breached(summary):
            breaches += 1
            ET.SubElement(case, "failure", message=f"measured {condition.measured(summary)}")
    thresholds.set("failures", str(breaches))
    return ET.ElementTree(root)


def _suite(root: ET.Element, name: str, scores: list[Score]) -> ET.Element:
    errors = sum(s.behaviour == Behaviour.ERROR for s in scores)
    failures = sum(not s.passed for s in scores) - errors
    return ET.SubElement(
        root, "testsuite", name=name, tests=str(len(scores)), failures=str(failures), errors=str(errors)
    )


def write_junit(run: StressRun, conditions: list[Condition], path: Path) -> Path:
    ET.indent(tree := junit_xml(run, conditions))
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return path
