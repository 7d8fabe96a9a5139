//! Alternating rounds: which round of a scenario and its baseline is kept (the median one by
//! a key, usually the ratio to the baseline), with every round's ratio attached, so that a
//! slow spell of a shared machine cannot fall on one side only.

use crate::report::{BaselineResult, ScenarioResult};

/// The ratio of a scenario's throughput to its baseline's, when both ran.
pub(crate) fn ratio_to(s: Option<&ScenarioResult>, b: Option<&BaselineResult>) -> Option<f64> {
    match (s, b) {
        (Some(s), Some(b)) if b.events_per_s > 0.0 => Some(s.events_per_s / b.events_per_s),
        _ => None,
    }
}

/// The ratio of a round's first scenario to the round's baseline.
pub(crate) fn first_ratio<const N: usize>(
    round: &[Option<ScenarioResult>; N],
    baseline: &Option<BaselineResult>,
) -> Option<f64> {
    ratio_to(round.iter().flatten().next(), baseline.as_ref())
}

/// The ratio of a round's first scenario that has an UmaDB figure to that figure.
pub(crate) fn first_umadb_ratio<const N: usize>(
    round: &[Option<ScenarioResult>; N],
    umadb: &[Option<BaselineResult>; N],
) -> Option<f64> {
    round
        .iter()
        .zip(umadb)
        .find_map(|(s, u)| ratio_to(s.as_ref(), u.as_ref()))
}

/// Keeps the round whose `key` is the median (the lower middle one for an even count), with
/// every scenario's per-round ratio to its baseline attached; the only round when there is one.
/// `rounds[i]` and `baselines[i]` ran together.
pub(crate) fn median_round<const N: usize>(
    rounds: Vec<[Option<ScenarioResult>; N]>,
    baselines: Vec<Option<BaselineResult>>,
    key: impl Fn(&[Option<ScenarioResult>; N], &Option<BaselineResult>) -> Option<f64>,
) -> ([Option<ScenarioResult>; N], Option<BaselineResult>) {
    let kept = median_round_with(rounds, baselines, Vec::new(), |r, b, _| key(r, b));
    (kept.ours, kept.raw)
}

/// The round [`median_round_with`] keeps: our scenarios, the raw baseline and UmaDB's figures
/// that ran in it.
pub(crate) struct KeptRound<const N: usize> {
    pub ours: [Option<ScenarioResult>; N],
    pub raw: Option<BaselineResult>,
    pub umadb: [Option<BaselineResult>; N],
}

