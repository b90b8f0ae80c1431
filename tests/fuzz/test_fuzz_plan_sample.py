"""Fuzzed inputs to ``fedrec plan`` (workload JSON), ``plan evaluate`` (plan JSON) and ``fedrec
sample`` (interaction log), through the CLI contract only: these commands are owned elsewhere and
change; what is checked is that a damaged input ends in exit 0 with the promised files, or in
exit 2 with one line, no traceback and nothing written."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.harness import case_folder, check_contract, mutated, mutated_json, run_cli, skip_known
from tests.fuzz.test_fuzz_known_finds import KNOWN_PLAN, KNOWN_PLAN_EVALUATE

LOG = b"".join(b"u%d,i%d,%d,%d\n" % (i % 9, (i * 7) % 23, 1 + i % 5, 1000 + i) for i in range(120))


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """A valid workload (from ``data stats --workload``) and a plan for it."""
    folder = tmp_path_factory.mktemp("plan")
    (folder / "log.csv").write_bytes(LOG)
    workload, plan = folder / "w.json", folder / "plan.json"
    stats = run_cli(["data", "stats", str(folder / "log.csv"), "--format", "csv", "--workload", str(workload)], folder)
    assert stats.code == 0, stats.err
    made = run_cli(["plan", "--workload", str(workload), "--planner", "greedy", "--gpus", "2", "--out", str(plan)], folder)
    assert made.code == 0, made.err
    return json.loads(workload.read_text()), json.loads(plan.read_text())


@given(data=st.data())
def test_plan_with_a_fuzzed_workload_keeps_the_contract(planned, data):
    workload, _ = planned
    kind, content = data.draw(mutated_json(workload), label="workload mutation")
    with case_folder() as folder:
        src = folder / "w.json"
        src.write_bytes(content)
        argv = ["plan", "--workload", str(src), "--planner", "greedy", "--gpus", "2", "--out", str(folder / "plan.json")]
        run = run_cli(argv, folder)
        skip_known(run, KNOWN_PLAN)
        check_contract(run, ["plan.json"], argv)
        if run.code == 0:
            plan = json.loads((folder / "plan.json").read_text())
            assert isinstance(plan, dict) and plan.get("tables")


@given(data=st.data())
def test_plan_evaluate_with_a_fuzzed_plan_keeps_the_contract(planned, data):
    workload, plan = planned
    kind, content = data.draw(mutated_json(plan), label="plan mutation")
    with case_folder() as folder:
        (folder / "w.json").write_text(json.dumps(workload))
        (folder / "plan.json").write_bytes(content)
        argv = ["plan", "evaluate", "--plan", str(folder / "plan.json"), "--workload", str(folder / "w.json"),
                "--samples", "2000"]  # fmt: skip
        run = run_cli(argv, folder)
        skip_known(run, KNOWN_PLAN_EVALUATE)
        check_contract(run, [], argv)
        if run.code == 0:
            assert "max_gpu_ms" in json.loads(run.out.strip().splitlines()[-1])


@given(data=st.data())
def test_sample_with_a_fuzzed_log_keeps_the_contract(data):
    kind, content = data.draw(mutated(LOG, sep=b","), label="log mutation")
    rate = data.draw(st.sampled_from(["0.5", "1", "0", "1.5", "nan", "-0.2"]), label="rate")
    with case_folder() as folder:
        (folder / "log.csv").write_bytes(content)
        argv = ["sample", "--input", str(folder / "log.csv"), "--format", "csv", "--columns", "user,item,rating,timestamp",
                "--rate", rate, "--method", "random", "--out", str(folder / "s.parquet"),
                "--report", str(folder / "r.json")]  # fmt: skip
        run = run_cli(argv, folder)
        check_contract(run, ["r.json", "s.parquet"], argv)
