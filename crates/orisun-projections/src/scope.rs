//! [`Scope`]: which events of a boundary a projection receives, pushed down into the store's
//! query so that the tag index, not the processor, does the filtering.

use orisun_core::{Criterion, Query, Tag, EVENT_TYPE_KEY};

/// The data field naming an event's aggregate type (written by `orisun-aggregates`).
const AGGREGATE_TYPE_KEY: &str = "aggregateType";

/// Which events a projection receives. Every part is optional; an empty list does not filter.
/// An event is received when it matches the criteria (any criterion, all its tags), *and* its
/// type is one of the event types, *and* its aggregate type is one of the aggregate types.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Criteria over event data, as on the wire.
    pub criteria: Vec<Criterion>,
    /// Event types (`eventType`).
    pub event_types: Vec<String>,
    /// Aggregate types (`aggregateType`).
    pub aggregate_types: Vec<String>,
}

impl Scope {
    /// Every event of the boundary.
    pub fn all() -> Self {
        Self::default()
    }

    /// Returns a copy that also requires one of these event types.
    pub fn event_types<S: Into<String>>(mut self, types: impl IntoIterator<Item = S>) -> Self {
        self.event_types.extend(types.into_iter().map(Into::into));
        self
    }

    /// Returns a copy that also requires one of these aggregate types.
    pub fn aggregate_types<S: Into<String>>(mut self, types: impl IntoIterator<Item = S>) -> Self {
        self.aggregate_types
            .extend(types.into_iter().map(Into::into));
        self
    }

    /// Returns a copy that also requires one of these criteria.
    pub fn criteria(mut self, criteria: impl IntoIterator<Item = Criterion>) -> Self {
        self.criteria.extend(criteria);
        self
    }

    /// The store query for this scope: the cross product of the three lists, each combination
    /// one criterion (AND of its tags), the whole an OR. An empty scope is the whole log.
    pub fn query(&self) -> Query {
        let mut combos: Vec<Vec<Tag>> = if self.criteria.is_empty() {
            vec![Vec::new()]
        } else {
            self.criteria.iter().map(|c| c.tags.clone()).collect()
        };
        for (key, values) in [
            (EVENT_TYPE_KEY, &self.event_types),
            (AGGREGATE_TYPE_KEY, &self.aggregate_types),
        ] {
            if values.is_empty() {
                continue;
            }
            combos = combos
                .iter()
                .flat_map(|tags| {
                    values.iter().map(move |v| {
                        let mut tags = tags.clone();
                        tags.push(Tag::new(key, v.clone()));
                        tags
                    })
                })
                .collect();
        }
        if combos.iter().all(Vec::is_empty) {
            return Query::all();
        }
        Query::new(combos.into_iter().map(Criterion::new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(v: serde_json::Value) -> orisun_core::JsonObject {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn empty_scope_is_the_whole_log() {
        assert!(Scope::all().query().matches_all());
    }

    #[test]
    fn lists_combine_with_and_values_with_or() {
        let scope = Scope::all()
            .event_types(["Deposited", "Withdrawn"])
            .aggregate_types(["Account"])
            .criteria([Criterion::new([Tag::new("currency", "EUR")])]);
        let query = scope.query();
        assert_eq!(query.criteria.len(), 2);
        let event = |t: &str, a: &str, c: &str| {
            data(json!({"eventType": t, "aggregateType": a, "currency": c}))
        };
        assert!(query.matches(&event("Deposited", "Account", "EUR")));
        assert!(query.matches(&event("Withdrawn", "Account", "EUR")));
        assert!(!query.matches(&event("Opened", "Account", "EUR")));
        assert!(!query.matches(&event("Deposited", "Order", "EUR")));
        assert!(!query.matches(&event("Deposited", "Account", "USD")));
    }
}
