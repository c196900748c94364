"""Check hq_sweep.controller.wandb_hyperband against W&B's real engine, sweeps 0.3.0.

Random scenarios (eta small, fractional and huge; min_iter or max_iter + s; strict on, off or
defaulted; minimize, maximize or defaulted; runs in every state with histories of varied
lengths, many of exactly a milestone's length, some holding non-numbers) go to
``sweeps.stop_runs`` in a separate interpreter (JSON in, JSON out) and to ``should_stop``
here; the stop sets must be equal. Scenarios whose values are all floats (what Optuna stores:
NaN and infinities included) also go through WandbHyperbandPruner on a real Optuna study.

The oracle is a throwaway venv, outside the repo::

    python3 -m venv /tmp/sweeps030 && /tmp/sweeps030/bin/pip install sweeps==0.3.0
    .venv/bin/python scripts/check_wandb_hyperband.py /tmp/sweeps030/bin/python -n 4000

Exit status 1 on any mismatch. ``--write-golden PATH`` also writes a small covering set of
scenarios with the oracle's answers (tests/golden/wandb_hyperband_030.json is one).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from pydantic import ValidationError

from hq_sweep.controller.wandb_hyperband import WandbHyperbandPruner, is_number, should_stop
from hq_sweep.spec.sections import EarlyTerminate

Scenario = dict[str, Any]  # {"early_terminate", "goal", "runs": [[name, state, values]]}
Outcome = list[str] | str  # stopped names (sorted), "rejected", or "error: ..."

ORACLE = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
import sweeps
from sweeps import SweepRun, stop_runs
assert sweeps.__version__ == "0.3.0", sweeps.__version__
out = []
for case in json.load(sys.stdin):
    metric = {"name": "loss"}
    if case["goal"] is not None:
        metric["goal"] = case["goal"]
    config = {"method": "grid", "metric": metric, "parameters": {"a": {"values": [1]}},
              "early_terminate": {"type": "hyperband", **case["early_terminate"]}}
    runs = [SweepRun(name=name, state=state, history=[{"loss": v} for v in values])
            for name, state, values in case["runs"]]
    try:
        out.append(sorted(run.name for run in stop_runs(config, runs)))
    except Exception as exc:
        out.append(f"error: {type(exc).__name__}: {exc}")
json.dump(out, sys.stdout)
"""

ETAS: list[float | int | None] = [None, 2, 3, 4, 1.01, 1.1, 1.5, 2.5, math.e, 7.3,
                                  10, 50, 100.0, 1000, 1e4, 1e9, 2**40, 10**6]
STATES = ["running"] * 6 + ["finished", "failed", "crashed", "killed", "pending", "preempted",
                            "preempting"]
NON_NUMBERS: list[Any] = [None, True, False, "NaN", "1.5", "", math.nan, math.inf, -math.inf,
                          [1.0], {"x": 1}, 2**64, -(2**63) - 1]
ODD_NUMBERS: list[Any] = [2**63, -0.0, 1e308, -1e308, 5e-324, 0]

