//! `orisun call`: sends one RPC with a JSON request and prints the JSON response, so that docs
//! and scripts need no grpcurl.
//!
//! The request JSON is mapped to a dynamic protobuf message with the descriptors compiled into
//! `orisun-proto` (proto3 JSON mapping: field names in either `snake_case` or `lowerCamelCase`,
//! enums by name, positions as numbers or strings), sent with a raw tonic codec, and the
//! response is printed as JSON (all fields, 64-bit numbers as numbers). A streaming RPC prints
//! one JSON object per line.

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use clap::Args;
use futures::StreamExt;
use prost::Message;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, MethodDescriptor,
    SerializeOptions,
};
use std::io::Read;
use std::path::PathBuf;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Code, Status};

/// Arguments of `orisun call`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    orisun call orisun.EventStore/Ping\n  \
    orisun call orisun.EventStore/GetEvents '{\"boundary\":\"orders\",\"count\":10}'\n  \
    orisun call --list")]
pub struct CallArgs {
    /// The RPC: `orisun.EventStore/SaveEvents`, `orisun.Admin/ListUsers`, or just `SaveEvents`.
    #[arg(required_unless_present = "list")]
    pub method: Option<String>,

    /// The request as JSON; `@path` reads a file, `-` reads standard input. Default `{}`.
    pub request: Option<String>,

    /// Server address.
    #[arg(long, env = "ORISUN_ADDR", default_value = "http://127.0.0.1:5005")]
    pub addr: String,

    /// Username for Basic authentication.
    #[arg(long, short = 'u', env = "ORISUN_USER", default_value = "admin")]
    pub user: String,

    /// Password for Basic authentication.
    #[arg(
        long,
        short = 'p',
        env = "ORISUN_PASSWORD",
        default_value = "changeit",
        hide_env_values = true
    )]
    pub password: String,

    /// Session token (`x-auth-token`) to send instead of the username and password.
    #[arg(long, env = "ORISUN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Print the `x-auth-token` the server returns (on standard error).
    #[arg(long)]
    pub show_token: bool,

    /// Stop a streaming call after this many messages.
    #[arg(long)]
    pub limit: Option<usize>,

    /// Print each response on one line (streaming responses always are).
    #[arg(long)]
    pub compact: bool,

    /// CA certificate (PEM) to trust for an `https://` address.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,

    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, requires = "client_key")]
    pub client_cert: Option<PathBuf>,

    /// Client private key (PEM) for mutual TLS.
    #[arg(long, requires = "client_cert")]
    pub client_key: Option<PathBuf>,

    /// List the RPCs and exit.
    #[arg(long)]
    pub list: bool,
}

/// Runs the call; the error is printed by `main`.
pub async fn run(args: CallArgs) -> anyhow::Result<()> {
    let pool = DescriptorPool::decode(orisun_proto::FILE_DESCRIPTOR_SET)
        .context("decoding the compiled descriptors")?;
    if args.list {
        for service in pool.services() {
            for method in service.methods() {
                let streaming = if method.is_server_streaming() {
                    " (stream)"
                } else {
                    ""
                };
                println!("{}/{}{streaming}", service.full_name(), method.name());
            }
        }
        return Ok(());
    }
    let name = args.method.as_deref().unwrap_or_default();
    let method = find_method(&pool, name)?;
    let request = parse_request(&method, args.request.as_deref())?;
    let channel = connect(&args).await?;
    let path = PathAndQuery::try_from(format!(
        "/{}/{}",
        method.parent_service().full_name(),
        method.name()
    ))
    .context("building the method path")?;
    let codec = DynamicCodec {
        response: method.output(),
    };
    let mut grpc = tonic::client::Grpc::new(channel).accept_compressed(CompressionEncoding::Gzip);
    grpc.ready().await.context("connecting")?;
    let request = authorize(tonic::Request::new(request), &args)?;
    let print = |message: &DynamicMessage, compact: bool| -> anyhow::Result<()> {
        println!("{}", to_json(message, compact)?);
        Ok(())
    };
    if method.is_server_streaming() {
        let response = grpc
            .server_streaming(request, path, codec)
            .await
            .map_err(status_error)?;
        show_token(&args, response.metadata());
        let mut stream = response.into_inner();
        let mut seen = 0usize;
        while args.limit.is_none_or(|limit| seen < limit) {
            match stream.next().await {
                Some(Ok(message)) => {
                    print(&message, true)?;
                    seen += 1;
                }
                Some(Err(status)) => return Err(status_error(status)),
                None => break,
            }
        }
    } else {
        let response = grpc
            .unary(request, path, codec)
            .await
            .map_err(status_error)?;
        show_token(&args, response.metadata());
        print(response.get_ref(), args.compact)?;
    }
    Ok(())
}

