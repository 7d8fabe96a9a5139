//! The bank's events and the one fold that turns them into a balance.

use orisun_core::{Criterion, JsonObject, NewEvent, Query, StoredEvent, Tag};
use serde_json::{json, Value};

/// The aggregate type of accounts.
pub const ACCOUNT: &str = "Account";

/// A new event of type `kind` with `data`.
pub fn event(kind: &str, data: Value) -> NewEvent {
    let data: JsonObject = data.as_object().cloned().unwrap_or_default();
    NewEvent::new(uuid::Uuid::new_v4(), kind, data, JsonObject::new())
        .expect("event types and data built here are valid")
}

/// `AccountOpened`, on the account's own stream.
pub fn opened(owner: &str) -> NewEvent {
    event("AccountOpened", json!({ "owner": owner }))
}

/// `MoneyDeposited`, on the account's own stream.
pub fn deposited(amount: i64) -> NewEvent {
    event("MoneyDeposited", json!({ "amount": amount }))
}

/// `MoneyTransferred`: an event of no aggregate, tagged with both accounts (`from`, `to`).
pub fn transferred(from: &str, to: &str, amount: i64) -> NewEvent {
    event(
        "MoneyTransferred",
        json!({ "from": from, "to": to, "amount": amount }),
    )
}

/// Every event that changes `account`'s balance: its own stream, and the transfers that name
/// it on either side. This is the consistency boundary of a transfer out of `account`.
pub fn balance_query(account: &str) -> Query {
    Query::new([
        Criterion::new([
            Tag::new("aggregateType", ACCOUNT),
            Tag::new("aggregateId", account),
        ]),
        Criterion::new([
            Tag::new("eventType", "MoneyTransferred"),
            Tag::new("from", account),
        ]),
        Criterion::new([
            Tag::new("eventType", "MoneyTransferred"),
            Tag::new("to", account),
        ]),
    ])
}

/// What one event does to balances: `(account, change)` pairs.
pub fn effects(event: &StoredEvent) -> Vec<(String, i64)> {
    let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
        return Vec::new();
    };
    let text = |key: &str| data[key].as_str().unwrap_or_default().to_owned();
    let amount = data["amount"].as_i64().unwrap_or(0);
    match event.event_type.as_str() {
        "AccountOpened" => vec![(text("aggregateId"), 0)],
        "MoneyDeposited" => vec![(text("aggregateId"), amount)],
        "MoneyTransferred" => vec![(text("from"), -amount), (text("to"), amount)],
        _ => Vec::new(),
    }
}
