//! Fuzz targets for the server's own parsers: the authentication headers (Basic and token, with
//! the token format's decoding and signature check behind them), configuration values
//! (durations, `ORISUN_BOUNDARIES` JSON, `ORISUN_PG_SCHEMAS`, numbers, through the same clap
//! parser `orisun serve` uses), subscriber names and index names and definitions.
//!
//! Each target runs for `ORISUN_FUZZ_SECONDS` (default 10) on random and near-valid input and
//! checks: no panic, the precise error for bad input, and the decoded value for good input.
//! Soak: `ORISUN_FUZZ_SECONDS=60 cargo test -p orisun-server --test fuzz -- --nocapture`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::Parser;
use orisun_core::BoundaryName;
use orisun_proto as pb;
use orisun_server::auth::{authenticate_headers, Auth, AuthError, TOKEN_HEADER};
use orisun_server::config::parse_duration;
use orisun_server::{indexes, subscriptions, Config};
use orisun_store::testsuite::fuzz::{fuzz, mutated, odd_text};
use orisun_store::{EventStore, MemoryStore};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tonic::codegen::http::{header::AUTHORIZATION, HeaderMap, HeaderValue};

const ADMIN: (&str, &str) = ("admin", "changeit");

// ---------------------------------------------------------------------------------------------
// Authentication headers

/// How a generated header was made, so the oracle knows what the server must answer.
#[derive(Debug, Clone)]
enum Header {
    /// No header.
    Absent,
    /// The exact valid value (the admin's Basic credentials or the token issued to them).
    Valid,
    /// Anything else: malformed, a near miss, or a well-formed wrong value.
    Other(String),
}

fn basic_header() -> impl Strategy<Value = Header> {
    let valid = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", ADMIN.0, ADMIN.1))
    );
    prop_oneof![
        2 => Just(Header::Absent),
        2 => Just(Header::Valid),
        // Near misses of the header text: mostly malformed, a few well-formed wrong passwords
        // (each costs an argon2 verification, so they are rare).
        4 => mutated(valid).prop_map(Header::Other),
        1 => (prop::sample::select(vec!["Basic", "basic", "BASIC", "Bearer", "Basic\t", ""]), odd_text(30))
            .prop_map(|(scheme, rest)| Header::Other(format!("{scheme} {rest}"))),
        1 => (prop::sample::select(vec!["Basic ", "bAsIc  "]), odd_text(16))
            .prop_map(|(scheme, text)| Header::Other(format!("{scheme}{}", STANDARD.encode(text)))),
    ]
}

fn token_header() -> impl Strategy<Value = Header> {
    prop_oneof![
        3 => Just(Header::Absent),
        2 => Just(Header::Valid),
        // Tokens are `v1.<payload>.<mac>`: edit the real one (in the payload or the MAC).
        4 => Just(()).prop_map(|_| Header::Other(String::new())),
        2 => odd_text(40).prop_map(Header::Other),
    ]
}

/// Builds a header map; `None` when a generated value is not a legal header value at all
/// (HTTP/2 would refuse it before it reached the server).
fn headers(
    basic: &Header,
    token: &Header,
    token_edit: &str,
    valid_token: &str,
) -> Option<(HeaderMap, Option<String>, Option<String>)> {
    let mut map = HeaderMap::new();
    let basic_text = match basic {
        Header::Absent => None,
        Header::Valid => Some(format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", ADMIN.0, ADMIN.1))
        )),
        Header::Other(text) => Some(text.clone()),
    };
    let token_text = match token {
        Header::Absent => None,
        Header::Valid => Some(valid_token.to_owned()),
        Header::Other(text) if text.is_empty() => Some(token_edit.to_owned()),
        Header::Other(text) => Some(text.clone()),
    };
    if let Some(text) = &basic_text {
        map.insert(AUTHORIZATION, HeaderValue::from_str(text).ok()?);
    }
    if let Some(text) = &token_text {
        map.insert(TOKEN_HEADER, HeaderValue::from_str(text).ok()?);
    }
    Some((map, basic_text, token_text))
}