/// Finds `service/method`, `/service/method` or a bare method name if it is unique.
fn find_method(pool: &DescriptorPool, name: &str) -> anyhow::Result<MethodDescriptor> {
    let name = name.trim_start_matches('/');
    let all = || {
        pool.services()
            .flat_map(|s| s.methods().collect::<Vec<_>>())
    };
    let found: Vec<MethodDescriptor> = match name.split_once('/') {
        Some((service, method)) => all()
            .filter(|m| m.parent_service().full_name() == service && m.name() == method)
            .collect(),
        None => all().filter(|m| m.name() == name).collect(),
    };
    // A bare name that today's package and an older one share (`SaveEvents` is also
    // `eventstore.EventStore/SaveEvents`) means today's RPC; older ones are named in full.
    let today: Vec<&MethodDescriptor> = found
        .iter()
        .filter(|m| m.parent_service().package_name() == "orisun")
        .collect();
    match (found.as_slice(), today.as_slice()) {
        ([one], _) => Ok(one.clone()),
        (_, [one]) => Ok((*one).clone()),
        ([], _) => bail!("unknown RPC {name:?} (see `orisun call --list`)"),
        _ => bail!("{name:?} is ambiguous: name the service, e.g. orisun.EventStore/{name}"),
    }
}

fn parse_request(method: &MethodDescriptor, text: Option<&str>) -> anyhow::Result<DynamicMessage> {
    let text = match text {
        None => "{}".to_owned(),
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the request from standard input")?;
            s
        }
        Some(t) if t.starts_with('@') => std::fs::read_to_string(&t[1..])
            .with_context(|| format!("reading the request from {}", &t[1..]))?,
        Some(t) => t.to_owned(),
    };
    let mut de = serde_json::Deserializer::from_str(&text);
    let message = DynamicMessage::deserialize_with_options(
        method.input(),
        &mut de,
        &DeserializeOptions::new().deny_unknown_fields(true),
    )
    .with_context(|| {
        format!(
            "the request is not a valid {} in JSON",
            method.input().full_name()
        )
    })?;
    de.end()
        .context("trailing characters after the request JSON")?;
    Ok(message)
}

fn to_json(message: &DynamicMessage, compact: bool) -> anyhow::Result<String> {
    let options = SerializeOptions::new()
        .stringify_64_bit_integers(false)
        .skip_default_fields(false);
    let mut out = Vec::new();
    if compact {
        let mut ser = serde_json::Serializer::new(&mut out);
        message.serialize_with_options(&mut ser, &options)?;
    } else {
        let mut ser = serde_json::Serializer::pretty(&mut out);
        message.serialize_with_options(&mut ser, &options)?;
    }
    Ok(String::from_utf8(out)?)
}

