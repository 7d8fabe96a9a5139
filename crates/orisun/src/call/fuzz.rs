//! Fuzz targets for `orisun call`'s input: the method name and the request JSON, mapped onto
//! every RPC's message by the compiled descriptors. They live beside the private parser they
//! test (the binary has no library to reach it from `tests/`), with the shared time-bounded
//! runner: `ORISUN_FUZZ_SECONDS` (default 10) per target.
//! Soak: `ORISUN_FUZZ_SECONDS=60 cargo test -p orisun --bin orisun call::fuzz -- --nocapture`.

use super::{find_method, parse_request, to_json};
use orisun_store::testsuite::fuzz::{fuzz, mutated, odd_text};
use proptest::prelude::*;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor};

fn methods() -> Vec<MethodDescriptor> {
    let pool =
        DescriptorPool::decode(orisun_proto::FILE_DESCRIPTOR_SET).expect("compiled descriptors");
    pool.services()
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .collect()
}

/// Requests as the README and scripts write them, the seeds of near-valid input.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "SaveEvents",
        r#"{"boundary":"orders","query":{"expectedPosition":{"commitPosition":"3","preparePosition":2},"subsetQuery":{"criteria":[{"tags":[{"key":"id","value":"1"}]}]}},"events":[{"eventId":"0191b5e0-0000-7000-8000-000000000001","eventType":"Created","data":"{\"id\":1}","metadata":""}]}"#,
    ),
    (
        "GetEvents",
        r#"{"boundary":"orders","count":10,"direction":"DESC","fromPosition":{"commit_position":5,"prepare_position":4},"query":{"criteria":[]}}"#,
    ),
    (
        "CatchUpSubscribeToEvents",
        r#"{"boundary":"orders","subscriberName":"s1","afterPosition":{"commitPosition":-1,"preparePosition":-1}}"#,
    ),
    (
        "CreateUser",
        r#"{"name":"Ops","username":"ops","password":"secret","roles":["OPERATIONS"]}"#,
    ),
    (
        "orisun.EventStore/CreateIndex",
        r#"{"boundary":"orders","name":"by_id","fields":[{"jsonKey":"id","valueType":"NUMERIC"}],"conditions":[{"key":"a","operator":"=","value":"1"}],"conditionCombinator":"OR"}"#,
    ),
];

/// Any decodable request of any RPC, printed as `orisun call` prints messages, parses back to
/// the same message: JSON output can be fed back as input.
#[test]
fn request_json_round_trips() {
    let methods = methods();
    let n = methods.len();
    let input = (
        0..n,
        prop::collection::vec(any::<u8>(), 0..128),
        any::<bool>(),
    );
    fuzz(
        "call_request_json_round_trips",
        input,
        |(i, bytes, compact)| {
            let method = &methods[*i];
            let Ok(message) = DynamicMessage::decode(method.input(), bytes.as_slice()) else {
                return Ok(());
            };
            // Some values have no JSON form (a timestamp out of range): an error, not a panic.
            let Ok(json) = to_json(&message, *compact) else {
                return Ok(());
            };
            let back = parse_request(method, Some(&json)).map_err(|e| format!("{json}: {e:#}"))?;
            let again = to_json(&back, *compact).map_err(|e| e.to_string())?;
            if again != json {
                return Err(format!("{json} came back as {again}"));
            }
            Ok(())
        },
    );
}

/// Near-valid request JSON (edited examples, edited printed messages) and odd method names:
/// either a message that prints and parses back the same, or an error that says which message
/// the JSON should have been; never a panic.
#[test]
fn request_json_near_valid() {
    let methods = methods();
    let k = EXAMPLES.len();
    let edited = (0..k).prop_flat_map(|i| (Just(i), mutated(EXAMPLES[i].1.to_owned())));
    let names = prop_oneof![
        3 => (0..methods.len()).prop_map({
            let methods = methods.clone();
            move |i| format!("{}/{}", methods[i].parent_service().full_name(), methods[i].name())
        }),
        2 => (0..methods.len()).prop_map({
            let methods = methods.clone();
            move |i| methods[i].name().to_owned()
        }).prop_flat_map(mutated),
        1 => odd_text(20),
    ];
    let pool = DescriptorPool::decode(orisun_proto::FILE_DESCRIPTOR_SET).expect("pool");
    let examples: Vec<MethodDescriptor> = EXAMPLES
        .iter()
        .map(|(name, _)| find_method(&pool, name).expect("example method"))
        .collect();
    fuzz(
        "call_request_json_near_valid",
        (edited, names),
        |((i, text), name)| {
            let method = &examples[*i];
            // `@path` and `-` name a file and standard input, not JSON: not this target's input.
            if text.starts_with('@') || text == "-" {
                return Ok(());
            }
            match parse_request(method, Some(text)) {
                Ok(message) => {
                    let json = to_json(&message, true).map_err(|e| e.to_string())?;
                    let back = parse_request(method, Some(&json)).map_err(|e| e.to_string())?;
                    // Compared as printed: `{}` and its printout (defaults written out) are the
                    // same request, though one has its default fields set explicitly.
                    let again = to_json(&back, true).map_err(|e| e.to_string())?;
                    if again != json {
                        return Err(format!("{text} -> {json} -> {again}"));
                    }
                }
                Err(e) => {
                    let said = e.to_string();
                    let whose = format!(
                        "the request is not a valid {} in JSON",
                        method.input().full_name()
                    );
                    if said != whose && said != "trailing characters after the request JSON" {
                        return Err(format!("imprecise error: {said}"));
                    }
                }
            }
            match find_method(&pool, name) {
                Ok(found) => {
                    let full = format!("{}/{}", found.parent_service().full_name(), found.name());
                    let plain = name.trim_start_matches('/');
                    if plain != full && plain != found.name() {
                        return Err(format!("{name:?} found {full}"));
                    }
                }
                Err(e) => {
                    let said = e.to_string();
                    if !said.starts_with("unknown RPC") && !said.contains("is ambiguous") {
                        return Err(format!("imprecise error: {said}"));
                    }
                }
            }
            Ok(())
        },
    );
}