# Named boundary cases: checked on every run, always written to the golden fixture.
HANDMADE: dict[str, Scenario] = {
    "exactly_b_values_is_judged": {  # milestones [2, 4, ...]: r has exactly 2 values
        "early_terminate": {"min_iter": 2, "eta": 2}, "goal": None,
        "runs": [["f1", "finished", [1, 1]], ["f2", "finished", [1, 2]],
                 ["r", "running", [1, 9]]]},
    "milestone_b_is_the_bth_value": {  # wandb/sweeps' test_5runs_band1_stop_2
        "early_terminate": {"max_iter": 5, "eta": 2, "s": 2}, "goal": "minimize",
        "runs": [["a", "finished", [10, 9]], ["b", "running", [10, 10]],
                 ["c", "running", [10, 8, 8]], ["d", "running", [10, 7, 7]],
                 ["e", "finished", [10, 6, 6]]]},
    "large_eta_max_iter": {  # 100/50 = 2, then 0.04 < 1: milestones [2]; r = 1/50
        "early_terminate": {"max_iter": 100, "s": 3, "eta": 50}, "goal": None,
        "runs": [["a", "finished", [5, 1]], ["b", "running", [5, 3, 0]],
                 ["c", "running", [5, 1]], ["d", "running", [0]]]},
    "large_int_eta_min_iter": {  # milestones [1, 1000, ...]: only the first value matters
        "early_terminate": {"min_iter": 1, "eta": 1000, "strict": False}, "goal": "maximize",
        "runs": [["a", "running", [3, 9]], ["b", "running", [2]], ["c", "killed", [1]]]},
    "non_numbers_shift_positions": {  # r's history is [4, 1]; f's [2, 2]
        "early_terminate": {"min_iter": 2, "eta": 3}, "goal": None,
        "runs": [["r", "running", ["NaN", None, 4, True, math.nan, 1]],
                 ["f", "finished", [2, math.inf, 2, "2"]], ["g", "failed", [0, 0]],
                 ["h", "running", [[1.0], 5, {"x": 1}, 2**64, 9]]]},
    "strict_false_uses_the_best_so_far": {  # milestones [1, 3]; strict would stop r
        "early_terminate": {"max_iter": 9, "s": 2, "strict": False}, "goal": None,
        "runs": [["a", "finished", [5, 5, 1]], ["b", "finished", [5, 5, 2]],
                 ["r", "running", [0, 9, 9]], ["q", "running", [9, 9, 9]]]},
    "duplicate_milestones": {  # eta 1.1: milestones 1 (eight times), 2 (four), 3...
        "early_terminate": {"min_iter": 1, "eta": 1.1}, "goal": None,
        "runs": [["a", "running", [1.0, 2.0]], ["b", "running", [2.0, 1.0]],
                 ["c", "running", [3.0]], ["d", "finished", [0.0, 0.5]]]},
    "no_milestone_is_rejected": {  # 4/9 < 1 at once: W&B raises, hq-sweep refuses the spec
        "early_terminate": {"max_iter": 4, "s": 2, "eta": 9}, "goal": None,
        "runs": [["a", "running", [1, 2, 3]]]},
}


def oracle(python: str, scenarios: list[Scenario]) -> list[Outcome]:
    """sweeps.stop_runs on every scenario, in the oracle's interpreter."""
    done = subprocess.run([python, "-c", ORACLE], input=json.dumps(scenarios),
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"oracle failed:\n{done.stderr}")
    result: list[Outcome] = json.loads(done.stdout)
    return result


def rule_of(scenario: Scenario) -> EarlyTerminate | None:
    try:
        return EarlyTerminate.model_validate({"type": "hyperband",
                                              **scenario["early_terminate"]})
    except ValidationError:
        return None


def ours(scenario: Scenario) -> Outcome:
    rule = rule_of(scenario)
    if rule is None:
        return "rejected"
    runs = scenario["runs"]
    stop = should_stop({name: values for name, _, values in runs},
                       [name for name, state, _ in runs if state == "running"],
                       milestones=rule.milestones(), eta=rule.eta, strict=rule.strict,
                       maximize=scenario["goal"] == "maximize")
    return sorted(stop)


def float_only(scenario: Scenario) -> bool:
    """Values Optuna could hold as intermediate values (floats, NaN and inf included)."""
    return all(type(v) is float for _, _, values in scenario["runs"] for v in values)


def through_pruner(scenario: Scenario, rng: random.Random) -> Outcome:
    """The stop set WandbHyperbandPruner gives on an Optuna study holding the same runs."""
    rule = rule_of(scenario)
    if rule is None:
        return "rejected"
    maximize = scenario["goal"] == "maximize"
    pruner = WandbHyperbandPruner(rule, maximize=maximize)
    study = optuna.create_study(direction="maximize" if maximize else "minimize", pruner=pruner)
    done = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]
    for index, (_, state, values) in enumerate(scenario["runs"]):
        steps = sorted(rng.sample(range(3 * len(values) + 1), len(values)))  # gaps: order only
        trial_state = TrialState.RUNNING if state == "running" else done[index % 3]
        study.add_trial(create_trial(
            state=trial_state, params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)},
            intermediate_values=dict(zip(steps, values, strict=True)),
            value=0.0 if trial_state == TrialState.COMPLETE else None))
    names = [name for name, _, _ in scenario["runs"]]
    return sorted(names[t.number] for t in study.get_trials(deepcopy=False)
                  if t.state == TrialState.RUNNING and pruner.prune(study, t))


def random_rule(rng: random.Random) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    if rng.random() < 0.5:
        rule["min_iter"] = rng.randint(1, 8)
    eta = rng.choice(ETAS)
    if eta is not None:
        rule["eta"] = eta
    if "min_iter" not in rule or rng.random() < 0.1:  # both: W&B and hq-sweep use max_iter
        rule["max_iter"], rule["s"] = rng.randint(1, 300), rng.randint(1, 6)
        if (eta or 3) >= 10 and rng.random() < 0.7:  # else a large eta leaves no milestone
            rule["max_iter"] = int(rng.randint(1, 60) * (eta or 3) ** rng.randint(1, 3))
    strict = rng.choice([True, False, None])
    if strict is not None:
        rule["strict"] = strict
    return rule