async fn connect(args: &CallArgs) -> anyhow::Result<Channel> {
    let mut endpoint = Channel::from_shared(args.addr.clone())
        .with_context(|| format!("--addr {:?} is not a URI", args.addr))?;
    if args.addr.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_enabled_roots();
        if let Some(ca) = &args.ca_cert {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        if let (Some(cert), Some(key)) = (&args.client_cert, &args.client_key) {
            let cert =
                std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
            let key = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        endpoint = endpoint.tls_config(tls)?;
    }
    endpoint
        .connect()
        .await
        .with_context(|| format!("connecting to {}", args.addr))
}

fn authorize(
    mut request: tonic::Request<DynamicMessage>,
    args: &CallArgs,
) -> anyhow::Result<tonic::Request<DynamicMessage>> {
    let metadata = request.metadata_mut();
    if let Some(token) = &args.token {
        metadata.insert("x-auth-token", MetadataValue::try_from(token.as_str())?);
    } else {
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", args.user, args.password));
        metadata.insert(
            "authorization",
            MetadataValue::try_from(format!("Basic {basic}"))?,
        );
    }
    Ok(request)
}

fn show_token(args: &CallArgs, metadata: &tonic::metadata::MetadataMap) {
    if args.show_token {
        if let Some(token) = metadata.get("x-auth-token").and_then(|v| v.to_str().ok()) {
            eprintln!("x-auth-token: {token}");
        }
    }
}

/// Formats a status as `CODE: message`, the form the README's error table uses.
fn status_error(status: Status) -> anyhow::Error {
    anyhow!("{}: {}", code_name(status.code()), status.message())
}

/// Returns the canonical upper-case name of a gRPC code.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A codec that encodes any dynamic message and decodes the method's response type.
struct DynamicCodec {
    response: MessageDescriptor,
}

struct DynamicEncoder;

struct DynamicDecoder {
    response: MessageDescriptor,
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DynamicDecoder {
            response: self.response.clone(),
        }
    }
}

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the request: {e}")))
    }
}

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        let mut message = DynamicMessage::new(self.response.clone());
        message
            .merge(src)
            .map_err(|e| Status::internal(format!("decoding the response: {e}")))?;
        Ok(Some(message))
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> DescriptorPool {
        DescriptorPool::decode(orisun_proto::FILE_DESCRIPTOR_SET).expect("descriptors")
    }

    #[test]
    fn finds_methods_by_full_or_short_name() {
        let pool = pool();
        assert_eq!(
            find_method(&pool, "orisun.EventStore/SaveEvents")
                .expect("full")
                .name(),
            "SaveEvents"
        );
        assert_eq!(
            find_method(&pool, "/orisun.Admin/ListUsers")
                .expect("slash")
                .name(),
            "ListUsers"
        );
        assert_eq!(find_method(&pool, "Ping").expect("short").name(), "Ping");
        // Bare names shared with the 2025 package mean today's RPC.
        let save = find_method(&pool, "SaveEvents").expect("short");
        assert_eq!(save.parent_service().full_name(), "orisun.EventStore");
        let old = find_method(&pool, "eventstore.EventStore/SaveEvents").expect("full");
        assert_eq!(old.parent_service().full_name(), "eventstore.EventStore");
        assert_eq!(
            find_method(&pool, "CatchUpSubscribeToStream")
                .expect("only in 2025")
                .parent_service()
                .full_name(),
            "eventstore.EventStore"
        );
        assert!(find_method(&pool, "Nope").is_err());
    }

    #[test]
    fn maps_json_both_ways() {
        let pool = pool();
        let method = find_method(&pool, "SaveEvents").expect("method");
        let request = parse_request(
            &method,
            Some(r#"{"boundary":"orders","query":{"expected_position":{"commit_position":"3","preparePosition":2},"subsetQuery":{"criteria":[]}},"events":[{"event_id":"x","eventType":"T","data":"{}"}]}"#),
        )
        .expect("parses");
        let json = to_json(&request, true).expect("serialises");
        assert!(
            json.contains(r#""expectedPosition":{"commitPosition":3,"preparePosition":2}"#),
            "{json}"
        );
        assert!(json.contains(r#""subsetQuery":{"criteria":[]}"#), "{json}");
        assert!(parse_request(&method, Some(r#"{"bogus":1}"#)).is_err());
    }
}
