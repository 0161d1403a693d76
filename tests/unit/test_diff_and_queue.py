"""The write-avoiding comparison and the work queue."""

import asyncio

from berth_operator.controller.diff import contains
from berth_operator.workqueue import WorkQueue


def test_contains_ignores_server_added_fields_but_not_changes():
    observed = {"spec": {"replicas": 1, "strategy": {"type": "RollingUpdate"}}, "status": {"x": 1}}
    assert contains(observed, {"spec": {"replicas": 1}})
    assert not contains(observed, {"spec": {"replicas": 2}})
    assert contains({"a": [{"x": 1, "y": 2}]}, {"a": [{"x": 1}]})
    assert not contains({"a": [{"x": 1}, {"x": 2}]}, {"a": [{"x": 1}]})
    assert contains({}, {"gone": None}) and not contains({"gone": 5}, {"gone": None})
    assert not contains({"flag": 1}, {"flag": True})


def test_an_empty_list_or_map_matches_the_field_the_api_server_dropped():
    assert contains({"spec": {}}, {"spec": {"tolerations": [], "nodeSelector": {}}})
    assert not contains({"spec": {"tolerations": [{"key": "a"}]}}, {"spec": {"tolerations": []}})
    assert not contains({"spec": {}}, {"spec": {"tolerations": [{"key": "a"}]}})


def test_queue_deduplicates_and_retries_failures():
    async def scenario():
        queue = WorkQueue(max_backoff=0.05)
        seen: list[str] = []
        failed_once: set[str] = set()

        async def handle(key):
            seen.append(key)
            if key == "flaky" and key not in failed_once:
                failed_once.add(key)
                raise RuntimeError("transient")

        for key in ("a", "a", "flaky", "a"):
            queue.add(key)
        worker = asyncio.create_task(queue.run_worker(handle))
        for _ in range(100):
            await asyncio.sleep(0.01)
            if queue.idle and seen.count("flaky") == 2:
                break
        worker.cancel()
        return seen

    seen = asyncio.run(scenario())
    assert seen.count("a") == 1
    assert seen.count("flaky") == 2
