"""The evaluation report in markdown (docs/evaluation.md): targets, scores by slice, severity
confusion matrices, groups, the true positives dismissed and manipulations missed, and an appendix
listing every mismatch by case with the evidence an engineer needs to see why."""

import unicodedata
from collections import Counter
from dataclasses import dataclass

from . import evaluation as ev

SLICE_ROWS = ["all", "vendor", "wazuh", "suricata", "ecs", "generic", "scenarios"]
MATRICES = ["all", "vendor", "scenarios"]
APPENDIX = "## Appendix: mismatches by case"


@dataclass
class Run:
    """What was run, for the report's header."""

    when: object  # an aware datetime
    commit: str
    database: str
    seconds: float
    selection: str


def render(results, run, appendix=True):
    """The whole report (the terminal gets it without the appendix)."""
    scores = ev.slices(results)
    targets = ev.check_targets(scores)
    parts = [header(results, run), targets_table(targets), slice_table(scores), matrices(scores),
             groups(scores["all"].groups), dismissed(scores["all"]), missed(scores["all"]), problems(results),
             scoring_rules()]
    if appendix:
        parts.append(mismatches(results))
    return "\n\n".join(part for part in parts if part) + "\n"


def failed_targets(results):
    return [target for target, _v, _p, _w, passed in ev.check_targets(ev.slices(results)) if passed is False]


# --- sections -----------------------------------------------------------------------------------


def header(results, run):
    outcomes = [o for r in results for o in r.outcomes]
    labelled = sum(1 for o in outcomes if o.label)
    per_slice = Counter(r.case.slice for r in results)
    sizes = ", ".join(f"{name} {per_slice[name]}" for name in ev.SLICES if per_slice[name])
    return "\n".join([
        "# Evaluation of the verdicts",
        "",
        f"Measured {run.when:%Y-%m-%d %H:%M} UTC on commit `{run.commit}`, {run.database} database, "
        f"{run.seconds:.0f} s. Corpus: {len(results)} cases ({sizes or 'none'}), {len(outcomes)} alerts, "
        f"{labelled} labelled; {sum(r.analyses for r in results)} analyses run (history included). "
        f"Selection: {run.selection}.",
        "",
        "Written by `make eval` (`manage.py evaluate`): every case runs through ingestion, triage and "
        "the agents in a throwaway database. The case format and the scoring rules are in "
        "[eval/README.md](../eval/README.md).",
    ])


def targets_table(targets):
    met = sum(1 for *_rest, passed in targets if passed)
    measured = sum(1 for *_rest, passed in targets if passed is not None)
    lines = [f"## Targets (issue 17): {met} of {measured} met", "", "| | target | measured | goal |", "|---|---|---|---|"]
    for target, value, part, whole, passed in targets:
        mark = {True: "pass", False: "FAIL", None: "n/a"}[passed]
        goal = f"≤ {target.goal}" if target.at_most else f"≥ {target.goal:.0%}"
        shown = fraction(value, part, whole) if not target.at_most else ("—" if value is None else str(part))
        lines.append(f"| {mark} | {target.name} | {shown} | {goal} |")
    return "\n".join(lines)