/// What `Basic` parsing must make of a header: the credentials, or `None` when malformed.
fn basic_credentials(text: &str) -> Option<(String, String)> {
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (u, p) = decoded.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

#[test]
fn auth_headers() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (auth, token) = runtime.block_on(async {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let admin = BoundaryName::new("orisun_admin").expect("name");
        let auth = Auth::start(store, orisun_server::auth::AuthConfig::new(admin))
            .await
            .expect("auth starts");
        let mut map = HeaderMap::new();
        let basic = format!("Basic {}", STANDARD.encode("admin:changeit"));
        map.insert(AUTHORIZATION, basic.parse().expect("header"));
        let (_, token) = authenticate_headers(&auth, &map)
            .await
            .expect("admin logs in");
        (auth, token)
    });
    let input = (basic_header(), token_header(), mutated(token.clone()));
    fuzz("auth_headers", input, |(basic, tok, edit)| {
        let Some((map, basic_text, token_text)) = headers(basic, tok, edit, &token) else {
            return Ok(());
        };
        let result = runtime.block_on(authenticate_headers(&auth, &map));
        let token_given = token_text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let token_ok = token_given == Some(token.as_str());
        let credentials = basic_text.as_deref().map(basic_credentials);
        let basic_ok = matches!(&credentials, Some(Some((u, p))) if u == ADMIN.0 && p == ADMIN.1);
        match (result, token_ok, basic_ok) {
            (Ok((caller, returned)), true, _) => {
                if caller.username != ADMIN.0 || returned != token {
                    return Err(format!("token call answered {caller:?} {returned}"));
                }
                Ok(())
            }
            (Ok((caller, _)), false, true) if caller.username == ADMIN.0 => Ok(()),
            (Ok(accepted), false, false) => Err(format!("bad credentials accepted: {accepted:?}")),
            (Ok(other), ..) => Err(format!("wrong caller {other:?}")),
            (Err(e), true, _) | (Err(e), _, true) => Err(format!("valid credentials refused: {e}")),
            (Err(e), false, false) => {
                let expected = match (&credentials, token_given) {
                    (Some(None), _) => AuthError::BadFormat,
                    (Some(Some(_)), _) => AuthError::InvalidCredentials,
                    // A token that is not exactly ours fails its signature or its format.
                    (None, Some(_)) => AuthError::InvalidCredentials,
                    (None, None) => AuthError::Missing,
                };
                if e != expected {
                    return Err(format!("expected {expected:?}, got {e:?}"));
                }
                Ok(())
            }
        }
    });
}

/// Found by `auth_headers`: a token header with non-ASCII bytes was answered "missing
/// authorization header", as if no credential had been sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_token_is_an_invalid_credential() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let admin = BoundaryName::new("orisun_admin").expect("name");
    let auth = Auth::start(store, orisun_server::auth::AuthConfig::new(admin))
        .await
        .expect("auth starts");
    let mut map = HeaderMap::new();
    map.insert(
        TOKEN_HEADER,
        HeaderValue::from_bytes("¡v1.e30.AAAA".as_bytes()).expect("obs-text is a legal value"),
    );
    let result = authenticate_headers(&auth, &map).await;
    assert_eq!(
        result.map(|(caller, _)| caller),
        Err(AuthError::InvalidCredentials)
    );
}

// ---------------------------------------------------------------------------------------------
// Configuration values

/// A duration as an operator writes it, with its value computed independently.
fn duration_text() -> impl Strategy<Value = (String, Option<Duration>)> {
    let unit = prop::sample::select(vec![
        ("ms", 1u64),
        ("s", 1_000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
    ]);
    let valid = prop_oneof![
        (0u64..100_000).prop_map(|n| (n.to_string(), Some(Duration::from_secs(n)))),
        prop::collection::vec((0u64..10_000, unit), 1..4).prop_map(|parts| {
            let text: String = parts.iter().map(|(n, (u, _))| format!("{n}{u}")).collect();
            let ms: u64 = parts.iter().map(|(n, (_, f))| n * f).sum();
            (text, Some(Duration::from_millis(ms)))
        }),
    ];
    prop_oneof![
        3 => valid.clone(),
        3 => valid.prop_flat_map(|(text, _)| mutated(text)).prop_map(|t| (t, None)),
        1 => odd_text(12).prop_map(|t| (t, None)),
        1 => "[0-9]{15,30}(ms|s|m|h|d)?".prop_map(|t| (t, None)),
    ]
}

/// The duration syntax, decided character by character: `None` when invalid.
fn duration_oracle(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let mut digits = String::new();
        while let Some(c) = chars.peek().filter(|c| c.is_ascii_digit()) {
            digits.push(*c);
            chars.next();
        }
        let mut unit = String::new();
        while let Some(c) = chars.peek().filter(|c| !c.is_ascii_digit()) {
            unit.push(*c);
            chars.next();
        }
        let n: u64 = digits.parse().ok()?;
        let part = match unit.as_str() {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            _ => return None,
        };
        total = total.saturating_add(part);
    }
    Some(total)
}

fn parse_config(args: &[&str]) -> Result<Config, clap::Error> {
    Config::try_parse_from(std::iter::once("orisun serve").chain(args.iter().copied()))
}

