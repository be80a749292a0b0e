"""The receiver over real HTTP with a real Kafka: answers, records, refusals."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from ingest.envelope import KNOWN_HOOKS
from tests.ingest.conftest import ReadTopic, running_receiver, sample, sample_hooks
from wcs_audit.settings import Settings

pytestmark = pytest.mark.kafka

JSON_TYPE = {"Content-Type": "application/json;charset=UTF-8"}


def headers_of(record: object) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}  # type: ignore[attr-defined]


async def test_every_sample_is_echoed_and_lands_in_kafka_byte_identical(
    receiver: str,
    client: httpx.AsyncClient,
    read_topic: ReadTopic,
    receiver_settings: Settings,
) -> None:
    hooks = sample_hooks()
    before_us = time.time_ns() // 1000
    for hook in hooks:
        answer = await client.post(
            f"{receiver}/apps/wcs/{hook}", content=sample(hook), headers=JSON_TYPE
        )
        assert answer.status_code == 200, (hook, answer.text)
        assert answer.content == sample(hook), hook
    after_us = time.time_ns() // 1000

    records = await read_topic(receiver_settings.topic, len(hooks))
    assert len(records) == len(hooks)
    by_hook = {headers_of(r)["hook"]: r for r in records}
    assert sorted(by_hook) == hooks
    for hook, record in by_hook.items():
        body = json.loads(sample(hook))
        meta = headers_of(record)
        secretless = hook not in {
            "connect",
            "ConnectionStatusEvent",
            "RegistrationStatusEvent",
            "publishStream",
            "playStream",
        }
        if secretless:
            assert record.value == sample(hook), hook
        assert record.key == body["sessionId"].encode()
        assert meta["schema"] == "1"
        assert meta["hook-known"] == "1"
        assert meta["node-id"] == body["nodeId"]
        assert meta["remote-addr"] == "127.0.0.1"
        assert before_us <= int(meta["received-at"]) <= after_us
        assert uuid.UUID(meta["event-id"]).version == 7
        assert meta["body-hash"] == hashlib.sha256(hook.encode() + b"\n" + record.value).hexdigest()
    event_ids = [headers_of(r)["event-id"] for r in records]
    assert len(set(event_ids)) == len(records)


async def test_secrets_are_redacted_in_kafka_and_echoed_unchanged(
    receiver: str,
    client: httpx.AsyncClient,
    read_topic: ReadTopic,
    receiver_settings: Settings,
) -> None:
    body = sample("connect")
    answer = await client.post(f"{receiver}/apps/wcs/connect", content=body, headers=JSON_TYPE)
    assert answer.content == body  # WCS gets back exactly what it sent

    [record] = await read_topic(receiver_settings.topic, 1)
    assert b"s3cret-1001" not in record.value
    assert b"eyJhbGciOiJIUzI1NiJ9" not in record.value
    assert headers_of(record)["redacted"] == "sipPassword,token"
    expected = body.replace(b'"s3cret-1001"', b'"[REDACTED]"').replace(
        b'"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTc3In0.c2lnbmF0dXJl"', b'"[REDACTED]"'
    )
    assert record.value == expected  # every other byte as WCS sent it


async def test_unknown_well_formed_hook_is_accepted_and_marked(
    receiver: str,
    client: httpx.AsyncClient,
    read_topic: ReadTopic,
    receiver_settings: Settings,
) -> None:
    assert "RecordingStatusEvent" not in KNOWN_HOOKS
    body = b'{"nodeId":"n1","sessionId":"s1","mediaSessionId":"m1","status":"STARTED"}'
    answer = await client.post(
        f"{receiver}/x/RecordingStatusEvent", content=body, headers=JSON_TYPE
    )
    assert (answer.status_code, answer.content) == (200, body)
    [record] = await read_topic(receiver_settings.topic, 1)
    assert headers_of(record)["hook"] == "RecordingStatusEvent"
    assert headers_of(record)["hook-known"] == "0"
    assert record.key == b"s1"


async def test_key_falls_back_to_node_id(
    receiver: str,
    client: httpx.AsyncClient,
    read_topic: ReadTopic,
    receiver_settings: Settings,
) -> None:
    await client.post(f"{receiver}/StreamsStatEvent", content=b'{"nodeId":"node-7"}')
    [record] = await read_topic(receiver_settings.topic, 1)
    assert record.key == b"node-7"


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "status", "reason"),
    [
        ("POST", "/apps/wcs/connect", b'{"nodeId": ', "application/json", 400, "invalid JSON"),
        ("POST", "/apps/wcs/connect", b"[1, 2]", "application/json", 400, "JSON object"),
        ("POST", "/apps/wcs/connect", b"\xff\xfe{}", "application/json", 400, "invalid JSON"),
        ("POST", "/apps/wcs/connect", b'{"a": 1}', "text/plain", 415, "not JSON"),
        (
            "POST",
            "/apps/wcs/connect",
            b'{"pad": "' + b"x" * 5000 + b'"}',
            "application/json",
            413,
            "larger than",
        ),
        ("GET", "/apps/wcs/connect", b"", None, 405, "not allowed"),
        ("PUT", "/apps/wcs/publishStream", b"{}", "application/json", 405, "not allowed"),
        ("POST", "/apps/wcs/", b"{}", "application/json", 404, "no hook name"),
        ("POST", "/apps/wcs/9lives", b"{}", "application/json", 404, "no hook name"),
    ],
)
async def test_bad_input_gets_a_clear_4xx_and_is_kept(
    receiver_settings: Settings,
    client: httpx.AsyncClient,
    read_topic: ReadTopic,
    method: str,
    path: str,
    body: bytes,
    content_type: str | None,
    status: int,
    reason: str,
) -> None:
    settings = receiver_settings.replace(max_body_bytes=4096, rejected_keep_bytes=1000)
    async with running_receiver(settings) as url:
        headers = {"Content-Type": content_type} if content_type else {}
        answer = await client.request(method, url + path, content=body, headers=headers)
        assert answer.status_code == status
        assert reason in answer.text
        assert answer.text.count("\n") == 1  # one line
        if status == 405:
            assert answer.headers["allow"] == "POST"
        healthy = await client.get(f"{url}/healthz")  # the receiver is still well
        assert healthy.status_code == 200

    [kept] = await read_topic(settings.rejected_topic, 1)
    meta = headers_of(kept)
    assert meta["status"] == str(status)
    assert reason in meta["error"]
    assert (meta["method"], meta["path"]) == (method, path)
    assert kept.value == body[:1000]
    assert meta["truncated"] == ("1" if len(body) > 1000 else "0")
    assert await read_topic(settings.topic, 0) == []  # nothing reached the hook topic


async def test_connect_answer_carries_configured_rest_client_config(
    receiver_settings: Settings,
    client: httpx.AsyncClient,
    read_topic: ReadTopic,
) -> None:
    config = {
        "StreamKeepAliveEvent": {
            "restExclude": "sdp",
            "restOnError": "LOG",
            "restPolicy": "NOTIFY",
            "clientExclude": "",
            "restOverwrite": "",
        }
    }
    settings = receiver_settings.replace(connect_rest_client_config=config)
    async with running_receiver(settings) as url:
        connect = await client.post(f"{url}/apps/wcs/connect", content=sample("connect"))
        other = await client.post(f"{url}/apps/wcs/publishStream", content=sample("publishStream"))
    assert connect.json() == {**json.loads(sample("connect")), "restClientConfig": config}
    assert other.content == sample("publishStream")
    records = await read_topic(settings.topic, 2)
    assert all(b"restClientConfig" not in r.value for r in records)  # Kafka keeps what WCS sent


async def test_wcs_body_signature(
    receiver_settings: Settings,
    client: httpx.AsyncClient,
    read_topic: ReadTopic,
) -> None:
    key = "wcs-shared-key"
    body = sample("StreamStatusEvent")
    good = hmac.new(key.encode(), body, hashlib.md5).hexdigest()
    async with running_receiver(receiver_settings.replace(hmac_key=key)) as url:
        signed = await client.post(
            f"{url}/a/StreamStatusEvent", content=body, headers={"Authorization": f"WCS {good}"}
        )
        wrong = await client.post(
            f"{url}/a/StreamStatusEvent", content=body, headers={"Authorization": "WCS " + "0" * 32}
        )
        missing = await client.post(f"{url}/a/StreamStatusEvent", content=body)
        tampered = await client.post(
            f"{url}/a/StreamStatusEvent",
            content=body + b" ",
            headers={"Authorization": f"WCS {good}"},
        )
    assert [r.status_code for r in (signed, wrong, missing, tampered)] == [200, 403, 403, 403]
    assert len(await read_topic(receiver_settings.topic, 1)) == 1
    assert len(await read_topic(receiver_settings.rejected_topic, 3)) == 3


async def test_basic_auth(receiver_settings: Settings, client: httpx.AsyncClient) -> None:
    body = sample("hold")
    async with running_receiver(receiver_settings.replace(basic_auth="wcs:pa55")) as url:
        good = await client.post(f"{url}/a/hold", content=body, auth=("wcs", "pa55"))
        bad = await client.post(f"{url}/a/hold", content=body, auth=("wcs", "guess"))
        none = await client.post(f"{url}/a/hold", content=body)
    assert [r.status_code for r in (good, bad, none)] == [200, 401, 401]
    assert bad.headers["www-authenticate"].startswith("Basic")
    assert base64.b64decode(good.request.headers["authorization"][6:]) == b"wcs:pa55"


@pytest.mark.parametrize(
    ("cidrs", "status"), [(("10.0.0.0/8",), 403), (("10.0.0.0/8", "127.0.0.0/8"), 200)]
)
async def test_source_allow_list(
    receiver_settings: Settings, client: httpx.AsyncClient, cidrs: tuple[str, ...], status: int
) -> None:
    async with running_receiver(receiver_settings.replace(allow_cidrs=cidrs)) as url:
        answer = await client.post(f"{url}/a/unhold", content=sample("unhold"))
    assert answer.status_code == status


async def test_health_readiness_and_metrics(receiver: str, client: httpx.AsyncClient) -> None:
    await client.post(f"{receiver}/a/connect", content=sample("connect"))
    await client.post(f"{receiver}/a/connect", content=b"{")
    assert (await client.get(f"{receiver}/healthz")).status_code == 200
    ready = await client.get(f"{receiver}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"kafka": "direct", "spool_depth": 0}
    metrics = (await client.get(f"{receiver}/metrics")).text
    assert 'wcs_audit_ingest_requests_total{hook="connect",status="200"} 1.0' in metrics
    assert 'wcs_audit_ingest_requests_total{hook="connect",status="400"} 1.0' in metrics
    assert 'wcs_audit_ingest_rejected_total{reason="400"} 1.0' in metrics
    # two hooks and two probes were answered before this scrape
    assert "wcs_audit_ingest_request_seconds_count 4.0" in metrics
    assert 'wcs_audit_ingest_request_seconds_bucket{le="+Inf"} 4.0' in metrics
    assert "wcs_audit_ingest_spool_depth 0.0" in metrics


async def test_topics_are_created_at_start_up(
    receiver_settings: Settings, client: httpx.AsyncClient
) -> None:
    fresh = receiver_settings.replace(
        topic=receiver_settings.topic + ".fresh",
        rejected_topic=receiver_settings.topic + ".fresh.rejected",
        topic_partitions=4,
    )
    async with running_receiver(fresh) as url:
        assert (await client.post(f"{url}/a/hold", content=sample("hold"))).status_code == 200
    admin = AIOKafkaAdminClient(bootstrap_servers=fresh.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([fresh.topic, fresh.rejected_topic])
        await admin.delete_topics([fresh.topic, fresh.rejected_topic])
    finally:
        await admin.close()
    assert [len(topic["partitions"]) for topic in described] == [4, 4]


async def test_kafka_away_and_spool_full_is_503(
    receiver_settings: Settings, client: httpx.AsyncClient
) -> None:
    nowhere = receiver_settings.replace(kafka_bootstrap="127.0.0.1:1", spool_max_bytes=4000)
    async with running_receiver(nowhere) as url:
        statuses = [
            (await client.post(f"{url}/a/hold", content=sample("hold"))).status_code
            for _ in range(20)
        ]
        ready = await client.get(f"{url}/readyz")
    first_refusal = statuses.index(503)
    assert first_refusal > 0  # spooled while there was room ...
    assert set(statuses[:first_refusal]) == {200}
    assert set(statuses[first_refusal:]) == {503}  # ... then refused, never silently dropped
    assert ready.status_code == 503
    assert ready.json() == {"kafka": "spooling", "spool_depth": first_refusal}


async def test_client_hanging_up_mid_body_records_nothing(
    receiver: str,
    client: httpx.AsyncClient,
    read_topic: ReadTopic,
    receiver_settings: Settings,
) -> None:
    host, port = receiver.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /apps/wcs/connect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
        b"\r\nContent-Length: 500\r\n\r\n" + sample("connect")[:100]
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.2)
    assert (await client.get(f"{receiver}/healthz")).status_code == 200
    assert await read_topic(receiver_settings.topic, 0) == []
    assert await read_topic(receiver_settings.rejected_topic, 0) == []