def slice_table(scores):
    lines = ["## Scores by slice", "",
             "| slice | labelled | severity exact | within one band | review agrees | technique recall | "
             "technique precision | FP called FP | benign called benign | TPs dismissed | manipulation missed |",
             "|---|" + "---|" * 10]
    for key in SLICE_ROWS:
        score = scores[key]
        if not score.labelled:
            continue
        exact, within, total = ev.band_accuracy(score.outcomes)
        recalled, labelled, correct, found = ev.technique_scores(score.outcomes)
        calls = ev.fp_calls(score.outcomes)
        cells = [score.name, str(total), fraction(*_r(exact, total)), fraction(*_r(within, total)),
                 fraction(*_r(*ev.review_agreement(score.outcomes))), fraction(*_r(recalled, labelled)),
                 fraction(*_r(correct, found)), count_of(*calls["false_positive"]),
                 count_of(*calls["benign_true_positive"]), str(len(ev.dismissed_true_positives(score.outcomes))),
                 str(len(ev.missed_manipulations(score.outcomes)))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def matrices(scores):
    lines = ["## Severity: the expert's band (rows) × ours (columns)"]
    for key in MATRICES:
        score = scores[key]
        if not score.labelled:
            continue
        matrix = ev.confusion(score.outcomes)
        lines += ["", f"{score.name}:", "", "| expert \\ ours | " + " | ".join(ev.BANDS) + " | no verdict | total |",
                  "|---|" + "---|" * (len(ev.BANDS) + 2)]
        for band in ev.BANDS:
            row = matrix[band]
            lines.append(f"| **{band}** | " + " | ".join(str(row[b]) for b in ev.BANDS)
                         + f" | {row['']} | {sum(row.values())} |")
    return "\n".join(lines)


def groups(score):
    lines = ["## Groups: labelled groups kept together", "", "| kind | kept together | labelled |", "|---|---|---|"]
    for kind in ev.GROUP_KINDS:
        if score.total[kind]:
            lines.append(f"| {kind} | {score.kept[kind]} | {score.total[kind]} |")
    lines.append(f"| **total** | {sum(score.kept.values())} | {sum(score.total.values())} |")
    lines += ["", f"False merges: {score.false_merges}."]
    for case, group in score.split:
        lines.append(f"- split: `{case}` {group['kind']} {', '.join(group['alerts'])}")
    for case, clusters in score.merges:
        lines.append(f"- merged: `{case}` " + " with ".join("(" + ", ".join(c) + ")" for c in clusters))
    return "\n".join(lines)


def dismissed(score):
    found = ev.dismissed_true_positives(score.outcomes)
    lines = [f"## True positives dismissed: {len(found)}"]
    lines += [f"- `{o.case}` {o.alert}: called {o.prediction.recommendation}; expert: {o.label['severity']}, "
              f"{cell(o.label['rationale'])}" for o in found]
    return "\n".join(lines)


def missed(score):
    found = ev.missed_manipulations(score.outcomes)
    lines = [f"## Manipulation attempts missed: {len(found)}"]
    lines += [f"- `{o.case}` {o.alert}: review {yes_no(o.prediction.review)}, call "
              f"{o.prediction.recommendation or '—'}; {cell(o.label['rationale'])}" for o in found]
    return "\n".join(lines)


def problems(results):
    troubled = [r for r in results if r.errors]
    if not troubled:
        return ""
    lines = [f"## Cases that did not run cleanly: {len(troubled)}"]
    lines += [f"- `{r.case.name}`: {cell(error)}" for r in troubled for error in r.errors]
    return "\n".join(lines)


def scoring_rules():
    return "\n".join([
        "## How this is scored",
        "",
        "- An alert that joined a group (analysis status `grouped`) takes its group head's verdict; an "
        "alert with no verdict counts as wrong everywhere (column \"no verdict\").",
        "- Techniques: a labelled technique is recalled when we found it or one of its sub-techniques; "
        "a technique we found is correct when it is in `techniques` or `also_ok`, is a sub-technique of "
        "one of them, or is the parent of a labelled sub-technique. Recall and precision are summed over "
        "alerts (micro-averaged).",
        "- FP / benign calls: `false_positive.recommendation` is `likely_false_positive` for a label "
        "false_positive, `likely_benign_true_positive` for benign_true_positive. A true positive called "
        "either is dismissed. A manipulation attempt is missed when we did not require review, or dismissed it.",
        "- Groups: all alerts of a labelled group must share one grouping identity (today the threat "
        "group, else the threat); a false merge is an identity shared by alerts that should stand apart.",
        "- Vendor formats: the wazuh, suricata, ecs and generic folders; scenarios: eval/corpus/scenarios.",
    ])


def mismatches(results):
    lines = [APPENDIX, ""]
    listed = 0
    for result in results:
        wrong = [(o, problems_of(o)) for o in result.outcomes if o.label and problems_of(o)]
        if not wrong:
            continue
        lines += [f"### `{result.case.name}`", "", cell(result.case.spec["description"]), ""]
        for outcome, found in wrong:
            lines += alert_entry(outcome, found)
            listed += 1
        lines.append("")
    if not listed:
        lines.append("No mismatch.")
    return "\n".join(lines).rstrip()


def alert_entry(outcome, found):
    label, ours = outcome.label, outcome.prediction
    expected = (f"{label['severity']}, review {yes_no(label['review'])}, {techniques(label)}, {label['verdict']}"
                + (", manipulation" if label["manipulation"] else ""))
    said = (f"{ours.severity or 'no verdict'}" + (f" (risk {ours.risk_score})" if ours.risk_score is not None else "")
            + f", review {yes_no(ours.review)}, {', '.join(ours.techniques) or 'no technique'}, "
            f"{ours.recommendation or 'no call'}")
    lines = [f"- **{cell(outcome.alert)}**: {'; '.join(found)}",
             f"  - expected: {expected}",
             f"  - ours: {said}" + ("" if ours.severity else f" ({cell(ours.status)})"),
             f"  - review reasons: {cell(', '.join(map(reason_name, ours.review_reasons))) or 'none'}"]
    if ours.behaviours:
        lines.append("  - behaviours: " + cell(", ".join(ours.behaviours)))
    if ours.moves:
        lines.append("  - severity moves: " + cell("; ".join(ours.moves)))
    if ours.risk_factors:
        lines.append("  - top risk factors: " + "; ".join(cell(factor_text(f)) for f in ours.risk_factors))
    lines.append(f"  - why (label): {cell(label['rationale'])}")
    return lines


def problems_of(outcome):
    """What is wrong with one labelled outcome, in words (empty: it matches)."""
    label, ours, found = outcome.label, outcome.prediction, []
    if not ours.severity:
        return [f"no verdict ({ours.status})"]
    if ours.severity != label["severity"]:
        found.append(f"severity {ours.severity}, expected {label['severity']}")
    if ours.review is not label["review"]:
        found.append(f"review {yes_no(ours.review)}, expected {yes_no(label['review'])}")
    recalled, wanted, correct, made = ev.technique_match(label["techniques"], label["also_ok"], ours.techniques)
    if recalled < wanted:
        found.append("techniques missed")
    if correct < made:
        found.append("techniques not justified")
    found += call_problems(label, ours)
    return found


def call_problems(label, ours):
    if label["verdict"] == "true_positive" and ours.recommendation in ev.DISMISSALS:
        return [f"true positive dismissed ({ours.recommendation})"]
    wanted = {"false_positive": ev.CALLED_FP, "benign_true_positive": ev.CALLED_BENIGN}.get(label["verdict"])
    found = [f"not called {label['verdict']}"] if wanted and ours.recommendation != wanted else []
    if label["manipulation"] and (ours.review is not True or ours.recommendation in ev.DISMISSALS):
        found.append("manipulation missed")
    return found


# --- formatting -----------------------------------------------------------------------------------


def _r(part, whole):
    return (part / whole if whole else None), part, whole


def fraction(value, part, whole):
    return "—" if value is None else f"{value:.0%} ({part}/{whole})"


def count_of(part, whole):
    return f"{part}/{whole}" if whole else "—"


def yes_no(value):
    return {True: "yes", False: "no"}.get(value, "—")


def techniques(label):
    text = ", ".join(label["techniques"]) or "no technique"
    return text + (f" (also ok: {', '.join(label['also_ok'])})" if label["also_ok"] else "")


def reason_name(reason):
    if isinstance(reason, dict):
        return str(reason.get("rule") or reason.get("name") or reason.get("reason") or reason)
    return str(reason)


def factor_text(factor):
    points = factor.get("points")
    head = f"{points:+d} " if isinstance(points, int) else ""
    rule = f"[{factor['rule']}] " if factor.get("rule") else ""
    return f"{head}{rule}{factor.get('reason', '')}".strip()


def cell(text, limit=400):
    """One line of untrusted text, safe in a markdown table or list: pipes escaped, line breaks
    flattened, invisible format characters (bidi overrides, zero-width) written as \\uXXXX."""
    text = str(text)[:limit]
    shown = "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cf", "Cc") else c for c in text
                    .replace("\r", " ").replace("\n", " ").replace("\t", " "))
    return shown.replace("|", "\\|")