def milestones_for(rule: dict[str, Any]) -> list[int]:
    """The milestones W&B's loop gives, up to 80 (runs here are never longer), for sizing."""
    eta, bands = rule.get("eta", 3), []
    if "max_iter" in rule:
        band: float = rule["max_iter"]
        for _ in range(rule["s"]):
            band /= eta
            if band < 1:
                break
            bands.append(int(band))
        return sorted(b for b in bands if b <= 80)
    band = rule["min_iter"]
    while band <= 80:
        bands.append(int(band))
        band *= eta
    return bands


def random_values(rng: random.Random, length: int, style: str, junk: float) -> list[Any]:
    """``length`` numbers (ties likely) with non-numbers mixed in at rate ``junk``."""
    values: list[Any] = []
    for _ in range(length):
        while rng.random() < junk:
            values.append(rng.choice(NON_NUMBERS[6:9]) if style == "float"
                          else rng.choice(NON_NUMBERS))
        number: Any = rng.choice([rng.randint(0, 5), round(rng.uniform(0, 5), 1),
                                  rng.uniform(-10, 10)])
        if style != "float" and rng.random() < 0.03:
            number = rng.choice(ODD_NUMBERS)
        values.append(float(number) if style == "float" else number)
    return values


def random_scenario(rng: random.Random) -> Scenario:
    rule = random_rule(rng)
    bands = milestones_for(rule) or [rng.randint(1, 6)]
    style = "float" if rng.random() < 0.4 else "any"
    junk = rng.choice([0.0, 0.0, 0.1, 0.3])
    runs = []
    for index in range(rng.randint(1, 12)):
        band = rng.choice(bands[:6])
        length = rng.choice([band - 1, band, band, band + 1, band + 2,
                             rng.randint(0, min(bands[-1], 80) + 3)])
        runs.append([f"r{index}", rng.choice(STATES),
                     random_values(rng, max(length, 0), style, junk)])
    return {"early_terminate": rule, "goal": rng.choice(["minimize", "maximize", None]),
            "runs": runs}


def judge(scenario: Scenario, want: Outcome, rng: random.Random) -> tuple[str, Outcome]:
    """("agree" | "both reject" | "W&B overflow" | "mismatch" | "pruner mismatch", ours)."""
    got = ours(scenario)
    if isinstance(want, str):
        if want.startswith("error: ValueError: Bands must be") and got == "rejected":
            return "both reject", got
        if want.startswith("error: OverflowError") and "max_iter" not in scenario[
                "early_terminate"] and got != "rejected":
            # W&B's min_iter loop does int(inf) once min_iter*eta^k overflows a float (a
            # huge float eta); hq-sweep stops listing milestones there instead.
            return "W&B overflow", got
        return "mismatch", got
    if got != want:
        return "mismatch", got
    if float_only(scenario):
        via_pruner = through_pruner(scenario, rng)
        if via_pruner != want:
            return "pruner mismatch", via_pruner
    return "agree", got


def tags(scenario: Scenario, want: Outcome) -> set[str]:
    """What boundary a scenario exercises (for picking a covering golden set)."""
    rule, runs = scenario["early_terminate"], scenario["runs"]
    bands, eta = milestones_for(rule), rule.get("eta", 3)
    counts = {name: sum(map(is_number, values)) for name, state, values in runs
              if state == "running"}
    found = {
        "exact_b": any(count in bands for count in counts.values()),
        "exact_b_stopped": isinstance(want, list) and any(counts[n] in bands for n in want),
        "small_eta": 2 <= eta <= 4, "fractional_eta": eta % 1 != 0, "large_eta": eta >= 10,
        "duplicate_milestones": len(set(bands)) < len(bands),
        "non_numbers": any(not is_number(v) for _, _, values in runs for v in values),
        "strict_false": rule.get("strict") is False, "strict_default": "strict" not in rule,
        "maximize": scenario["goal"] == "maximize", "goal_default": scenario["goal"] is None,
        "min_iter": "max_iter" not in rule, "max_iter": "max_iter" in rule,
        "both_forms": "max_iter" in rule and "min_iter" in rule,
        "float_only": float_only(scenario), "rejected": not isinstance(want, list),
        "stops_some": isinstance(want, list) and bool(want), "stops_none": want == [],
    }
    return {tag for tag, present in found.items() if present}


