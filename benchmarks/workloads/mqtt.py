"""P4: MQTT QoS 1 ingest of 100-point messages through the embedded broker.

Four publishers (each its own thing, device token and connection; 20 messages in flight each)
publish to ``tb/things/{tid}/properties/{pid}``; the embedded broker acknowledges each message
only after its samples are committed, so acknowledged samples per second is the committed rate.
The reference is the same load against a stock amqtt 0.12.1 broker that acknowledges on receipt
and stores nothing: the ceiling of the broker library on this machine.

``P4-mosquitto`` (the same through an external Mosquitto, >= 100k/s) stays ``todo`` until the
external broker mode exists.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from benchmarks.context import Context
from benchmarks.core import Row, median, rate, workload
from benchmarks.mqttload import (
    MqttLoadResult,
    MqttLoadSpec,
    PublisherSpec,
    run_mqtt_load,
    stock_broker,
)
from benchmarks.workloads.ingest import _thread_shares

PUBLISHERS = 4
POINTS = 100  # samples per message
IN_FLIGHT = 20
STEP_MS = 1000
DAY_MS = 86_400_000
TARGET_RATE = 30_000.0  # committed samples/s through the embedded broker (performance.md P4)
DEADLINE_S = 120.0


def _check(run: int, result: MqttLoadResult, what: str) -> None:
    if not result.ok:
        raise RuntimeError(
            f"run {run} ({what}): {result.acked_total} messages acknowledged; {result.errors[:3]}"
        )


@workload("P4")
def mqtt_ingest_embedded(ctx: Context) -> Row:
    server = ctx.server()
    mode = ctx.mode
    warm, timed = mode.mqtt_warmup_messages, mode.mqtt_messages_per_publisher
    t0_ms = (int(time.time()) // 86_400) * DAY_MS - 60 * DAY_MS
    tb_rates: list[float] = []
    ref_rates: list[float] = []
    runs: list[dict[str, Any]] = []
    with stock_broker(ctx.workdir / "stock-amqtt.log") as stock_port:
        for run in range(mode.runs):
            targets = server.new_targets(PUBLISHERS, f"p4-{run}")
            publishers = [
                PublisherSpec(
                    username=t.thing_id,
                    password=server.device_token(t.thing_id),
                    topic=f"tb/things/{t.thing_id}/properties/{t.property_id}",
                    t0_ms=t0_ms,
                    step_ms=STEP_MS,
                )
                for t in targets
            ]
            spec = MqttLoadSpec(
                port=server.mqtt_port,
                publishers=publishers,
                messages_per_publisher=timed,
                points=POINTS,
                warmup_messages=warm,
                in_flight=IN_FLIGHT,
                seed=run + 1,
                deadline_s=DEADLINE_S,
            )
            cpu_before, threads_before = server.cpu_seconds(), server.thread_cpu()
            result = run_mqtt_load(spec)
            server_cpu = server.cpu_seconds() - cpu_before
            threads = _thread_shares(threads_before, server.thread_cpu(), server.pid, server_cpu)
            _check(run, result, "embedded broker")
            acked = result.acked_total * POINTS
            stored = server.stored_samples(server.series_ids(targets))
            if stored != acked:
                raise RuntimeError(f"run {run}: {stored} samples stored, {acked} acknowledged")
            tb_rates.append(result.samples_per_s)

            # The same messages to the stock broker (it ignores the credentials).
            reference = run_mqtt_load(replace(spec, port=stock_port))
            _check(run, reference, "stock amqtt")
            ref_rates.append(reference.samples_per_s)
            runs.append(
                {
                    "thingbucket_samples_per_s": result.samples_per_s,
                    "thingbucket_messages_per_s": result.messages_per_s,
                    "reference_samples_per_s": reference.samples_per_s,
                    "reference_messages_per_s": reference.messages_per_s,
                    "samples": result.samples,
                    "elapsed_s": result.elapsed_s,
                    "stored_samples": stored,
                    "acknowledged_samples": acked,
                    "server_cpu_core_share": server_cpu / (acked / result.samples_per_s),
                    "server_cpu_split": threads,
                    "loadgen_cpu_core_share": result.cpu_s / result.elapsed_s,
                    "generate_s": result.generate_s,
                }
            )
    tb, ref = median(tb_rates), median(ref_rates)
    server_share = median([r["server_cpu_core_share"] for r in runs])
    main_share = median([r["server_cpu_split"]["main"] for r in runs])
    busiest_share = median([r["server_cpu_split"]["busiest_other"] for r in runs])
    load_share = median([r["loadgen_cpu_core_share"] for r in runs])
    notes = [
        f"{median([r['thingbucket_messages_per_s'] for r in runs]):.0f} messages/s "
        f"({PUBLISHERS} publishers x {IN_FLIGHT} in flight, {timed} timed messages each); "
        f"stock amqtt {median([r['reference_messages_per_s'] for r in runs]):.0f} messages/s",
        f"server CPU {server_share:.0%} of one core (event-loop thread {main_share:.0%} of it, "
        f"busiest other thread {busiest_share:.0%}), load generator {load_share:.0%}",
        "reference: stock amqtt 0.12.1, ack on receipt, nothing stored (the broker's ceiling); "
        "stored = acknowledged samples in every run",
    ]
    return Row(
        id="P4",
        workload=f"MQTT QoS 1 ingest, {POINTS}-point messages, embedded",
        thingbucket=rate(tb),
        reference=f"{rate(ref)} stock amqtt",
        ratio=tb / ref,
        target=f">= {rate(TARGET_RATE)} committed",
        status="pass" if tb >= TARGET_RATE else "fail",
        notes=notes,
        data={
            "unit": "samples/s",
            "thingbucket": tb,
            "reference": ref,
            "samples_per_run": timed * PUBLISHERS * POINTS,
            "runs": runs,
        },
    )
