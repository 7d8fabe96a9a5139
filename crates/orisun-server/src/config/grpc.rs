//! Owns the gRPC server flags: listen address, reflection, message and HTTP/2 limits,
//! keepalive and the graceful-shutdown timeout, and their application to a tonic [`Server`].

use super::parse_duration;
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tonic::transport::Server;

/// The gRPC section of the configuration.
#[derive(Debug, Clone, Args)]
pub struct GrpcSection {
    /// Address the gRPC and admin HTTP servers listen on.
    #[arg(long, env = "ORISUN_HOST", value_name = "ORISUN_HOST", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED), help_heading = "Network")]
    pub host: IpAddr,

    /// gRPC port (EventStore, Admin, reflection, health).
    #[arg(
        long,
        env = "ORISUN_GRPC_PORT",
        value_name = "ORISUN_GRPC_PORT",
        default_value_t = 5005,
        help_heading = "Network"
    )]
    pub grpc_port: u16,

    /// Serve gRPC server reflection (v1 and v1alpha), authenticated like every other RPC.
    #[arg(long, env = "ORISUN_GRPC_ENABLE_REFLECTION", value_name = "ORISUN_GRPC_ENABLE_REFLECTION", default_value_t = true, action = ArgAction::Set, value_parser = BoolishValueParser::new(), help_heading = "Network")]
    pub grpc_enable_reflection: bool,

    /// Largest request message, in bytes; larger ones fail with RESOURCE_EXHAUSTED.
    #[arg(long, env = "ORISUN_GRPC_MAX_RECEIVE_MESSAGE_SIZE", value_name = "ORISUN_GRPC_MAX_RECEIVE_MESSAGE_SIZE", default_value_t = 64 * 1024 * 1024, value_parser = parse_message_size, help_heading = "Network")]
    pub grpc_max_receive_message_size: usize,

    /// Largest response message, in bytes.
    #[arg(long, env = "ORISUN_GRPC_MAX_SEND_MESSAGE_SIZE", value_name = "ORISUN_GRPC_MAX_SEND_MESSAGE_SIZE", default_value_t = 64 * 1024 * 1024, value_parser = parse_message_size, help_heading = "Network")]
    pub grpc_max_send_message_size: usize,

    /// Most concurrent streams (calls) per HTTP/2 connection.
    #[arg(long, env = "ORISUN_GRPC_MAX_CONCURRENT_STREAMS", value_name = "ORISUN_GRPC_MAX_CONCURRENT_STREAMS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Network")]
    pub grpc_max_concurrent_streams: u32,

    /// Interval of the server's HTTP/2 keepalive pings (0s: no pings).
    #[arg(long, env = "ORISUN_GRPC_KEEP_ALIVE_TIME", value_name = "ORISUN_GRPC_KEEP_ALIVE_TIME", default_value = "30s", value_parser = parse_duration, help_heading = "Network")]
    pub grpc_keep_alive_time: Duration,

    /// How long a keepalive ping may go unanswered before the connection is closed.
    #[arg(long, env = "ORISUN_GRPC_KEEP_ALIVE_TIMEOUT", value_name = "ORISUN_GRPC_KEEP_ALIVE_TIMEOUT", default_value = "5s", value_parser = parse_duration, help_heading = "Network")]
    pub grpc_keep_alive_timeout: Duration,

    /// How long a new connection may take to send the HTTP/2 preface (with TLS: to finish the
    /// TLS handshake) before it is closed (0s: no limit).
    #[arg(long, env = "ORISUN_GRPC_HANDSHAKE_TIMEOUT", value_name = "ORISUN_GRPC_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration, help_heading = "Network")]
    pub grpc_handshake_timeout: Duration,

    /// HTTP/2 initial stream flow-control window, in bytes.
    #[arg(long, env = "ORISUN_GRPC_INITIAL_WINDOW_SIZE", value_name = "ORISUN_GRPC_INITIAL_WINDOW_SIZE", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u32).range(65_535..=2_147_483_647), help_heading = "Network")]
    pub grpc_initial_window_size: u32,

    /// HTTP/2 initial connection flow-control window, in bytes.
    #[arg(long, env = "ORISUN_GRPC_INITIAL_CONN_WINDOW_SIZE", value_name = "ORISUN_GRPC_INITIAL_CONN_WINDOW_SIZE", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u32).range(65_535..=2_147_483_647), help_heading = "Network")]
    pub grpc_initial_conn_window_size: u32,

    /// How long a graceful shutdown waits for in-flight calls before closing connections.
    #[arg(long, env = "ORISUN_SHUTDOWN_TIMEOUT", value_name = "ORISUN_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration, help_heading = "Network")]
    pub shutdown_timeout: Duration,
}

impl GrpcSection {
    /// Returns the gRPC listen address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.grpc_port)
    }

    /// Returns a tonic server builder with this section's HTTP/2 limits and keepalive (no
    /// keepalive pings when ORISUN_GRPC_KEEP_ALIVE_TIME is zero). The message size limits are
    /// per service and are applied where the services are built.
    pub fn server_builder(&self) -> Server {
        let mut builder = Server::builder()
            .max_concurrent_streams(self.grpc_max_concurrent_streams)
            .initial_stream_window_size(self.grpc_initial_window_size)
            .initial_connection_window_size(self.grpc_initial_conn_window_size)
            .http2_keepalive_timeout(Some(self.grpc_keep_alive_timeout));
        if !self.grpc_keep_alive_time.is_zero() {
            builder = builder.http2_keepalive_interval(Some(self.grpc_keep_alive_time));
        }
        builder
    }
}

fn parse_message_size(text: &str) -> Result<usize, String> {
    let n: usize = text
        .trim()
        .parse()
        .map_err(|e| format!("{text:?} is not a number of bytes: {e}"))?;
    if n < 1024 {
        return Err(format!("{n} is below the minimum of 1024 bytes"));
    }
    Ok(n)
}