def small(scenario: Scenario) -> bool:
    runs = scenario["runs"]
    return len(runs) <= 8 and all(len(values) <= 16 for _, _, values in runs)


def golden(cases: list[tuple[Scenario, Outcome]], per_tag: int) -> list[dict[str, Any]]:
    """Small scenarios until each tag has ``per_tag`` of them, those that stop someone first."""
    picked: dict[int, set[str]] = {}
    tagged = [(index, tags(s, want)) for index, (s, want) in enumerate(cases)
              if small(s) and (isinstance(want, list) or "Bands must be" in want)]
    tagged.sort(key=lambda item: "stops_some" not in item[1])  # stable: then by index
    for tag in sorted({tag for _, found in tagged for tag in found}):
        fresh = (item for item in tagged if tag in item[1] and item[0] not in picked)
        wanted = 3 if tag == "rejected" else per_tag  # a refused spec needs few examples
        missing = wanted - sum(tag in found for found in picked.values())
        for index, found in itertools.islice(fresh, max(missing, 0)):
            picked[index] = found
    return [{"id": f"case{index}", "tags": sorted(found), **cases[index][0],
             "expected": cases[index][1] if isinstance(cases[index][1], list) else "rejected"}
            for index, found in sorted(picked.items())]


def write_golden(args: argparse.Namespace, cases: list[dict[str, Any]]) -> None:
    """One case a line (NaN and Infinity as Python's json writes them)."""
    made_by = (f"scripts/check_wandb_hyperband.py ORACLE_PYTHON -n {args.scenarios} --seed "
               f"{args.seed} --per-tag {args.per_tag} --write-golden {args.write_golden}")
    head = {"oracle": "sweeps 0.3.0 sweeps.stop_runs, metric 'loss'", "made_by": made_by}
    lines = [f" {json.dumps(key)}: {json.dumps(value)}," for key, value in head.items()]
    body = ",\n".join(f"  {json.dumps(case)}" for case in cases)
    args.write_golden.write_text("{\n" + "\n".join(lines) + f'\n "cases": [\n{body}\n ]\n}}\n')


def compare(scenarios: list[Scenario], wanted: list[Outcome], rng: random.Random,
            show: int) -> Counter[str]:
    """Judge every scenario; print the first ``show`` mismatches."""
    verdicts: Counter[str] = Counter()
    for scenario, want in zip(scenarios, wanted, strict=True):
        verdict, got = judge(scenario, want, rng)
        verdicts[verdict] += 1
        if "mismatch" in verdict and verdicts["mismatch"] + verdicts["pruner mismatch"] <= show:
            print(f"{verdict}: oracle {want!r}, ours {got!r}\n  {json.dumps(scenario)}")
    return verdicts


def golden_cases(scenarios: list[Scenario], wanted: list[Outcome],
                 per_tag: int) -> list[dict[str, Any]]:
    """The named cases, then a covering pick of the random ones, with the oracle's answers."""
    named = []
    for (name, case), want in zip(HANDMADE.items(), wanted, strict=False):
        expected = want if isinstance(want, list) else "rejected"  # "Bands must be ..."
        named.append({"id": name, "tags": sorted(tags(case, want)), **case,
                      "expected": expected})
    randoms = list(zip(scenarios, wanted, strict=True))[len(HANDMADE):]
    return named + golden(randoms, per_tag)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("oracle_python", help="python of a venv with sweeps==0.3.0")
    parser.add_argument("-n", "--scenarios", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=5, help="mismatches to print")
    parser.add_argument("--write-golden", type=Path, help="write a covering fixture here")
    parser.add_argument("--per-tag", type=int, default=12)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(args.seed)
    scenarios = [*HANDMADE.values(), *(random_scenario(rng) for _ in range(args.scenarios))]
    wanted = oracle(args.oracle_python, scenarios)
    verdicts = compare(scenarios, wanted, rng, args.show)
    mismatches = verdicts["mismatch"] + verdicts["pruner mismatch"]
    via_pruner = sum(float_only(s) for s, w in zip(scenarios, wanted, strict=True)
                     if isinstance(w, list))
    print(f"{len(scenarios)} scenarios ({len(HANDMADE)} named, seed {args.seed}): "
          f"{dict(sorted(verdicts.items()))}; {via_pruner} also through the Optuna pruner; "
          f"{mismatches} mismatches")
    if args.write_golden:
        cases = golden_cases(scenarios, wanted, args.per_tag)
        write_golden(args, cases)
        print(f"wrote {len(cases)} cases to {args.write_golden}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