#[test]
fn config_durations() {
    let flags = prop::sample::select(vec![
        "--auth-token-ttl",
        "--subscriber-lease-ttl",
        "--grpc-keep-alive-time",
        "--grpc-keep-alive-timeout",
        "--shutdown-timeout",
        "--nats-event-stream-max-age",
    ]);
    fuzz(
        "config_durations",
        (flags, duration_text()),
        |(flag, (text, known))| {
            let parsed = parse_duration(text);
            let oracle = duration_oracle(text);
            if parsed.as_ref().ok() != oracle.as_ref() {
                return Err(format!("{text:?}: parsed {parsed:?}, expected {oracle:?}"));
            }
            if let (Some(known), Ok(value)) = (known, &parsed) {
                if known != value {
                    return Err(format!("{text:?} is {known:?}, parsed {value:?}"));
                }
            }
            if let Err(reason) = &parsed {
                if !reason.starts_with("empty duration") && !reason.starts_with("invalid duration")
                {
                    return Err(format!("imprecise error {reason:?}"));
                }
            }
            // Through the configuration parser, as `orisun serve` reads it.
            match (parse_config(&[flag, text]), parsed) {
                (Ok(config), Ok(value)) => {
                    let read = match *flag {
                        "--auth-token-ttl" => config.auth.auth_token_ttl,
                        "--subscriber-lease-ttl" => config.subscriptions.subscriber_lease_ttl,
                        "--grpc-keep-alive-time" => config.grpc.grpc_keep_alive_time,
                        "--grpc-keep-alive-timeout" => config.grpc.grpc_keep_alive_timeout,
                        "--shutdown-timeout" => config.grpc.shutdown_timeout,
                        _ => config.nats.nats_event_stream_max_age,
                    };
                    if read != value {
                        return Err(format!("{flag} {text:?} configured {read:?}"));
                    }
                    // Cross-variable checks may refuse a value (a zero TTL), never panic.
                    let _ = config.validate();
                    Ok(())
                }
                (Err(e), Err(_)) if e.kind() == clap::error::ErrorKind::ValueValidation => Ok(()),
                // clap reads a value starting with `-` as a flag.
                (Err(_), _) if text.starts_with('-') => Ok(()),
                (other, parsed) => Err(format!("{flag} {text:?}: {other:?} vs {parsed:?}")),
            }
        },
    );
}

fn boundary_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["orders", "payments", "a", "_x", "orisun_admin"]).prop_map(String::from),
        2 => "[A-Za-z_][A-Za-z0-9_]{0,66}",
        1 => "[A-Za-z_][A-Za-z0-9_]{0,10}".prop_flat_map(mutated),
        1 => odd_text(6),
    ]
}

fn is_identifier(name: &str) -> bool {
    BoundaryName::new(name).is_ok()
        && name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
}

#[test]
fn config_boundaries_json() {
    let def = || {
        (
            boundary_name(),
            prop::option::of(odd_text(10)),
            any::<bool>(),
        )
    };
    let list = || {
        prop::collection::vec(def(), 0..5).prop_map(|defs| {
            let values: Vec<Value> = defs
                .iter()
                .map(|(name, description, extra)| {
                    let mut v = json!({ "name": name });
                    if let Some(d) = description {
                        v["description"] = json!(d);
                    }
                    if *extra {
                        v["unknown"] = json!(1);
                    }
                    v
                })
                .collect();
            (Value::Array(values).to_string(), Some(defs))
        })
    };
    let text = prop_oneof![
        3 => list(),
        2 => list().prop_flat_map(|(text, _)| mutated(text)).prop_map(|t| (t, None)),
        1 => odd_text(20).prop_map(|t| (t, None)),
    ];
    fuzz("config_boundaries_json", text, |(text, defs)| {
        let result = parse_config(&["--boundaries", text]);
        let Some(defs) = defs else {
            // Near-valid text: any outcome but a panic, and a refusal says what was expected.
            return match result {
                Ok(config) => {
                    let _ = config.validate();
                    Ok(())
                }
                Err(e) if e.to_string().contains("expected a JSON list like") => Ok(()),
                Err(_) if text.trim_start().starts_with('-') => Ok(()),
                Err(e) => Err(format!("imprecise error: {e}")),
            };
        };
        let all_valid = defs.iter().all(|(n, ..)| is_identifier(n));
        match result {
            Ok(config) if all_valid => {
                let declared: Vec<(&str, &str)> = config
                    .boundaries
                    .declared()
                    .iter()
                    .map(|b| (b.name.as_str(), b.description.as_str()))
                    .collect();
                let expected: Vec<(&str, &str)> = defs
                    .iter()
                    .map(|(n, d, _)| (n.as_str(), d.as_deref().unwrap_or("")))
                    .collect();
                if declared != expected {
                    return Err(format!("declared {declared:?}"));
                }
                let mut names: Vec<&str> = defs.iter().map(|(n, ..)| n.as_str()).collect();
                names.sort_unstable();
                let twice = names.windows(2).any(|w| w[0] == w[1]);
                match config.validate() {
                    Err(e) if twice && e.variable == "ORISUN_BOUNDARIES" => Ok(()),
                    Ok(()) if !twice => Ok(()),
                    other => Err(format!("validate said {other:?} (twice: {twice})")),
                }
            }
            Err(e) if !all_valid && e.to_string().contains("boundary") => Ok(()),
            other => Err(format!("valid: {all_valid}, got {other:?}")),
        }
    });
}

