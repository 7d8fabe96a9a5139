//! The single-event save scenarios: closed-loop saves by N clients, unconditional or each
//! conditional on its own context, and saves by one client on the large boundary,
//! unconditional or conditional on one entity spread over the whole log.

use super::{before_first, criterion, Bench, Tally};
use crate::client::Client;
use crate::payload;
use crate::report::ScenarioResult;
use futures::future::try_join_all;
use orisun_proto::{GetLatestByCriteriaRequest, Query, SaveEventsRequest, SaveQuery};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Barrier;

impl Bench {
    /// Single-event saves by `clients` concurrent clients in a closed loop for `duration`;
    /// when `conditional`, each client checks its own context (criterion
    /// `client = <its name>`) against the position of its previous write.
    pub async fn single_saves(
        &mut self,
        clients: usize,
        conditional: bool,
        duration: Duration,
    ) -> anyhow::Result<ScenarioResult> {
        self.ensure_pool(clients).await?;
        let kind = if conditional { "cond" } else { "uncond" };
        let id = format!("single_{kind}_c{clients}");
        let boundary = if conditional {
            self.boundaries.cond.clone()
        } else {
            self.boundaries.single.clone()
        };
        let pool: Vec<Client> = self.pool[..clients].to_vec();
        let run_id = self.run_id.clone();
        self.measured(&id.clone(), |counter| async move {
            let barrier = Arc::new(Barrier::new(clients));
            let workers = pool.into_iter().enumerate().map(|(i, mut client)| {
                let (barrier, counter, boundary) =
                    (barrier.clone(), counter.clone(), boundary.clone());
                let context = format!("{run_id}-{kind}-c{clients}-{i}");
                async move {
                    let mine = criterion("client", &context);
                    let mut expected = if conditional {
                        let latest = client
                            .get_latest_by_criteria(GetLatestByCriteriaRequest {
                                boundary: boundary.clone(),
                                criteria: vec![mine.clone()],
                            })
                            .await?
                            .into_inner();
                        Some(latest.context_position.unwrap_or_else(before_first))
                    } else {
                        None
                    };
                    barrier.wait().await;
                    let mut tally = Tally::default();
                    let start = Instant::now();
                    let mut n = 0u64;
                    while start.elapsed() < duration {
                        let request = SaveEventsRequest {
                            boundary: boundary.clone(),
                            query: conditional.then(|| SaveQuery {
                                expected_position: expected,
                                subset_query: Some(Query {
                                    criteria: vec![mine.clone()],
                                }),
                            }),
                            events: vec![payload::event(&context, &context, n)],
                        };
                        n += 1;
                        let t = Instant::now();
                        match client.save_events(request).await {
                            Ok(response) => {
                                tally.ok(t.elapsed(), 1);
                                counter.fetch_add(1, Ordering::Relaxed);
                                if conditional {
                                    expected = response.into_inner().log_position;
                                }
                            }
                            Err(status) => {
                                if tally.failed(&status) {
                                    break;
                                }
                            }
                        }
                    }
                    tally.elapsed = start.elapsed();
                    anyhow::Ok(tally)
                }
            });
            let mut total = Tally::default();
            for t in try_join_all(workers).await? {
                total.merge(t);
            }
            let what = if conditional {
                "conditional (own context, expected = own last write)"
            } else {
                "unconditional"
            };
            Ok(total.into_result(
                &id,
                format!("single-event saves, {clients} concurrent client(s), {what}"),
            ))
        })
        .await
    }

    /// Single-event saves by one client on the large boundary, about one entity whose
    /// earlier events are spread over the whole log: unconditional, or conditional on that
    /// entity (criterion `entity = e0`, expected = the latest matching position).
    pub async fn big_saves(
        &mut self,
        conditional: bool,
        duration: Duration,
    ) -> anyhow::Result<ScenarioResult> {
        let id = if conditional {
            "big_cond"
        } else {
            "big_uncond"
        };
        let boundary = self.boundaries.big.clone();
        let mut client = self.pool[0].clone();
        let entity = "e0";
        self.measured(id, |counter| async move {
            let matching = criterion("entity", entity);
            let mut expected = if conditional {
                let latest = client
                    .get_latest_by_criteria(GetLatestByCriteriaRequest {
                        boundary: boundary.clone(),
                        criteria: vec![matching.clone()],
                    })
                    .await?
                    .into_inner();
                Some(latest.context_position.unwrap_or_else(before_first))
            } else {
                None
            };
            let mut tally = Tally::default();
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < duration {
                let request = SaveEventsRequest {
                    boundary: boundary.clone(),
                    query: conditional.then(|| SaveQuery {
                        expected_position: expected,
                        subset_query: Some(Query {
                            criteria: vec![matching.clone()],
                        }),
                    }),
                    events: vec![payload::event(id, entity, n)],
                };
                n += 1;
                let t = Instant::now();
                match client.save_events(request).await {
                    Ok(response) => {
                        tally.ok(t.elapsed(), 1);
                        counter.fetch_add(1, Ordering::Relaxed);
                        if conditional {
                            expected = response.into_inner().log_position;
                        }
                    }
                    Err(status) => {
                        if tally.failed(&status) {
                            break;
                        }
                    }
                }
            }
            tally.elapsed = start.elapsed();
            let what = if conditional {
                "conditional on entity=e0"
            } else {
                "unconditional"
            };
            Ok(tally.into_result(
                id,
                format!("single-event saves on the large boundary, one client, {what}"),
            ))
        })
        .await
    }
}
