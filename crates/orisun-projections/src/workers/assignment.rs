//! The assignment function: which live member of a replica set should run which partition,
//! computed from the members and what each reports running. Pure (no IO, no clock), so every
//! worker that sees the same view computes the same answer.
//!
//! It is **balanced** (shares differ by at most one), **sticky** (a member keeps what it runs,
//! up to its share) and so moves as little as it can: when a member joins, only the surplus of
//! the others moves to it; when one leaves, only its partitions move. A partition reported by
//! two members (a transient disagreement) stays with the first of them by name.

use std::collections::{BTreeMap, BTreeSet};

/// A member as the assignment sees it: its id and the partitions it reports running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The worker's id.
    pub worker: String,
    /// The partitions it runs now.
    pub held: Vec<u32>,
}

/// Returns, for every member, the partitions (of `0..partitions`) it should run. Every
/// partition goes to exactly one member; with no members the map is empty.
pub fn assign(partitions: u32, members: &[Member]) -> BTreeMap<String, BTreeSet<u32>> {
    let names: BTreeSet<&str> = members.iter().map(|m| m.worker.as_str()).collect();
    if names.is_empty() {
        return BTreeMap::new();
    }
    // Who claims each partition now: the first claimant by name wins a contested one.
    let mut owner: BTreeMap<u32, &str> = BTreeMap::new();
    for member in members {
        for &p in member.held.iter().filter(|p| **p < partitions) {
            owner
                .entry(p)
                .and_modify(|o| {
                    if member.worker.as_str() < *o {
                        *o = member.worker.as_str();
                    }
                })
                .or_insert(member.worker.as_str());
        }
    }
    let mut claimed: BTreeMap<&str, Vec<u32>> = names.iter().map(|n| (*n, Vec::new())).collect();
    for (p, o) in &owner {
        claimed
            .get_mut(o)
            .expect("every owner is a member")
            .push(*p);
    }
    // Shares: `base` each, one more for the first `extra` members, given to those that claim
    // the most so that fewer partitions move.
    let count = u32::try_from(names.len()).unwrap_or(u32::MAX);
    let (base, extra) = (partitions / count, partitions % count);
    let mut order: Vec<&str> = names.iter().copied().collect();
    order.sort_by(|a, b| claimed[b].len().cmp(&claimed[a].len()).then(a.cmp(b)));
    let mut result: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    let mut free: Vec<u32> = (0..partitions).filter(|p| !owner.contains_key(p)).collect();
    let mut shares = Vec::with_capacity(order.len());
    for (i, name) in order.iter().enumerate() {
        let share = (base + u32::from((i as u32) < extra)) as usize;
        let mine = &claimed[name];
        free.extend(mine.iter().skip(share));
        result.insert(
            (*name).to_owned(),
            mine.iter().take(share).copied().collect(),
        );
        shares.push((*name, share));
    }
    free.sort_unstable();
    let mut free = free.into_iter();
    for (name, share) in shares {
        let set = result.get_mut(name).expect("inserted above");
        while set.len() < share {
            match free.next() {
                Some(p) => set.insert(p),
                None => break,
            };
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(held: &[(&str, &[u32])]) -> Vec<Member> {
        held.iter()
            .map(|(w, h)| Member {
                worker: (*w).to_owned(),
                held: h.to_vec(),
            })
            .collect()
    }

    fn as_members(map: &BTreeMap<String, BTreeSet<u32>>) -> Vec<Member> {
        map.iter()
            .map(|(w, h)| Member {
                worker: w.clone(),
                held: h.iter().copied().collect(),
            })
            .collect()
    }

    /// Every partition exactly once, and shares that differ by at most one.
    fn check_complete_and_balanced(partitions: u32, map: &BTreeMap<String, BTreeSet<u32>>) {
        let all: Vec<u32> = map.values().flatten().copied().collect();
        let unique: BTreeSet<u32> = all.iter().copied().collect();
        assert_eq!(all.len(), partitions as usize, "a partition twice: {map:?}");
        assert_eq!(
            unique,
            (0..partitions).collect(),
            "a partition missing: {map:?}"
        );
        let sizes: Vec<usize> = map.values().map(BTreeSet::len).collect();
        let (min, max) = (sizes.iter().min(), sizes.iter().max());
        assert!(
            max.zip(min).is_some_and(|(a, b)| a - b <= 1),
            "unbalanced: {map:?}"
        );
    }

    fn moved(
        before: &BTreeMap<String, BTreeSet<u32>>,
        after: &BTreeMap<String, BTreeSet<u32>>,
    ) -> usize {
        before
            .iter()
            .map(|(w, held)| {
                let kept = after.get(w).map_or(0, |now| held.intersection(now).count());
                held.len() - kept
            })
            .sum()
    }

    #[test]
    fn no_members_no_assignment() {
        assert!(assign(8, &[]).is_empty());
    }

    #[test]
    fn a_fresh_set_is_split_evenly_and_deterministically() {
        for (partitions, workers) in [(8u32, 3usize), (12, 4), (3, 5), (1, 2), (16, 1)] {
            let names: Vec<(String, Vec<u32>)> = (0..workers)
                .map(|i| (format!("w{i}"), Vec::new()))
                .collect();
            let ms: Vec<Member> = names
                .iter()
                .map(|(w, h)| Member {
                    worker: w.clone(),
                    held: h.clone(),
                })
                .collect();
            let a = assign(partitions, &ms);
            check_complete_and_balanced(partitions, &a);
            let mut reversed = ms.clone();
            reversed.reverse();
            assert_eq!(
                assign(partitions, &reversed),
                a,
                "order of the input matters"
            );
        }
    }

    #[test]
    fn a_join_moves_only_the_surplus_to_the_newcomer() {
        let three = assign(12, &members(&[("a", &[]), ("b", &[]), ("c", &[])]));
        check_complete_and_balanced(12, &three);
        let mut ms = as_members(&three);
        ms.push(Member {
            worker: "d".to_owned(),
            held: Vec::new(),
        });
        let four = assign(12, &ms);
        check_complete_and_balanced(12, &four);
        assert_eq!(moved(&three, &four), 3, "{three:?} -> {four:?}");
        assert_eq!(four["d"].len(), 3);
    }

    #[test]
    fn a_leave_moves_only_the_leavers_partitions() {
        let four = assign(
            12,
            &members(&[("a", &[]), ("b", &[]), ("c", &[]), ("d", &[])]),
        );
        let gone = four["b"].clone();
        let rest: Vec<Member> = as_members(&four)
            .into_iter()
            .filter(|m| m.worker != "b")
            .collect();
        let three = assign(12, &rest);
        check_complete_and_balanced(12, &three);
        for (w, held) in &three {
            assert!(
                four[w].is_subset(held),
                "{w} lost partitions: {four:?} -> {three:?}"
            );
        }
        let taken: BTreeSet<u32> = three
            .iter()
            .flat_map(|(w, held)| held.difference(&four[w]).copied())
            .collect();
        assert_eq!(taken, gone);
    }

    #[test]
    fn a_stable_assignment_is_a_fixed_point() {
        let a = assign(10, &members(&[("x", &[]), ("y", &[]), ("z", &[])]));
        assert_eq!(assign(10, &as_members(&a)), a);
    }

    #[test]
    fn uneven_claims_keep_the_most_and_contests_go_to_the_first_name() {
        // b claims everything (it ran alone), a joins and also claims 0 (a stale report).
        let a = assign(4, &members(&[("b", &[0, 1, 2, 3]), ("a", &[0])]));
        check_complete_and_balanced(4, &a);
        assert!(
            a["a"].contains(&0),
            "the contested partition goes to the first name"
        );
        assert!(a["b"].is_subset(&[1, 2, 3].into()), "{a:?}");
        // Out-of-range claims (another count) are ignored.
        let b = assign(2, &members(&[("a", &[5, 7]), ("b", &[])]));
        check_complete_and_balanced(2, &b);
    }

    #[test]
    fn more_members_than_partitions_leaves_some_idle() {
        let a = assign(2, &members(&[("a", &[]), ("b", &[]), ("c", &[])]));
        check_complete_and_balanced(2, &a);
        assert_eq!(a.values().filter(|h| h.is_empty()).count(), 1);
    }
}
