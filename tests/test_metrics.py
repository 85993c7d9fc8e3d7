"""Every metric API.md names is exported, with its labels, in Prometheus' own text format."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.support import USER, Bridge, Miro, connect, wait_for_job

# API.md "Metrics": family name (as the parser names it) and its label names.
CONTRACT = {
    "http_server_request_duration_seconds": {"method", "route", "status_code"},
    "http_server_active_requests": set(),
    "miro_api_requests": {"endpoint", "status_code"},
    "miro_api_request_duration_seconds": {"endpoint"},
    "miro_api_credits_remaining": set(),
    "miro_api_rate_limited": set(),
    "jobs_enqueued": {"kind"},
    "jobs_completed": {"kind", "outcome"},
    "job_attempts": {"kind"},
    "jobs_dead_lettered": {"kind"},
    "job_queue_depth": set(),
    "job_duration_seconds": {"kind"},
    "board_cache_requests": {"result"},
    "actor_restarts": {"actor"},
    "actor_mailbox_depth": {"actor"},
    "client_logs_ingested": set(),
    "webhook_events": {"outcome"},
    "store_commit_group_size": set(),  # a histogram: writes per transaction (issue 16)
}


async def test_every_contract_metric_after_real_traffic(bridge: Bridge, miro: Miro) -> None:
    await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    headers = {"X-User-Id": USER}
    await bridge.client.get(f"/api/cache/{board_id}", headers=headers)
    refresh = await bridge.client.post(f"/api/boards/{board_id}/shapes/refresh", headers=headers)
    assert (await wait_for_job(bridge, refresh.json()["jobId"]))["status"] == "done"
    await bridge.client.post(
        "/api/logs", json=[{"timestamp": "t", "level": "info", "message": "m"}]
    )
    await bridge.client.post("/api/webhook", json={"event": {"boardId": board_id, "id": "e1"}})

    text = (await bridge.client.get("/metrics")).text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name, labels in CONTRACT.items():
        assert name in families, name
        samples = families[name].samples
        assert samples, name
        for sample in samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample.labels)
            assert board_id not in str(sample.labels), name
            assert USER not in str(sample.labels), name