#[test]
fn config_pg_schemas_and_numbers() {
    let pair = (
        boundary_name(),
        boundary_name(),
        prop::sample::select(vec![":", " : ", "", "::"]),
    )
        .prop_map(|(b, s, sep)| format!("{b}{sep}{s}"));
    let schemas = prop_oneof![
        3 => prop::collection::vec(pair, 1..4).prop_map(|p| p.join(",")),
        1 => odd_text(20),
    ];
    let number = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        "[0-9]{1,25}",
        odd_text(6),
    ];
    let numeric = prop::sample::select(vec![
        "--grpc-port",
        "--grpc-max-receive-message-size",
        "--grpc-max-concurrent-streams",
        "--pg-write-max-open-conns",
        "--nats-event-stream-max-msgs",
        "--nats-event-stream-max-bytes",
    ]);
    fuzz(
        "config_pg_schemas_and_numbers",
        (schemas, numeric, number),
        |(schemas, flag, number)| {
            let expected_ok = schemas.split(',').all(|piece| {
                piece
                    .trim()
                    .split_once(':')
                    .is_some_and(|(b, s)| is_identifier(b.trim()) && is_identifier(s.trim()))
            });
            match parse_config(&["--pg-schemas", schemas]) {
                Ok(config) => {
                    if !expected_ok {
                        return Err(format!("{schemas:?} accepted"));
                    }
                    let _ = config.validate();
                    let _ = config.startup_boundaries();
                }
                Err(_) if schemas.starts_with('-') => {}
                Err(e) if !expected_ok && e.kind() == clap::error::ErrorKind::ValueValidation => {}
                Err(e) => return Err(format!("{schemas:?} refused: {e}")),
            }
            if let Ok(config) = parse_config(&[flag, number]) {
                let _ = config.validate();
                let _ = config.grpc.server_builder();
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Names and index definitions

#[test]
fn subscriber_and_index_names() {
    let name = prop_oneof![
        3 => "[A-Za-z0-9_.:-]{0,40}",
        1 => "[a-z]{250,260}",
        2 => "[A-Za-z_][A-Za-z0-9_]{0,10}".prop_flat_map(mutated),
        2 => odd_text(12),
        1 => any::<String>(),
    ];
    let field = ("[a-z]{0,6}", -1i32..5).prop_map(|(json_key, value_type)| pb::IndexField {
        json_key,
        value_type,
    });
    let condition = (
        "[a-z]{0,4}",
        prop::sample::select(vec!["=", ">", "<", ">=", "<=", "!=", "like", ""]),
        odd_text(5),
    )
        .prop_map(|(key, operator, value)| pb::IndexCondition {
            key,
            operator: operator.to_owned(),
            value,
        });
    let request = (
        prop::collection::vec(field, 0..4),
        prop::collection::vec(condition, 0..3),
        -1i32..3,
    );
    fuzz(
        "subscriber_and_index_names",
        (name, request),
        |(name, (fields, conditions, combinator))| {
            let subscriber_ok = name.len() <= subscriptions::MAX_NAME_LEN
                && !name.chars().any(|c| c.is_whitespace() || c.is_control());
            match subscriptions::validate_name(name) {
                Ok(()) if subscriber_ok => {}
                Err(s)
                    if !subscriber_ok
                        && s.code() == tonic::Code::InvalidArgument
                        && s.message().starts_with("subscriber_name: ") => {}
                other => return Err(format!("subscriber name {name:?}: {other:?}")),
            }
            match (indexes::validate_name(name), is_identifier(name)) {
                (Ok(n), true) if n == *name => {}
                (Err(e), false) if e.field == "name" => {}
                other => return Err(format!("index name {name:?}: {other:?}")),
            }
            let request = pb::CreateIndexRequest {
                boundary: "orders".into(),
                name: name.clone(),
                fields: fields.clone(),
                conditions: conditions.clone(),
                condition_combinator: *combinator,
            };
            let boundary = BoundaryName::new("orders").map_err(|e| e.to_string())?;
            match indexes::validate_create(boundary, &request) {
                Ok(def) if def.name == *name => Ok(()),
                Ok(def) => Err(format!("definition renamed: {def:?}")),
                Err(e) if e.field.is_empty() || e.reason.is_empty() => {
                    Err(format!("imprecise error {e:?}"))
                }
                Err(_) => Ok(()),
            }
        },
    );
}
