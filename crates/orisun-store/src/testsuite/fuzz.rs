//! Time-bounded fuzzing for the `tests/fuzz.rs` targets of every crate: a proptest strategy run
//! in random mode for a wall-clock budget instead of a case count, with a seed that is printed on
//! failure (and can be set) so that a failure replays, and shrinking of the failing input.
//!
//! The budget is [`SECONDS_ENV`] seconds per target (default [`DEFAULT_SECONDS`]): the suite runs
//! a short pass, a soak sets it higher. [`SEED_ENV`] fixes the seed.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Seconds each fuzz target runs for (`ORISUN_FUZZ_SECONDS=60` for a soak).
pub const SECONDS_ENV: &str = "ORISUN_FUZZ_SECONDS";

/// The seed of every target's generator (decimal `u64`), to replay a failure.
pub const SEED_ENV: &str = "ORISUN_FUZZ_SEED";

/// Seconds per target when [`SECONDS_ENV`] is not set: long enough for tens of thousands of
/// inputs per parser, short enough that the targets of one crate add about that to the suite.
pub const DEFAULT_SECONDS: f64 = 10.0;

/// Returns the budget of one fuzz target: [`SECONDS_ENV`], else `default_seconds`.
pub fn budget(default_seconds: f64) -> Duration {
    let seconds = std::env::var(SECONDS_ENV)
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(default_seconds);
    Duration::from_secs_f64(seconds)
}

/// Returns the seed from [`SEED_ENV`], or a fresh one (printed with any failure).
pub fn seed() -> u64 {
    std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            // Truncation is fine: any 64 bits of the clock make a seed.
            splitmix(nanos as u64 ^ u64::from(std::process::id()))
        })
}

/// One step of SplitMix64: spreads a seed's bits so that nearby seeds give unrelated streams.
pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A proptest runner whose random stream is fixed by `seed` (and `target`, so that targets
/// sharing a seed still explore different inputs).
pub fn runner(target: &str, seed: u64) -> TestRunner {
    let mut x = target.bytes().fold(seed, |h, b| splitmix(h ^ u64::from(b)));
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        x = splitmix(x);
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    let config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// What a fuzz target did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuzzReport {
    /// Inputs checked.
    pub iterations: u64,
    /// The seed of the run.
    pub seed: u64,
}

/// Runs `check` on inputs drawn from `strategy` for the budget ([`budget`] of
/// [`DEFAULT_SECONDS`]), and panics on the first input for which it returns an error or panics,
/// after shrinking that input, naming the target, the seed and the smallest failing input.
/// Prints the number of inputs checked.
pub fn fuzz<S>(
    target: &str,
    strategy: S,
    check: impl Fn(&S::Value) -> Result<(), String>,
) -> FuzzReport
where
    S: Strategy,
    S::Value: Debug,
{
    fuzz_for(target, budget(DEFAULT_SECONDS), strategy, check)
}

/// [`fuzz`] with an explicit budget.
pub fn fuzz_for<S>(
    target: &str,
    budget: Duration,
    strategy: S,
    check: impl Fn(&S::Value) -> Result<(), String>,
) -> FuzzReport
where
    S: Strategy,
    S::Value: Debug,
{
    let seed = seed();
    let mut runner = runner(target, seed);
    let started = Instant::now();
    let mut iterations = 0u64;
    while iterations == 0 || started.elapsed() < budget {
        let mut tree = match strategy.new_tree(&mut runner) {
            Ok(tree) => tree,
            // A strategy that filters may reject a draw; it is not an input.
            Err(_) => continue,
        };
        iterations += 1;
        let Err(first) = run(&check, &tree.current()) else {
            continue;
        };
        let (input, error) = shrink(&check, &mut tree, first);
        panic!(
            "fuzz target {target} failed after {iterations} inputs \
             (replay: {SEED_ENV}={seed} {SECONDS_ENV}={})\n\
             smallest failing input: {input:#?}\nerror: {error}",
            budget
                .as_secs_f64()
                .max(started.elapsed().as_secs_f64())
                .ceil()
        );
    }
    eprintln!(
        "fuzz target {target}: {iterations} inputs in {:.1} s, no failure (seed {seed})",
        started.elapsed().as_secs_f64()
    );
    FuzzReport { iterations, seed }
}

/// Runs the check, turning a panic into an error that carries its message.
fn run<V>(check: &impl Fn(&V) -> Result<(), String>, value: &V) -> Result<(), String> {
    match catch_unwind(AssertUnwindSafe(|| check(value))) {
        Ok(result) => result,
        Err(panic) => Err(format!(
            "panicked: {}",
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)")
        )),
    }
}

