"""Older-clients interop test: a Python grpcio client with stubs generated from the 2025 proto
(package `eventstore`) saves, reads, conflicts and subscribes through the old API, reads its
events back through today's API (package `orisun`) and today's events through the old one, and
checks that bad input gets the same errors on both. It also calls the index RPCs on
`orisun.Admin`, where 2026-02..05 clients call them. Run through run.sh.

Usage: legacy_test.py ADDRESS [USER] [PASSWORD]

Each check prints a line; the last line is "N passed, N failed". Exit status 0 only if all pass.
"""

import base64
import json
import queue
import sys
import threading
import traceback
import uuid

import grpc

import admin_pb2
import admin_pb2_grpc
import eventstore_2025_pb2 as old
import eventstore_2025_pb2_grpc as old_grpc
import eventstore_pb2 as es
import eventstore_pb2_grpc as es_grpc

ADDRESS = sys.argv[1]
USER = sys.argv[2] if len(sys.argv) > 2 else "admin"
PASSWORD = sys.argv[3] if len(sys.argv) > 3 else "changeit"

RUN = uuid.uuid4().hex[:8]
BOUNDARY = f"legacy_{RUN}"
STREAM = f"account-{RUN}"

AUTH = [("authorization", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())]
channel = grpc.insecure_channel(ADDRESS)
legacy = old_grpc.EventStoreStub(channel)
today = es_grpc.EventStoreStub(channel)
admin = admin_pb2_grpc.AdminStub(channel)

results = []


def check(name):
    def wrap(fn):
        try:
            fn()
            results.append(True)
            print(f"ok   {name}")
        except Exception:  # noqa: BLE001 - report every failure and go on
            results.append(False)
            print(f"FAIL {name}")
            traceback.print_exc()
        return fn

    return wrap