/// [`median_round`] with UmaDB's counterparts of the round's scenarios as well (`umadb[i][k]`
/// ran in round `i` beside scenario `k`; empty without UmaDB): the key may use them, and each
/// kept scenario gets its per-round ratio to UmaDB's figure too.
pub(crate) fn median_round_with<const N: usize>(
    rounds: Vec<[Option<ScenarioResult>; N]>,
    baselines: Vec<Option<BaselineResult>>,
    umadb: Vec<[Option<BaselineResult>; N]>,
    key: impl Fn(
        &[Option<ScenarioResult>; N],
        &Option<BaselineResult>,
        &[Option<BaselineResult>; N],
    ) -> Option<f64>,
) -> KeptRound<N> {
    let mut umadb = umadb;
    umadb.resize_with(rounds.len(), || std::array::from_fn(|_| None));
    let per_round: Vec<[Option<f64>; N]> = rounds
        .iter()
        .zip(&baselines)
        .map(|(r, b)| std::array::from_fn(|k| ratio_to(r[k].as_ref(), b.as_ref())))
        .collect();
    let per_round_umadb: Vec<[Option<f64>; N]> = rounds
        .iter()
        .zip(&umadb)
        .map(|(r, u)| std::array::from_fn(|k| ratio_to(r[k].as_ref(), u[k].as_ref())))
        .collect();
    let keys: Vec<Option<f64>> = rounds
        .iter()
        .zip(&baselines)
        .zip(&umadb)
        .map(|((r, b), u)| key(r, b, u))
        .collect();
    let peaks: [Option<u64>; N] = std::array::from_fn(|k| {
        rounds
            .iter()
            .filter_map(|r| r[k].as_ref()?.peak_rss_bytes)
            .max()
    });
    let mut order: Vec<usize> = (0..rounds.len()).collect();
    order.sort_by(|&a, &b| {
        keys[a]
            .partial_cmp(&keys[b])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let chosen = order
        .get(order.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0);
    let mut kept = KeptRound {
        ours: std::array::from_fn(|_| None),
        raw: None,
        umadb: std::array::from_fn(|_| None),
    };
    for (i, ((round, baseline), uma)) in rounds.into_iter().zip(baselines).zip(umadb).enumerate() {
        if i == chosen {
            kept = KeptRound {
                ours: round,
                raw: baseline,
                umadb: uma,
            };
        }
    }
    for (k, slot) in kept.ours.iter_mut().enumerate() {
        if let Some(s) = slot {
            // The peak over every round of the scenario, not only the one kept.
            s.peak_rss_bytes = peaks[k];
            if per_round.len() > 1 {
                s.round_ratios = per_round.iter().filter_map(|r| r[k]).collect();
                s.umadb_round_ratios = per_round_umadb.iter().filter_map(|r| r[k]).collect();
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(id: &str, rate: f64, peak: u64) -> Option<ScenarioResult> {
        let mut s = ScenarioResult::new(id, "test");
        s.events_per_s = rate;
        s.peak_rss_bytes = Some(peak);
        Some(s)
    }

    fn raw(rate: f64) -> Option<BaselineResult> {
        Some(BaselineResult {
            id: "raw_single_c1".to_owned(),
            description: "raw".to_owned(),
            connections: 1,
            rows: 1,
            elapsed_s: 1.0,
            events_per_s: rate,
            latency: None,
        })
    }

    #[test]
    fn keeps_the_median_round_with_every_rounds_ratio() {
        // Ratios of the first scenario by round: 0.5, 0.2, 0.3; the median is round 3's.
        let rounds = vec![
            [ours("u", 500.0, 10), ours("c", 100.0, 40)],
            [ours("u", 200.0, 30), ours("c", 300.0, 20)],
            [ours("u", 600.0, 20), ours("c", 400.0, 10)],
        ];
        let baselines = vec![raw(1_000.0), raw(1_000.0), raw(2_000.0)];
        let ([u, c], b) = median_round(rounds, baselines, first_ratio);
        let (u, c) = (u.expect("kept"), c.expect("kept"));
        assert_eq!(u.events_per_s, 600.0);
        assert_eq!(c.events_per_s, 400.0, "the same round for every scenario");
        assert_eq!(b.map(|b| b.events_per_s), Some(2_000.0));
        assert_eq!(u.round_ratios, [0.5, 0.2, 0.3]);
        assert_eq!(c.round_ratios, [0.1, 0.3, 0.2]);
        assert_eq!((u.peak_rss_bytes, c.peak_rss_bytes), (Some(30), Some(40)));
    }

    #[test]
    fn the_key_decides_which_round_is_kept() {
        let round = |c: f64| {
            let mut u = ours("big_uncond", 1.0, 1);
            let mut c2 = ours("big_cond", 1.0, 1);
            for (s, p50) in [(&mut u, 1.0), (&mut c2, c)] {
                if let Some(s) = s {
                    s.latency = Some(crate::stats::LatencySummary {
                        count: 1,
                        p50_ms: p50,
                        p99_ms: p50,
                        max_ms: p50,
                        mean_ms: p50,
                    });
                }
            }
            [u, c2]
        };
        let p50_ratio = |r: &[Option<ScenarioResult>; 2], _: &Option<BaselineResult>| {
            let p50 = |s: &Option<ScenarioResult>| s.as_ref()?.latency.map(|l| l.p50_ms);
            Some(p50(&r[1])? / p50(&r[0])?)
        };
        let rounds = vec![round(3.0), round(1.1), round(1.2)];
        let ([_, c], _) = median_round(rounds, vec![None, None, None], p50_ratio);
        assert_eq!(c.and_then(|c| c.latency).map(|l| l.p50_ms), Some(1.2));
    }

    fn uma(rate: f64) -> Option<BaselineResult> {
        raw(rate).map(|mut b| {
            b.id = "umadb_single_cond_c1".to_owned();
            b
        })
    }

    #[test]
    fn keeps_umadbs_figures_of_the_round_kept() {
        // No raw baseline (embedded): the key is the ratio to UmaDB, 0.5, 0.25, 0.4.
        let rounds = vec![
            [ours("c", 500.0, 1)],
            [ours("c", 250.0, 1)],
            [ours("c", 800.0, 1)],
        ];
        let umadb = vec![[uma(1_000.0)], [uma(1_000.0)], [uma(2_000.0)]];
        let kept = median_round_with(rounds, vec![None, None, None], umadb, |r, b, u| {
            first_ratio(r, b).or_else(|| first_umadb_ratio(r, u))
        });
        let [c] = kept.ours;
        let c = c.expect("kept");
        assert_eq!(c.events_per_s, 800.0);
        assert_eq!(
            kept.umadb[0].as_ref().map(|u| u.events_per_s),
            Some(2_000.0)
        );
        assert_eq!(c.umadb_round_ratios, [0.5, 0.25, 0.4]);
        assert!(c.round_ratios.is_empty() && kept.raw.is_none());
    }

    #[test]
    fn one_round_or_no_baseline_keeps_the_run_as_it_is() {
        let ([u], b) = median_round(vec![[ours("u", 500.0, 1)]], vec![raw(1_000.0)], first_ratio);
        let u = u.expect("kept");
        assert!(u.round_ratios.is_empty());
        assert_eq!(b.map(|b| b.events_per_s), Some(1_000.0));
        let ([u], b) = median_round(
            vec![[ours("u", 5.0, 1)], [ours("u", 7.0, 1)]],
            vec![None, None],
            first_ratio,
        );
        assert!(b.is_none());
        assert!(u.expect("kept").round_ratios.is_empty());
    }
}