/// Proptest's shrinking loop: simplify while the input still fails, step back when it passes.
/// Bounded, so that a slow check cannot make a failure take forever to report.
fn shrink<T: ValueTree>(
    check: &impl Fn(&T::Value) -> Result<(), String>,
    tree: &mut T,
    first: String,
) -> (T::Value, String) {
    let mut smallest = (tree.current(), first);
    let mut steps = 0;
    if !tree.simplify() {
        return smallest;
    }
    while steps < 4_096 {
        steps += 1;
        let value = tree.current();
        let more = match run(check, &value) {
            Err(error) => {
                smallest = (value, error);
                tree.simplify()
            }
            Ok(()) => tree.complicate(),
        };
        if !more {
            break;
        }
    }
    smallest
}

/// Near-valid text: `valid` with a few random edits (a character deleted, inserted, replaced by
/// one that is special to JSON, UTF-8 or SQL, the text truncated or a piece repeated), the shape
/// of input that exercises a parser's error paths rather than its first byte check.
pub fn mutated(valid: String) -> impl Strategy<Value = String> {
    let edit = (0usize..6, any::<usize>(), special_char(), 1usize..16);
    prop::collection::vec(edit, 1..4).prop_map(move |edits| {
        let mut chars: Vec<char> = valid.chars().collect();
        for (kind, at, c, n) in edits {
            let i = if chars.is_empty() {
                0
            } else {
                at % chars.len()
            };
            match kind {
                0 if !chars.is_empty() => {
                    chars.remove(i);
                }
                1 => chars.insert(i, c),
                2 if !chars.is_empty() => chars[i] = c,
                3 => chars.truncate(i),
                4 if !chars.is_empty() => {
                    let end = (i + n).min(chars.len());
                    let piece: Vec<char> = chars[i..end].to_vec();
                    chars.splice(i..i, piece);
                }
                _ => chars.insert(i, c),
            }
        }
        chars.into_iter().collect()
    })
}

/// A character that parsers treat specially, or any character at all.
pub fn special_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(vec![
            '"', '\\', '{', '}', '[', ']', ':', ',', '.', '-', '+', 'e', '0', '9', ' ', '\n', '\t',
            '\0', '\u{7f}', '\u{ad}', '\u{feff}', '\u{fffd}', '\u{10ffff}', 'é', '😀', '\'', ';',
            '%', '_', '=', '/', 'n', 'u', 't',
        ]),
        1 => any::<char>(),
    ]
}

/// Any text, biased towards the characters of [`special_char`] and towards short strings.
pub fn odd_text(max_len: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(special_char(), 0..=max_len).prop_map(|c| c.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_inputs() {
        let draw = |seed| {
            let mut runner = runner("t", seed);
            (0..20)
                .map(|_| any::<u64>().new_tree(&mut runner).expect("tree").current())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn reports_and_shrinks_a_failure() {
        let outcome = catch_unwind(|| {
            fuzz_for(
                "demo",
                Duration::from_secs(5),
                0u32..1_000_000,
                |n| match *n >= 1000 {
                    true => Err(format!("{n} too big")),
                    false => Ok(()),
                },
            )
        });
        let panic = outcome.expect_err("fails");
        let message = panic.downcast_ref::<String>().expect("message");
        assert!(
            message.contains("smallest failing input: 1000"),
            "{message}"
        );
        assert!(message.contains(SEED_ENV), "{message}");
    }

    #[test]
    fn mutations_stay_near_the_original() {
        let mut runner = runner("m", 1);
        let original = r#"{"a":"b"}"#.to_owned();
        let strategy = mutated(original.clone());
        let mut changed = 0;
        for _ in 0..200 {
            let text = strategy.new_tree(&mut runner).expect("tree").current();
            assert!(text.chars().count() <= original.len() + 3 * 16);
            changed += usize::from(text != original);
        }
        assert!(changed > 150, "{changed} of 200 mutated");
    }
}
