"""What the fuzz suite found in ``sharding`` (plan, plan evaluate), kept as one small regression
case each that must keep the CLI contract. All are fixed; the property tests' skip lists
(``harness.skip_known``) are empty, so a new find there fails them. A new find outside a suite's
scope goes into these lists with an ``xfail(strict=True)`` case here until its owner fixes it."""

from __future__ import annotations

import json

from tests.fuzz.harness import case_folder, check_contract, run_cli

KNOWN_PLAN: dict[tuple[str, str], str] = {}  # (exception type, innermost repository file) -> trigger
KNOWN_PLAN_EVALUATE: dict[tuple[str, str], str] = {}

WORKLOAD = {"tables": [{"name": "user", "rows": 10, "dim": 8, "bytes_per_value": 4, "pooling_factor": 1.0,
                        "coverage": 1.0, "access_cdf": [[0.0, 0.0], [0.5, 0.8], [1.0, 1.0]]}]}  # fmt: skip


def _plan(folder, workload: dict | bytes, out="plan.json"):
    src = folder / "w.json"
    src.write_bytes(workload if isinstance(workload, bytes) else json.dumps(workload).encode())
    argv = ["plan", "--workload", str(src), "--planner", "greedy", "--gpus", "2", "--out", str(folder / out)]
    return argv, run_cli(argv, folder)


def _evaluate(folder, plan_text: bytes):
    (folder / "w.json").write_text(json.dumps(WORKLOAD))
    (folder / "plan.json").write_bytes(plan_text)
    argv = ["plan", "evaluate", "--plan", str(folder / "plan.json"), "--workload", str(folder / "w.json"), "--samples", "100"]
    return argv, run_cli(argv, folder)


def _valid_plan(folder) -> dict:
    _, run = _plan(folder, WORKLOAD, "valid.json")
    assert run.code == 0, run.err
    plan = json.loads((folder / "valid.json").read_text())
    (folder / "valid.json").unlink()
    return plan


def test_plan_binary_workload():
    with case_folder() as folder:
        argv, run = _plan(folder, b"\x7fELF\x02\x01\x01\x00\xbc\x82\xff")
        check_contract(run, ["plan.json"], argv)


def test_plan_workload_with_an_integer_past_64_bits():
    with case_folder() as folder:
        argv, run = _plan(folder, {"tables": [{**WORKLOAD["tables"][0], "rows": 10**30}]})
        check_contract(run, ["plan.json"], argv)


def test_plan_out_into_a_new_folder():
    with case_folder() as folder:
        argv, run = _plan(folder, WORKLOAD, out="new/plan.json")
        check_contract(run, ["new/plan.json"], argv)


def test_plan_evaluate_binary_plan():
    with case_folder() as folder:
        argv, run = _evaluate(folder, b"\x00\xff\xfe binary")
        check_contract(run, [], argv)


def test_plan_evaluate_plan_that_is_not_an_object():
    with case_folder() as folder:
        argv, run = _evaluate(folder, b"[1, 2]")
        check_contract(run, [], argv)


def test_plan_evaluate_topology_with_a_null_number():
    with case_folder() as folder:
        plan = _valid_plan(folder)
        plan["topology"]["gpus"] = None
        argv, run = _evaluate(folder, json.dumps(plan).encode())
        check_contract(run, [], argv)


def test_plan_evaluate_plan_with_infinity():
    with case_folder() as folder:
        plan = _valid_plan(folder)
        plan["tables"][0]["hbm_rows"] = "__INF__"
        argv, run = _evaluate(folder, json.dumps(plan).replace('"__INF__"', "Infinity").encode())
        check_contract(run, [], argv)
