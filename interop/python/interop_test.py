"""Interop test: a Python grpcio client, with stubs generated from our .proto files, against a
running Orisun server. Run through run.sh, which generates the stubs and sets PYTHONPATH.

Usage: interop_test.py [ADDRESS] [USER] [PASSWORD]

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
import eventstore_pb2 as es
import eventstore_pb2_grpc as es_grpc

ADDRESS = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:5005"
USER = sys.argv[2] if len(sys.argv) > 2 else "admin"
PASSWORD = sys.argv[3] if len(sys.argv) > 3 else "changeit"

RUN = uuid.uuid4().hex[:8]
BOUNDARY = f"py_{RUN}"


def basic(user, password):
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return [("authorization", f"Basic {token}")]


AUTH = basic(USER, PASSWORD)
channel = grpc.insecure_channel(ADDRESS)
store = es_grpc.EventStoreStub(channel)
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


def expect_error(code, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except grpc.RpcError as e:
        assert e.code() == code, f"expected {code}, got {e.code()}: {e.details()}"
        return e.details()
    raise AssertionError(f"expected {code}, the call succeeded")


def new_event(event_type, data):
    return es.EventToSave(
        event_id=str(uuid.uuid4()), event_type=event_type, data=json.dumps(data), metadata="{}"
    )


def pos(commit, prepare):
    return es.Position(commit_position=commit, prepare_position=prepare)


def account(account_id):
    return es.Criterion(tags=[es.Tag(key="accountId", value=account_id)])


@check("Ping with Basic credentials returns an x-auth-token that authenticates")
def _():
    _, call = store.Ping.with_call(es.PingRequest(), metadata=AUTH)
    headers = dict(call.initial_metadata())
    token = headers.get("x-auth-token")
    assert token, f"no x-auth-token in {headers}"
    store.Ping(es.PingRequest(), metadata=[("x-auth-token", token)])


@check("calls without credentials are UNAUTHENTICATED")
def _():
    expect_error(grpc.StatusCode.UNAUTHENTICATED, store.Ping, es.PingRequest())


@check("Admin CreateBoundary / GetBoundary / ListBoundaries")
def _():
    backend = admin.GetBoundary(
        admin_pb2.GetBoundaryRequest(name="orisun_admin"), metadata=AUTH
    ).boundary.placement.backend
    created = admin.CreateBoundary(
        admin_pb2.CreateBoundaryRequest(
            name=BOUNDARY,
            description="python interop",
            placement=admin_pb2.BoundaryPlacementInput(
                backend=backend, namespace="public" if backend == "postgres" else BOUNDARY
            ),
        ),
        metadata=AUTH,
    ).boundary
    assert created.name == BOUNDARY
    assert created.status == admin_pb2.BOUNDARY_LIFECYCLE_STATUS_ACTIVE, created
    names = [b.name for b in admin.ListBoundaries(admin_pb2.ListBoundariesRequest(), metadata=AUTH).boundaries]
    assert BOUNDARY in names, names


@check("SaveEvents: positions and log_position")
def _():
    r = store.SaveEvents(
        es.SaveEventsRequest(
            boundary=BOUNDARY,
            events=[
                new_event("AccountOpened", {"accountId": "a1"}),
                new_event("Deposited", {"accountId": "a1", "amount": 10}),
            ],
        ),
        metadata=AUTH,
    )
    assert (r.log_position.commit_position, r.log_position.prepare_position) == (2, 1), r


@check("SaveEvents with a stale consistency condition is ALREADY_EXISTS")
def _():
    details = expect_error(
        grpc.StatusCode.ALREADY_EXISTS,
        store.SaveEvents,
        es.SaveEventsRequest(
            boundary=BOUNDARY,
            query=es.SaveQuery(expected_position=pos(-1, -1), subsetQuery=es.Query(criteria=[account("a1")])),
            events=[new_event("Deposited", {"accountId": "a1", "amount": 1})],
        ),
        metadata=AUTH,
    )
    assert details.startswith("OptimisticConcurrencyException:StreamVersionConflict"), details


@check("SaveEvents without events is INVALID_ARGUMENT")
def _():
    details = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        store.SaveEvents,
        es.SaveEventsRequest(boundary=BOUNDARY, events=[]),
        metadata=AUTH,
    )
    assert details == "Invalid request: no events provided", details


@check("GetEvents reads back with eventType in data; count 0 is rejected")
def _():
    events = store.GetEvents(es.GetEventsRequest(boundary=BOUNDARY, count=100), metadata=AUTH).events
    assert [e.event_type for e in events] == ["AccountOpened", "Deposited"], events
    assert json.loads(events[1].data)["eventType"] == "Deposited"
    assert [(e.position.commit_position, e.position.prepare_position) for e in events] == [(2, 0), (2, 1)]
    desc = store.GetEvents(
        es.GetEventsRequest(boundary=BOUNDARY, count=1, direction=es.DESC), metadata=AUTH
    ).events
    assert desc[0].event_type == "Deposited"
    details = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT, store.GetEvents, es.GetEventsRequest(boundary=BOUNDARY, count=0), metadata=AUTH
    )
    assert details == "Count cannot be 0", details


@check("GetLatestByCriteria then a conditional save with its context position")
def _():
    r = store.GetLatestByCriteria(
        es.GetLatestByCriteriaRequest(boundary=BOUNDARY, criteria=[account("a1"), account("zz")]), metadata=AUTH
    )
    assert len(r.results) == 2
    assert r.results[0].event.event_type == "Deposited"
    assert not r.results[1].HasField("event")
    assert (r.context_position.commit_position, r.context_position.prepare_position) == (2, 1)
    store.SaveEvents(
        es.SaveEventsRequest(
            boundary=BOUNDARY,
            query=es.SaveQuery(expected_position=r.context_position, subsetQuery=es.Query(criteria=[account("a1")])),
            events=[new_event("Withdrawn", {"accountId": "a1", "amount": 3})],
        ),
        metadata=AUTH,
    )


@check("CatchUpSubscribeToEvents: catch-up, then live, filtered")
def _():
    received = queue.Queue()
    stream = store.CatchUpSubscribeToEvents(
        es.CatchUpSubscribeToEventStoreRequest(
            boundary=BOUNDARY,
            subscriber_name=f"py_{RUN}",
            after_position=pos(-1, -1),
            query=es.Query(criteria=[account("a1")]),
        ),
        metadata=AUTH,
    )

    def pump():
        try:
            for event in stream:
                received.put(event)
        except grpc.RpcError:
            pass

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    caught_up = [received.get(timeout=10) for _ in range(3)]
    assert [e.event_type for e in caught_up] == ["AccountOpened", "Deposited", "Withdrawn"]
    store.SaveEvents(
        es.SaveEventsRequest(
            boundary=BOUNDARY,
            events=[new_event("Deposited", {"accountId": "other"}), new_event("Closed", {"accountId": "a1"})],
        ),
        metadata=AUTH,
    )
    live = received.get(timeout=10)
    assert live.event_type == "Closed", live
    assert received.empty()
    # A second subscriber with the same name is refused while the first runs.
    second = store.CatchUpSubscribeToEvents(
        es.CatchUpSubscribeToEventStoreRequest(boundary=BOUNDARY, subscriber_name=f"py_{RUN}"), metadata=AUTH
    )
    try:
        next(second)
        raise AssertionError("second subscriber accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.ALREADY_EXISTS, e
    stream.cancel()
    thread.join(timeout=10)


@check("Admin users: CreateUser, ListUsers, ValidateCredentials, counts; role checks")
def _():
    username = f"ops_{RUN}"
    user = admin.CreateUser(
        admin_pb2.CreateUserRequest(name="Ops", username=username, password="secret123", roles=["OPERATIONS"]),
        metadata=AUTH,
    ).user
    assert user.username == username and list(user.roles) == ["OPERATIONS"], user
    users = admin.ListUsers(admin_pb2.ListUsersRequest(), metadata=AUTH).users
    assert username in [u.username for u in users]
    ok = admin.ValidateCredentials(
        admin_pb2.ValidateCredentialsRequest(username=username, password="secret123"), metadata=AUTH
    )
    assert ok.success
    bad = admin.ValidateCredentials(
        admin_pb2.ValidateCredentialsRequest(username=username, password="nope"), metadata=AUTH
    )
    assert not bad.success
    assert admin.GetUserCount(admin_pb2.GetUserCountRequest(), metadata=AUTH).count >= 2
    count = admin.GetEventCount(admin_pb2.GetEventCountRequest(boundary=BOUNDARY), metadata=AUTH).count
    assert count == 5, count
    ops = basic(username, "secret123")
    store.SaveEvents(
        es.SaveEventsRequest(boundary=BOUNDARY, events=[new_event("ByOps", {})]), metadata=ops
    )
    expect_error(
        grpc.StatusCode.PERMISSION_DENIED,
        store.CreateIndex,
        es.CreateIndexRequest(boundary=BOUNDARY, name="ix", fields=[es.IndexField(json_key="accountId")]),
        metadata=ops,
    )


@check("CreateIndex / DropIndex as ADMIN; invalid names rejected")
def _():
    store.CreateIndex(
        es.CreateIndexRequest(
            boundary=BOUNDARY,
            name="account_amount",
            fields=[es.IndexField(json_key="accountId", value_type=es.TEXT), es.IndexField(json_key="amount", value_type=es.NUMERIC)],
            conditions=[es.IndexCondition(key="eventType", operator="=", value="Deposited")],
            condition_combinator=es.AND,
        ),
        metadata=AUTH,
    )
    store.DropIndex(es.DropIndexRequest(boundary=BOUNDARY, name="account_amount"), metadata=AUTH)
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        store.CreateIndex,
        es.CreateIndexRequest(boundary=BOUNDARY, name="bad name", fields=[es.IndexField(json_key="k")]),
        metadata=AUTH,
    )


@check("unknown boundary is FAILED_PRECONDITION")
def _():
    expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        store.GetEvents,
        es.GetEventsRequest(boundary=f"missing_{RUN}", count=1),
        metadata=AUTH,
    )


passed = sum(results)
failed = len(results) - passed
print(f"{passed} passed, {failed} failed")
sys.exit(0 if failed == 0 else 1)
