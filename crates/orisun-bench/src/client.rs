//! gRPC clients as real Orisun clients behave: one connection each, Basic authentication once
//! (on a `Ping`), then the `x-auth-token` the server returned on every call.

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use orisun_proto::event_store_client::EventStoreClient;
use orisun_proto::{GetEventsRequest, PingRequest, Position};
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

/// The header carrying a session token (Orisun's name).
pub const TOKEN_HEADER: &str = "x-auth-token";

/// Largest message a bench client sends or accepts (batches of 10,000 events are ~2 MiB).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// An authenticated EventStore client on its own connection.
pub type Client = EventStoreClient<InterceptedService<Channel, TokenAuth>>;

/// Adds the session token to every request.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    token: MetadataValue<Ascii>,
}

impl Interceptor for TokenAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert(TOKEN_HEADER, self.token.clone());
        Ok(request)
    }
}

/// Returns the `authorization` header value for Basic authentication.
pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// Opens a connection to `endpoint` (`http://host:port`), authenticates with Basic on a
/// `Ping`, and returns a client that sends the returned token from then on.
pub async fn connect(endpoint: &str, user: &str, password: &str) -> anyhow::Result<Client> {
    let channel = Endpoint::from_shared(endpoint.to_owned())
        .with_context(|| format!("invalid server address {endpoint:?}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| format!("connecting to {endpoint}"))?;
    let mut plain = EventStoreClient::new(channel.clone());
    let mut ping = Request::new(PingRequest {});
    let header = basic(user, password)
        .parse()
        .context("the credentials do not fit in a header")?;
    ping.metadata_mut().insert("authorization", header);
    let response = plain
        .ping(ping)
        .await
        .with_context(|| format!("authenticated Ping to {endpoint} as {user:?}"))?;
    let token = response
        .metadata()
        .get(TOKEN_HEADER)
        .cloned()
        .with_context(|| format!("the server sent no {TOKEN_HEADER} header after Basic auth"))?;
    Ok(
        EventStoreClient::with_interceptor(channel, TokenAuth { token })
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE),
    )
}

/// Returns the head of `boundary` (the position of its last event), `None` when it is empty.
pub async fn head(client: &mut Client, boundary: &str) -> anyhow::Result<Option<Position>> {
    let response = client
        .get_events(GetEventsRequest {
            boundary: boundary.to_owned(),
            count: 1,
            direction: orisun_proto::Direction::Desc as i32,
            ..Default::default()
        })
        .await
        .map_err(|s| boundary_error(boundary, s))?;
    Ok(response
        .into_inner()
        .events
        .into_iter()
        .next()
        .and_then(|e| e.position))
}

/// Returns how many events `boundary` holds, from its head (positions are gap-free and
/// 0-based: the last event's `prepare_position` + 1).
pub async fn event_count(client: &mut Client, boundary: &str) -> anyhow::Result<u64> {
    Ok(head(client, boundary)
        .await?
        .map_or(0, |p| u64::try_from(p.prepare_position + 1).unwrap_or(0)))
}

/// Returns whether `boundary` exists and is active on the server.
pub async fn boundary_exists(client: &mut Client, boundary: &str) -> anyhow::Result<bool> {
    let probe = client
        .get_events(GetEventsRequest {
            boundary: boundary.to_owned(),
            count: 1,
            direction: orisun_proto::Direction::Desc as i32,
            ..Default::default()
        })
        .await;
    match probe {
        Ok(_) => Ok(true),
        Err(s) if matches!(s.code(), Code::FailedPrecondition | Code::NotFound) => Ok(false),
        Err(s) => Err(anyhow::anyhow!("reading boundary {boundary}: {s}")),
    }
}

/// Creates `boundary` through the Admin service (for `--addr` runs against a server that does
/// not declare the bench's boundaries), trying each `(backend, namespace)` placement in turn
/// until the server accepts one; an existing boundary is fine.
pub async fn create_boundary(
    endpoint: &str,
    user: &str,
    password: &str,
    boundary: &str,
    placements: &[(&str, &str)],
) -> anyhow::Result<()> {
    let channel = Endpoint::from_shared(endpoint.to_owned())?
        .connect()
        .await
        .with_context(|| format!("connecting to {endpoint}"))?;
    let mut admin = orisun_proto::admin_client::AdminClient::new(channel);
    let mut last = None;
    for (backend, namespace) in placements {
        let mut request = Request::new(orisun_proto::CreateBoundaryRequest {
            name: boundary.to_owned(),
            description: "orisun bench".to_owned(),
            placement: Some(orisun_proto::BoundaryPlacementInput {
                backend: (*backend).to_owned(),
                namespace: (*namespace).to_owned(),
            }),
            existed_before_catalog: false,
        });
        let header = basic(user, password)
            .parse()
            .context("the credentials do not fit in a header")?;
        request.metadata_mut().insert("authorization", header);
        match admin.create_boundary(request).await {
            Ok(_) => return Ok(()),
            Err(s) if s.code() == Code::AlreadyExists => return Ok(()),
            Err(s) => last = Some(s),
        }
    }
    Err(anyhow::anyhow!(
        "boundary {boundary} does not exist and could not be created ({}): declare the bench's \
         boundaries in the server's ORISUN_BOUNDARIES",
        last.map_or_else(|| "no placement to try".to_owned(), |s| s.to_string())
    ))
}

/// Explains an error about a boundary, pointing at the likely fix when it does not exist.
fn boundary_error(boundary: &str, status: Status) -> anyhow::Error {
    if matches!(status.code(), Code::FailedPrecondition | Code::NotFound) {
        anyhow::anyhow!(
            "boundary {boundary} is not available on the server ({}): start the server with \
             the bench's boundaries in ORISUN_BOUNDARIES",
            status.message()
        )
    } else {
        anyhow::anyhow!("reading boundary {boundary}: {status}")
    }
}

/// Returns the position to page from after `p`: GetEvents' `from_position` is inclusive, so
/// the next event is at least `(commit, prepare + 1)` (no event has that position unless it
/// is the next one in the same batch).
pub fn after(p: &Position) -> Position {
    Position {
        commit_position: p.commit_position,
        prepare_position: p.prepare_position + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header() {
        assert_eq!(basic("admin", "changeit"), "Basic YWRtaW46Y2hhbmdlaXQ=");
    }

    #[test]
    fn paging_position() {
        let p = Position {
            commit_position: 10,
            prepare_position: 7,
        };
        assert_eq!(
            after(&p),
            Position {
                commit_position: 10,
                prepare_position: 8
            }
        );
    }
}
