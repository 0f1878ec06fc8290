"""P4: MQTT QoS 1 ingest of 100-point messages through the embedded broker.

Four publishers (each its own thing, device token and connection; 20 messages in flight each)
publish to ``tb/things/{tid}/properties/{pid}``; the embedded broker acknowledges each message
only after its samples are committed, so acknowledged samples per second is the committed rate.
The reference is the same load against a stock amqtt 0.12.1 broker that acknowledges on receipt
and stores nothing: the ceiling of the broker library on this machine.

``P4-mosquitto``: the same load through a private Mosquitto 2.0 (dynamic security plugin, started
by the benchmark on a free loopback port), with a second server of its own in external broker
mode (``--mqtt-url``, device tokens provisioned into Mosquitto). Mosquitto acknowledges on
receipt, so the load generator also polls the server's committed-samples counter (``/metrics``):
the rate runs from the first timed publish until every timed sample is committed. The reference
is the same messages, same load generator, same broker, to a topic under each thing's prefix that
no one subscribes to (Mosquitto alone: ack on receipt, nothing forwarded or stored). Without
Mosquitto or its dynsec plugin the row is ``skipped``.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

from benchmarks import mosquitto
from benchmarks.context import Context
from benchmarks.core import Row, median, rate, workload
from benchmarks.mqttload import (
    MqttLoadResult,
    MqttLoadSpec,
    PublisherSpec,
    run_mqtt_load,
    stock_broker,
)
from benchmarks.server import ExternalBroker, Server, Target, running_server
from benchmarks.workloads.ingest import _thread_shares

PUBLISHERS = 4
POINTS = 100  # samples per message
IN_FLIGHT = 20
STEP_MS = 1000
DAY_MS = 86_400_000
TARGET_RATE = 30_000.0  # committed samples/s through the embedded broker (performance.md P4)
MOSQUITTO_TARGET_RATE = 100_000.0  # committed samples/s through the external Mosquitto
DEADLINE_S = 120.0
POLL_INTERVAL_S = 0.005  # shortest pause between /metrics polls once the last PUBACK is in


def _check(run: int, result: MqttLoadResult, what: str) -> None:
    if not result.ok:
        raise RuntimeError(
            f"run {run} ({what}): {result.acked_total} messages acknowledged; {result.errors[:3]}"
        )


def _first_ts_ms() -> int:
    return (int(time.time()) // 86_400) * DAY_MS - 60 * DAY_MS


def _publishers(server: Server, targets: list[Target], t0_ms: int) -> list[PublisherSpec]:
    """One publisher per target: username = thing id, password = a new device token."""
    return [
        PublisherSpec(
            username=t.thing_id,
            password=server.device_token(t.thing_id),
            topic=f"tb/things/{t.thing_id}/properties/{t.property_id}",
            t0_ms=t0_ms,
            step_ms=STEP_MS,
        )
        for t in targets
    ]


@workload("P4")
def mqtt_ingest_embedded(ctx: Context) -> Row:
    server = ctx.server()
    mode = ctx.mode
    warm, timed = mode.mqtt_warmup_messages, mode.mqtt_messages_per_publisher
    t0_ms = _first_ts_ms()
    tb_rates: list[float] = []
    ref_rates: list[float] = []
    runs: list[dict[str, Any]] = []
    with stock_broker(ctx.workdir / "stock-amqtt.log") as stock_port:
        for run in range(mode.runs):
            targets = server.new_targets(PUBLISHERS, f"p4-{run}")
            publishers = _publishers(server, targets, t0_ms)
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


def _ingest_pauses(server: Server) -> int:
    """How often the server's MQTT ingest client has stopped (logged ``MQTT ingest paused``:
    the writer refused with ``Overloaded``, so the client drops the connection and comes back
    ``RECONNECT_S`` later to get the unacknowledged messages again)."""
    try:
        return server.log_path.read_text(errors="replace").count("MQTT ingest paused")
    except OSError:
        return 0


def _skipped(why: str) -> Row:
    return Row(
        id="P4-mosquitto",
        workload=f"MQTT QoS 1 ingest, {POINTS}-point messages, Mosquitto",
        thingbucket="skipped",
        reference="-",
        ratio=None,
        target=f">= {rate(MOSQUITTO_TARGET_RATE)} committed",
        status="skipped",
        notes=[f"skipped: {why}"],
    )


@workload("P4-mosquitto")
def mqtt_ingest_mosquitto(ctx: Context) -> Row:
    why = mosquitto.missing()
    if why is not None:
        return _skipped(why)
    mode = ctx.mode
    warm, timed = mode.mqtt_warmup_messages, mode.mqtt_messages_per_publisher
    t0_ms = _first_ts_ms()
    tb_rates: list[float] = []
    ref_rates: list[float] = []
    runs: list[dict[str, Any]] = []
    # Its own broker and server (stopped in this order at the end of the workload).
    with ExitStack() as stack:
        broker = stack.enter_context(mosquitto.private_mosquitto(ctx.workdir / "mosquitto"))
        external = ExternalBroker(broker.url, broker.username, broker.password)
        server = stack.enter_context(
            running_server(ctx.workdir / "server-mosquitto", broker=external)
        )
        for run in range(mode.runs):
            targets = server.new_targets(PUBLISHERS, f"p4m-{run}")
            publishers = _publishers(server, targets, t0_ms)
            spec = MqttLoadSpec(
                port=broker.port,
                publishers=publishers,
                messages_per_publisher=timed,
                points=POINTS,
                warmup_messages=warm,
                in_flight=IN_FLIGHT,
                seed=run + 1,
                deadline_s=DEADLINE_S,
                commit_url=server.url + "/metrics",
                poll_interval_s=POLL_INTERVAL_S,
            )
            cpu_before, threads_before = server.cpu_seconds(), server.thread_cpu()
            broker_before, pauses_before = broker.cpu_seconds(), _ingest_pauses(server)
            result = run_mqtt_load(spec)
            server_cpu = server.cpu_seconds() - cpu_before
            broker_cpu = broker.cpu_seconds() - broker_before
            pauses = _ingest_pauses(server) - pauses_before
            threads = _thread_shares(threads_before, server.thread_cpu(), server.pid, server_cpu)
            if not result.ok:
                raise RuntimeError(
                    f"run {run} (Mosquitto): {result.acked_total} messages acknowledged, "
                    f"{result.committed_total} samples committed; {result.errors[:3]}; "
                    f"server log: {server.log_tail(5)}; mosquitto log: {broker.log_tail(5)}"
                )
            sent = (warm + timed) * PUBLISHERS * POINTS
            stored = server.stored_samples(server.series_ids(targets))
            if stored != sent:
                raise RuntimeError(f"run {run}: {stored} samples stored, {sent} sent")
            tb_rates.append(result.samples_per_s)

            # Mosquitto alone: the same messages to a topic of each thing no one subscribes to.
            alone = [replace(p, topic=f"tb/things/{p.username}/bench") for p in publishers]
            reference = run_mqtt_load(replace(spec, publishers=alone, commit_url=""))
            _check(run, reference, "Mosquitto alone")
            ref_rates.append(reference.samples_per_s)
            # Server and broker CPU over the whole load (warm-up included) per sent sample, at
            # the measured rate: the share of one core each needs.
            busy_s = sent / result.samples_per_s
            runs.append(
                {
                    "thingbucket_samples_per_s": result.samples_per_s,
                    "thingbucket_messages_per_s": result.messages_per_s,
                    "puback_samples_per_s": result.ack_samples_per_s,
                    "reference_samples_per_s": reference.samples_per_s,
                    "reference_messages_per_s": reference.messages_per_s,
                    "samples": result.samples,
                    "elapsed_s": result.elapsed_s,
                    "puback_elapsed_s": result.ack_elapsed_s,
                    "commit_lag_s": result.elapsed_s - result.ack_elapsed_s,
                    "metrics_polls": result.polls,
                    "ingest_pauses": pauses,
                    "sent_samples": sent,
                    "stored_samples": stored,
                    "committed_counter_samples": result.committed_total,
                    "server_cpu_core_share": server_cpu / busy_s,
                    "server_cpu_split": threads,
                    "mosquitto_cpu_core_share": broker_cpu / busy_s,
                    "loadgen_cpu_core_share": result.cpu_s / result.elapsed_s,
                    "generate_s": result.generate_s,
                }
            )
    tb, ref = median(tb_rates), median(ref_rates)

    def med(key: str) -> float:
        return median([r[key] for r in runs])

    notes = [
        f"{med('thingbucket_messages_per_s'):.0f} messages/s committed ({PUBLISHERS} publishers "
        f"x {IN_FLIGHT} in flight, {timed} timed messages each); Mosquitto's PUBACKs to the "
        f"devices {rate(med('puback_samples_per_s'))} in the same runs, the last commit "
        f"{med('commit_lag_s') * 1000:.0f} ms after the last PUBACK; Mosquitto alone "
        f"{med('reference_messages_per_s'):.0f} messages/s",
        f"server CPU {med('server_cpu_core_share'):.0%} of one core (event-loop thread "
        f"{median([r['server_cpu_split']['main'] for r in runs]):.0%} of it, busiest other "
        f"thread {median([r['server_cpu_split']['busiest_other'] for r in runs]):.0%}), "
        f"Mosquitto {med('mosquitto_cpu_core_share'):.0%}, "
        f"load generator {med('loadgen_cpu_core_share'):.0%}",
        f"Mosquitto {broker.version}, dynsec, max_inflight_messages {mosquitto.MAX_INFLIGHT} to "
        "the ingest client; committed = thingbucket_ingested_samples_total of /metrics, polled "
        f"after the last PUBACK ({med('metrics_polls'):.0f} polls a run, >= "
        f"{POLL_INTERVAL_S * 1000:.0f} ms apart); stored = sent samples in every run",
    ]
    paused = [r["ingest_pauses"] for r in runs]
    if any(paused):
        notes.append(
            f"the server's ingest client paused {' / '.join(map(str, paused))} times in the runs "
            f"(rates {' / '.join(rate(x) for x in tb_rates)}): the writer's queue was full "
            "(Overloaded), so it dropped the connection and came back 2 s later"
        )
    return Row(
        id="P4-mosquitto",
        workload=f"MQTT QoS 1 ingest, {POINTS}-point messages, Mosquitto",
        thingbucket=rate(tb),
        reference=f"{rate(ref)} Mosquitto alone",
        ratio=tb / ref,
        target=f">= {rate(MOSQUITTO_TARGET_RATE)} committed",
        status="pass" if tb >= MOSQUITTO_TARGET_RATE else "fail",
        notes=notes,
        data={
            "unit": "samples/s",
            "thingbucket": tb,
            "reference": ref,
            "samples_per_run": timed * PUBLISHERS * POINTS,
            "mosquitto_version": broker.version,
            "runs": runs,
        },
    )