def error_of(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except grpc.RpcError as e:
        return e.code(), e.details()
    raise AssertionError("the call succeeded")


def first_error_of(stream_call, request):
    """The error a server-streaming call ends with before its first event."""
    try:
        next(stream_call(request, metadata=AUTH))
    except grpc.RpcError as e:
        return e.code(), e.details()
    raise AssertionError("the subscription delivered an event")


def old_event(event_type, data, tags=()):
    return old.EventToSave(
        event_id=str(uuid.uuid4()),
        event_type=event_type,
        data=json.dumps(data),
        metadata=json.dumps({"client": "2025"}),
        tags=[old.Tag(key=k, value=v) for k, v in tags],
    )


def stream_criteria(name):
    return es.Query(
        criteria=[es.Criterion(tags=[es.Tag(key="aggregateType", value="stream"), es.Tag(key="aggregateId", value=name)])]
    )


def same_position(a, b):
    return (a.commit_position, a.prepare_position) == (b.commit_position, b.prepare_position)


def pump(call):
    received = queue.Queue()

    def run():
        try:
            for event in call:
                received.put(event)
        except grpc.RpcError:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return received, thread


@check("setup: a boundary of our own (through today's Admin)")
def _():
    backend = admin.GetBoundary(admin_pb2.GetBoundaryRequest(name="orisun_admin"), metadata=AUTH).boundary.placement.backend
    created = admin.CreateBoundary(
        admin_pb2.CreateBoundaryRequest(
            name=BOUNDARY,
            placement=admin_pb2.BoundaryPlacementInput(
                backend=backend, namespace="public" if backend == "postgres" else BOUNDARY
            ),
        ),
        metadata=AUTH,
    ).boundary
    assert created.status == admin_pb2.BOUNDARY_LIFECYCLE_STATUS_ACTIVE, created


@check("eventstore.EventStore needs credentials like today's services")
def _():
    code, _ = error_of(legacy.Ping, old.PingRequest())
    assert code == grpc.StatusCode.UNAUTHENTICATED, code
    legacy.Ping(old.PingRequest(), metadata=AUTH)


@check("stream save: expected version -1 creates the stream, versions count from 0")
def _():
    r = legacy.SaveEvents(
        old.SaveEventsRequest(
            boundary=BOUNDARY,
            stream=old.SaveStreamQuery(name=STREAM, expected_version=-1),
            events=[old_event("AccountOpened", {"owner": "ada"}), old_event("Deposited", {"amount": 10})],
        ),
        metadata=AUTH,
    )
    assert r.new_stream_version == 1, r
    assert r.log_position.commit_position >= 1, r


@check("stream save: a stale expected version conflicts with Go Orisun's message")
def _():
    code, details = error_of(
        legacy.SaveEvents,
        old.SaveEventsRequest(
            boundary=BOUNDARY,
            stream=old.SaveStreamQuery(name=STREAM, expected_version=0),
            events=[old_event("Deposited", {"amount": 1})],
        ),
        metadata=AUTH,
    )
    assert code == grpc.StatusCode.ALREADY_EXISTS, (code, details)
    assert details == "OptimisticConcurrencyException:StreamVersionConflict: Expected 0, Actual 1", details
    code, details = error_of(
        legacy.SaveEvents,
        old.SaveEventsRequest(
            boundary=BOUNDARY,
            stream=old.SaveStreamQuery(name=STREAM, expected_version=-1),
            events=[old_event("AccountOpened", {})],
        ),
        metadata=AUTH,
    )
    assert code == grpc.StatusCode.ALREADY_EXISTS and details.endswith("Expected -1, Actual 1"), details
    r = legacy.SaveEvents(
        old.SaveEventsRequest(
            boundary=BOUNDARY,
            stream=old.SaveStreamQuery(name=STREAM, expected_version=1),
            events=[old_event("Withdrawn", {"amount": 3})],
        ),
        metadata=AUTH,
    )
    assert r.new_stream_version == 2, r


@check("GetEvents by stream: stream id, versions, from_version, query, direction")
def _():
    events = legacy.GetEvents(
        old.GetEventsRequest(boundary=BOUNDARY, stream=old.GetStreamQuery(name=STREAM), count=100), metadata=AUTH
    ).events
    assert [e.event_type for e in events] == ["AccountOpened", "Deposited", "Withdrawn"], events
    assert [e.version for e in events] == [0, 1, 2], events
    assert all(e.stream_id == STREAM for e in events), events
    later = legacy.GetEvents(
        old.GetEventsRequest(boundary=BOUNDARY, stream=old.GetStreamQuery(name=STREAM, from_version=1), count=100),
        metadata=AUTH,
    ).events
    assert [e.version for e in later] == [1, 2], later
    newest = legacy.GetEvents(
        old.GetEventsRequest(
            boundary=BOUNDARY, stream=old.GetStreamQuery(name=STREAM), count=1, direction=old.DESC
        ),
        metadata=AUTH,
    ).events
    assert [e.event_type for e in newest] == ["Withdrawn"], newest
    deposits = legacy.GetEvents(
        old.GetEventsRequest(
            boundary=BOUNDARY,
            stream=old.GetStreamQuery(name=STREAM),
            query=old.Query(criteria=[old.Criterion(tags=[old.Tag(key="eventType", value="Deposited")])]),
            count=100,
        ),
        metadata=AUTH,
    ).events
    assert [e.version for e in deposits] == [1], deposits
    missing = legacy.GetEvents(
        old.GetEventsRequest(boundary=BOUNDARY, stream=old.GetStreamQuery(name=f"nobody-{RUN}"), count=10),
        metadata=AUTH,
    ).events
    assert list(missing) == [], missing


@check("old events read through today's API: same ids, positions and bytes")
def _():
    mine = legacy.GetEvents(
        old.GetEventsRequest(boundary=BOUNDARY, stream=old.GetStreamQuery(name=STREAM), count=100), metadata=AUTH
    ).events
    theirs = today.GetEvents(
        es.GetEventsRequest(boundary=BOUNDARY, query=stream_criteria(STREAM), count=100), metadata=AUTH
    ).events
    assert [e.event_id for e in theirs] == [e.event_id for e in mine]
    for a, b in zip(mine, theirs):
        assert same_position(a.position, b.position), (a.position, b.position)
        assert a.data == b.data and a.metadata == b.metadata, (a.data, b.data)
        assert a.event_type == b.event_type
        data = json.loads(b.data)
        assert data["aggregateId"] == STREAM and data["aggregateVersion"] == a.version + 1, data


@check("today's events read through the old API: same position and bytes, data fields as tags")
def _():
    saved = today.SaveEvents(
        es.SaveEventsRequest(
            boundary=BOUNDARY,
            events=[
                es.EventToSave(
                    event_id=str(uuid.uuid4()),
                    event_type="Invoiced",
                    data=json.dumps({"invoiceId": f"i-{RUN}", "total": 12}),
                    metadata="{}",
                )
            ],
        ),
        metadata=AUTH,
    ).log_position
    found = legacy.GetEvents(
        old.GetEventsRequest(
            boundary=BOUNDARY,
            query=old.Query(criteria=[old.Criterion(tags=[old.Tag(key="invoiceId", value=f"i-{RUN}")])]),
            count=10,
        ),
        metadata=AUTH,
    ).events
    assert len(found) == 1, found
    event = found[0]
    assert same_position(event.position, saved), (event.position, saved)
    mirror = today.GetEvents(
        es.GetEventsRequest(boundary=BOUNDARY, from_position=saved, count=1), metadata=AUTH
    ).events[0]
    assert event.data == mirror.data and event.metadata == mirror.metadata
    assert event.stream_id == "" and event.version == 0, event
    tags = {(t.key, t.value) for t in event.tags}
    assert ("invoiceId", f"i-{RUN}") in tags and ("total", "12") in tags, tags


@check("DCB save: tags become data fields, consistency_condition guards like today's subsetQuery")
def _():
    course = f"c-{RUN}"
    criteria = [old.Criterion(tags=[old.Tag(key="courseId", value=course)])]
    first = legacy.SaveEvents(
        old.SaveEventsRequest(
            boundary=BOUNDARY,
            consistency_condition=old.ConsistencyCondition(query=old.Query(criteria=criteria)),
            events=[old_event("CourseDefined", {"capacity": 2}, tags=[("courseId", course)])],
        ),
        metadata=AUTH,
    ).log_position
    second = legacy.SaveEvents(
        old.SaveEventsRequest(
            boundary=BOUNDARY,
            consistency_condition=old.ConsistencyCondition(consistency_marker=first, query=old.Query(criteria=criteria)),
            events=[old_event("StudentSubscribed", {"studentId": "s1"}, tags=[("courseId", course)])],
        ),
        metadata=AUTH,
    ).log_position
    stale = old.SaveEventsRequest(
        boundary=BOUNDARY,
        consistency_condition=old.ConsistencyCondition(consistency_marker=first, query=old.Query(criteria=criteria)),
        events=[old_event("StudentSubscribed", {"studentId": "s2"}, tags=[("courseId", course)])],
    )
    old_error = error_of(legacy.SaveEvents, stale, metadata=AUTH)
    new_error = error_of(
        today.SaveEvents,
        es.SaveEventsRequest(
            boundary=BOUNDARY,
            query=es.SaveQuery(
                expected_position=es.Position(commit_position=first.commit_position, prepare_position=first.prepare_position),
                subsetQuery=es.Query(criteria=[es.Criterion(tags=[es.Tag(key="courseId", value=course)])]),
            ),
            events=[es.EventToSave(event_id=str(uuid.uuid4()), event_type="StudentSubscribed", data="{}")],
        ),
        metadata=AUTH,
    )
    assert old_error[0] == grpc.StatusCode.ALREADY_EXISTS, old_error
    assert old_error == new_error, (old_error, new_error)
    through_today = today.GetEvents(
        es.GetEventsRequest(
            boundary=BOUNDARY,
            query=es.Query(criteria=[es.Criterion(tags=[es.Tag(key="courseId", value=course)])]),
            count=10,
        ),
        metadata=AUTH,
    ).events
    assert [e.event_type for e in through_today] == ["CourseDefined", "StudentSubscribed"], through_today
    assert same_position(through_today[1].position, second)
    assert json.loads(through_today[0].data)["courseId"] == course
    conflict = error_of(
        legacy.SaveEvents,
        old.SaveEventsRequest(
            boundary=BOUNDARY, events=[old_event("X", {"courseId": "other"}, tags=[("courseId", course)])]
        ),
        metadata=AUTH,
    )
    assert conflict[0] == grpc.StatusCode.INVALID_ARGUMENT, conflict
    assert "events[0].tags[0]" in conflict[1], conflict


@check("CatchUpSubscribeToStream: catch-up after a version, then live")
def _():
    call = legacy.CatchUpSubscribeToStream(
        old.CatchUpSubscribeToStreamRequest(
            boundary=BOUNDARY, stream=STREAM, after_version=0, subscriber_name=f"py_{RUN}_stream"
        ),
        metadata=AUTH,
    )
    received, thread = pump(call)
    caught_up = [received.get(timeout=10) for _ in range(2)]
    assert [e.version for e in caught_up] == [1, 2], caught_up
    legacy.SaveEvents(
        old.SaveEventsRequest(
            boundary=BOUNDARY,
            stream=old.SaveStreamQuery(name=STREAM, expected_version=2),
            events=[old_event("Deposited", {"amount": 5})],
        ),
        metadata=AUTH,
    )
    today.SaveEvents(
        es.SaveEventsRequest(
            boundary=BOUNDARY,
            events=[es.EventToSave(event_id=str(uuid.uuid4()), event_type="Unrelated", data="{}")],
        ),
        metadata=AUTH,
    )
    live = received.get(timeout=10)
    assert (live.version, live.stream_id, live.event_type) == (3, STREAM, "Deposited"), live
    call.cancel()
    thread.join(timeout=10)
    assert received.empty()


@check("CatchUpSubscribeToEvents: catch-up by query, then live, events from both APIs")
def _():
    tag = f"t-{RUN}"
    legacy.SaveEvents(
        old.SaveEventsRequest(boundary=BOUNDARY, events=[old_event("Old", {}, tags=[("topic", tag)])]),
        metadata=AUTH,
    )
    call = legacy.CatchUpSubscribeToEvents(
        old.CatchUpSubscribeToEventStoreRequest(
            boundary=BOUNDARY,
            subscriber_name=f"py_{RUN}_all",
            query=old.Query(criteria=[old.Criterion(tags=[old.Tag(key="topic", value=tag)])]),
        ),
        metadata=AUTH,
    )
    received, thread = pump(call)
    assert received.get(timeout=10).event_type == "Old"
    today.SaveEvents(
        es.SaveEventsRequest(
            boundary=BOUNDARY,
            events=[es.EventToSave(event_id=str(uuid.uuid4()), event_type="New", data=json.dumps({"topic": tag}))],
        ),
        metadata=AUTH,
    )
    live = received.get(timeout=10)
    assert live.event_type == "New" and ("topic", tag) in {(t.key, t.value) for t in live.tags}, live
    call.cancel()
    thread.join(timeout=10)


@check("bad input gets the same errors as today's API")
def _():
    missing = f"missing_{RUN}"
    pairs = [
        (
            error_of(legacy.GetEvents, old.GetEventsRequest(boundary=missing, count=1), metadata=AUTH),
            error_of(today.GetEvents, es.GetEventsRequest(boundary=missing, count=1), metadata=AUTH),
        ),
        (
            error_of(
                legacy.GetEvents,
                old.GetEventsRequest(boundary=missing, stream=old.GetStreamQuery(name=STREAM), count=1),
                metadata=AUTH,
            ),
            error_of(today.GetEvents, es.GetEventsRequest(boundary=missing, count=1), metadata=AUTH),
        ),
        (
            error_of(
                legacy.SaveEvents,
                old.SaveEventsRequest(
                    boundary=missing,
                    stream=old.SaveStreamQuery(name=STREAM, expected_version=-1),
                    events=[old_event("X", {})],
                ),
                metadata=AUTH,
            ),
            error_of(
                today.SaveEvents,
                es.SaveEventsRequest(
                    boundary=missing, events=[es.EventToSave(event_id=str(uuid.uuid4()), event_type="X")]
                ),
                metadata=AUTH,
            ),
        ),
        (
            error_of(legacy.GetEvents, old.GetEventsRequest(boundary=BOUNDARY, count=0), metadata=AUTH),
            error_of(today.GetEvents, es.GetEventsRequest(boundary=BOUNDARY, count=0), metadata=AUTH),
        ),
        (
            error_of(
                legacy.SaveEvents,
                old.SaveEventsRequest(boundary=BOUNDARY, events=[old.EventToSave(event_id="nope", event_type="X")]),
                metadata=AUTH,
            ),
            error_of(
                today.SaveEvents,
                es.SaveEventsRequest(boundary=BOUNDARY, events=[es.EventToSave(event_id="nope", event_type="X")]),
                metadata=AUTH,
            ),
        ),
        (
            first_error_of(
                legacy.CatchUpSubscribeToEvents,
                old.CatchUpSubscribeToEventStoreRequest(boundary=missing, subscriber_name="s"),
            ),
            first_error_of(
                today.CatchUpSubscribeToEvents,
                es.CatchUpSubscribeToEventStoreRequest(boundary=missing, subscriber_name="s"),
            ),
        ),
    ]
    for got, want in pairs:
        assert got == want, (got, want)
    # A position whose numbers arrive as text (how clients of January 2025 encoded them) is
    # refused alike by both packages: the bytes are the same request to either.
    position = b"\x0a\x03abc\x10\x01"
    request = b"\x12" + bytes([len(position)]) + position + b"\x18\x01\x2a" + bytes([len(BOUNDARY)]) + BOUNDARY.encode()
    raw = lambda path: channel.unary_unary(path, request_serializer=None, response_deserializer=None)  # noqa: E731
    got = error_of(raw("/eventstore.EventStore/GetEvents"), request, metadata=AUTH)
    want = error_of(raw("/orisun.EventStore/GetEvents"), request, metadata=AUTH)
    assert got == want, (got, want)
    assert got[0] == grpc.StatusCode.INTERNAL and "commit_position" in got[1], got


@check("stream bad input: empty or malformed names, versions below -1, subsetQuery")
def _():
    def save(stream, **kwargs):
        return error_of(
            legacy.SaveEvents,
            old.SaveEventsRequest(boundary=BOUNDARY, stream=stream, events=[old_event("X", {})], **kwargs),
            metadata=AUTH,
        )

    cases = [
        (save(old.SaveStreamQuery(name="", expected_version=-1)), "stream.name: must not be empty"),
        (save(old.SaveStreamQuery(name="Account/", expected_version=-1)), "stream.name: aggregate_id: must not be empty"),
        (
            save(old.SaveStreamQuery(name=STREAM, expected_version=-2)),
            "stream.expected_version: must be -1 (a stream without events) or a version >= 0, got -2",
        ),
    ]
    for (code, details), message in cases:
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details == message, (code, details)
    code, details = save(old.SaveStreamQuery(name=STREAM, expected_version=3, subsetQuery=old.Query()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("stream.subsetQuery"), details
    code, details = first_error_of(
        legacy.CatchUpSubscribeToStream,
        old.CatchUpSubscribeToStreamRequest(boundary=BOUNDARY, stream="", subscriber_name="s"),
    )
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "stream: must not be empty"), details
    # Nothing was appended by any of them.
    events = legacy.GetEvents(
        old.GetEventsRequest(boundary=BOUNDARY, stream=old.GetStreamQuery(name=STREAM), count=100), metadata=AUTH
    ).events
    assert len(events) == 4, events


@check("PublishToPubSub / SubscribeToPubSub on the old service are today's pub/sub")
def _():
    import pubsub_pb2
    import pubsub_pb2_grpc

    call = legacy.SubscribeToPubSub(
        old.SubscribeRequest(subject=f"legacy_{RUN}.*", consumer_name="billing"), metadata=AUTH
    )
    received, thread = pump(call)
    # The subscriber has joined once the response headers arrived.
    call.initial_metadata()
    legacy.PublishToPubSub(old.PublishRequest(id="m1", subject=f"legacy_{RUN}.placed", data=b"old"), metadata=AUTH)
    pubsub_pb2_grpc.PubSubStub(channel).PublishToPubSub(
        pubsub_pb2.PublishRequest(id="m2", subject=f"legacy_{RUN}.paid", data=b"new"), metadata=AUTH
    )
    got = [received.get(timeout=10).message for _ in range(2)]
    assert [(m.id, m.data) for m in got] == [("m1", b"old"), ("m2", b"new")], got
    call.cancel()
    thread.join(timeout=10)


@check("Admin CreateIndex / DropIndex behave as EventStore's")
def _():
    request = es.CreateIndexRequest(
        boundary=BOUNDARY, name=f"by_owner_{RUN}", fields=[es.IndexField(json_key="owner", value_type=es.TEXT)]
    )
    admin.CreateIndex(request, metadata=AUTH)
    admin.CreateIndex(request, metadata=AUTH)  # exists: succeeds without change, as on EventStore
    admin.DropIndex(es.DropIndexRequest(boundary=BOUNDARY, name=request.name), metadata=AUTH)
    bad = es.CreateIndexRequest(boundary=BOUNDARY, name="bad name", fields=[es.IndexField(json_key="k")])
    assert error_of(admin.CreateIndex, bad, metadata=AUTH) == error_of(today.CreateIndex, bad, metadata=AUTH)
    missing = es.DropIndexRequest(boundary=f"missing_{RUN}", name="x")
    got = error_of(admin.DropIndex, missing, metadata=AUTH)
    assert got == error_of(today.DropIndex, missing, metadata=AUTH), got
    assert got[0] == grpc.StatusCode.FAILED_PRECONDITION, got
    code, _ = error_of(admin.CreateIndex, request)
    assert code == grpc.StatusCode.UNAUTHENTICATED


passed = sum(results)
failed = len(results) - passed
print(f"{passed} passed, {failed} failed")
sys.exit(0 if failed == 0 else 1)
