//! Composition: configuration -> store -> boundaries -> auth -> gRPC services + admin HTTP, and
//! the graceful shutdown of all of it.

use crate::admin_http::{self, HttpState, Readiness};
use crate::admin_service::AdminService;
use crate::admin_transport;
use crate::auth::{Auth, AuthConfig, AuthLayer};
use crate::backend::{self, Backend};
use crate::catalog::StartupBoundary;
use crate::cluster;
use crate::config::Config;
use crate::dashboard::{self, Dashboard, DashboardSlot};
use crate::error::ServerError;
use crate::event_store::EventStoreService;
use crate::handshake;
use crate::http_auth::HttpAuth;
use crate::legacy::eventstore_2025::EventStore2025;
use crate::metrics::{MetricsState, ObservedStore, RpcMetricsLayer, Sampler, SubscriptionTracker};
use crate::oversize::OversizeLayer;
use crate::profiling::{self, ProfilingState};
use crate::shutdown;
use crate::subscriptions::SubscriberRegistry;
use crate::telemetry;
use futures::TryStreamExt as _;
use orisun_proto::admin_server::AdminServer;
use orisun_proto::event_store_server::EventStoreServer;
use orisun_store::EventStore;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;

/// Runs the server until `shutdown` completes: opens the configured backend, then does what
/// [`serve_with_store`] does.
pub async fn serve(
    config: Config,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    config.validate()?;
    let backend = backend::open(&config).await?;
    serve_with_backend(config, backend, grpc_listener, http_listener, shutdown).await
}

/// Runs the server over `store` (for tests and embedding) until `shutdown` completes; the
/// backend's name is taken from the configuration. See [`serve_with_backend`].
pub async fn serve_with_store(
    config: Config,
    store: Arc<dyn EventStore>,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let backend = Backend::generic(store, config.backend_kind().name());
    serve_with_backend(config, backend, grpc_listener, http_listener, shutdown).await
}

/// Runs the server over an opened backend until `shutdown` completes.
///
/// Start-up: the admin HTTP endpoint answers at once (`/ready` says 503 until the end of
/// start-up); the admin boundary and the configured boundaries are created; authentication
/// starts (bootstrapping the admin user); the gRPC services are served on `grpc_listener`.
///
/// Shutdown: `/ready` turns 503 and the health service reports NOT_SERVING; running
/// subscriptions end with `UNAVAILABLE` "server shutting down"; the gRPC server stops accepting
/// connections and waits up to `ORISUN_SHUTDOWN_TIMEOUT` for in-flight calls (saves finish);
/// then the HTTP endpoint stops.
pub async fn serve_with_backend(
    config: Config,
    backend: Backend,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    config.validate()?;
    // Counts this node's appends and conflicts for the dashboard's rates.
    let activity = dashboard::activity::Activity::default();
    let store = activity.observe(backend.store.clone());
    let grpc_addr = grpc_listener
        .local_addr()
        .map_err(|e| ServerError::io("reading the gRPC listener address", e))?;
    let http_addr = http_listener
        .local_addr()
        .map_err(|e| ServerError::io("reading the admin HTTP listener address", e))?;
    let (trigger, _signal) = shutdown::channel();
    let readiness = Readiness::default();
    // Names this node in the leases it holds (subscriber names, singletons): unique per run,
    // so two servers in one process or a restarted node never pass for each other.
    let node_id = format!("node-{}", uuid::Uuid::new_v4().simple());

    // Observability: the store the API services call records metrics and spans; /metrics and
    // the profiler check credentials once authentication has started (`http_auth`).
    let admin_tls = admin_transport::tls_config(&config.tls).await?;
    let http_auth = HttpAuth::default();
    let subscriptions = Arc::new(SubscriptionTracker::default());
    let observed: Arc<dyn EventStore> =
        Arc::new(ObservedStore::new(store.clone(), subscriptions.clone()));
    let mut sampler = Sampler::new(store.clone(), subscriptions)
        .with_pool(backend.pool_usage.clone())
        .with_replica_sets(backend.membership.clone());
    if config.nats_config().is_some() {
        sampler = sampler.with_publishers(
            backend.coordination.clone(),
            config.auth.admin_boundary.clone(),
        );
    }
    let metrics_routes = match config.metrics.metrics_enabled {
        true => crate::metrics::router(MetricsState {
            handle: crate::metrics::install()?,
            sampler: Arc::new(sampler),
            public: config.metrics.metrics_public,
            auth: http_auth.clone(),
        }),
        false => axum::Router::new(),
    };

    // The probes answer during start-up so orchestrators can tell "starting" from "dead".
    let dashboard_slot = DashboardSlot::default();
    let http_app = admin_http::router_with_dashboard(
        HttpState {
            store: store.clone(),
            admin_boundary: config.auth.admin_boundary.clone(),
            readiness: readiness.clone(),
        },
        dashboard_slot.clone(),
    )
    .merge(metrics_routes);
    let mut http_stop = trigger.signal();
    let http_task = tokio::spawn(admin_transport::serve(
        http_listener,
        http_app,
        admin_tls.clone(),
        async move { http_stop.wait().await },
    ));
    if config.pprof.pprof_enabled {
        let addr = config.pprof.addr(config.grpc.host);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| ServerError::io("binding the profiler port (ORISUN_PPROF_PORT)", e))?;
        let app = profiling::router(ProfilingState {
            auth: http_auth.clone(),
        });
        let mut stop = trigger.signal();
        tracing::info!(%addr, "CPU profiler listening");
        tokio::spawn(admin_transport::serve(
            listener,
            app,
            admin_tls,
            async move { stop.wait().await },
        ));
    }

    // Start-up proper; on failure the HTTP endpoint is stopped before the error is returned.
    let started: Result<_, ServerError> = async {
        // Certificates first: a TLS misconfiguration fails before anything is created.
        let tls = config.tls.server_tls_config().await?;
        let mut startup = Vec::new();
        for boundary in config.startup_boundaries() {
            let namespace = backend.namespace(&config, &boundary);
            backend.provisioner.provision(&boundary, &namespace).await?;
            let description = config.boundaries.description_of(&boundary);
            startup.push(StartupBoundary::new(boundary, description).with_namespace(namespace));
        }
        if config.auth.admin_password == "changeit" {
            tracing::warn!(
                username = %config.auth.admin_username,
                "the bootstrap admin uses the default password: set ORISUN_ADMIN_PASSWORD"
            );
        }
        let auth = Auth::start(store.clone(), AuthConfig::from(&config.auth))
            .await
            .map_err(ServerError::Auth)?;
        http_auth.set(auth.clone());
        let admin = AdminService::new(store.clone(), auth.clone(), backend.name)
            .with_provisioner(backend.provisioner.clone());
        admin
            .register_startup_boundaries(&startup)
            .await
            .map_err(ServerError::Auth)?;

        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<EventStoreServer<EventStoreService>>()
            .await;
        let subscribers = SubscriberRegistry::new(
            backend.coordination.clone(),
            node_id.clone(),
            config.subscriptions.subscriber_lease_ttl,
        );
        let event_store = EventStoreService::new(
            observed.clone(),
            config.auth.admin_boundary.clone(),
            subscribers.clone(),
            trigger.signal(),
        );
        let today_event_store = event_store.clone();
        let event_store = EventStoreServer::new(event_store)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(config.grpc.grpc_max_receive_message_size)
            .max_encoding_message_size(config.grpc.grpc_max_send_message_size);
        let dashboard = Dashboard {
            auth: auth.clone(),
            store: store.clone(),
            admin: admin.clone(),
            subscribers,
            coordination: backend.coordination.clone(),
            membership: backend.membership.clone(),
            node_id: node_id.clone(),
            backend: backend.name.to_owned(),
            nats: config.nats_config().is_some(),
            activity,
            logged_out: Default::default(),
            shutdown: trigger.signal(),
        };
        let admin = AdminServer::new(admin)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(config.grpc.grpc_max_receive_message_size)
            .max_encoding_message_size(config.grpc.grpc_max_send_message_size);

        // NATS: one JetStream publisher per boundary when ORISUN_NATS_URL is set; pub/sub over
        // NATS then, in-process otherwise. Both stop with the rest of the server.
        let stopping = |mut signal: shutdown::Shutdown| async move { signal.wait().await };
        let nats = match config.nats_config() {
            Some(nats_config) => Some(
                orisun_nats::start(
                    nats_config,
                    store.clone(),
                    backend.coordination.clone(),
                    node_id.clone(),
                    stopping(trigger.signal()),
                )
                .await?,
            ),
            None => None,
        };
        let pubsub: Arc<dyn orisun_nats::PubSub> = match &nats {
            Some(handle) => handle.pubsub(),
            None => Arc::new(orisun_nats::LocalPubSub::default()),
        };
        let pubsub_service =
            orisun_nats::PubSubService::new(pubsub).with_shutdown(stopping(trigger.signal()));
        // The 2025 `eventstore.EventStore` runs on today's services (its subscriptions and
        // pub/sub are today's), so old and new clients share one log.
        let legacy_2025 = EventStore2025::new(
            today_event_store,
            observed.clone(),
            config.auth.admin_boundary.clone(),
        )
        .with_pubsub(pubsub_service.clone())
        .into_server()
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(config.grpc.grpc_max_receive_message_size)
        .max_encoding_message_size(config.grpc.grpc_max_send_message_size);
        let pubsub = pubsub_service
            .into_server()
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(config.grpc.grpc_max_receive_message_size)
            .max_encoding_message_size(config.grpc.grpc_max_send_message_size);

        let mut builder = config
            .grpc
            .server_builder()
            // One span per call, so every log line of a handler names its RPC; it continues the
            // caller's trace (W3C traceparent) when OpenTelemetry is on.
            .trace_fn(telemetry::rpc_span);
        if let Some(mut tls) = tls {
            if !config.grpc.grpc_handshake_timeout.is_zero() {
                tls = tls.timeout(config.grpc.grpc_handshake_timeout);
            }
            builder = builder
                .tls_config(tls)
                .map_err(|e| ServerError::Tls(e.to_string()))?;
        }
        let layers = tower::ServiceBuilder::new()
            .layer(OversizeLayer)
            // Inside the oversize layer, so it sees the plain tonic body; outside
            // authentication, so refused calls are counted too.
            .layer(RpcMetricsLayer)
            .layer(AuthLayer::new(auth.clone()));
        let mut router = builder
            .layer(layers)
            .add_service(health_service)
            .add_service(event_store)
            .add_service(admin)
            .add_service(pubsub)
            .add_service(legacy_2025);
        if config.grpc.grpc_enable_reflection {
            let v1 = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(orisun_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .build_v1()
                .map_err(|e| ServerError::Reflection(e.to_string()))?;
            let v1alpha = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(orisun_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .build_v1alpha()
                .map_err(|e| ServerError::Reflection(e.to_string()))?;
            router = router.add_service(v1).add_service(v1alpha);
        }
        Ok((router, auth, health_reporter, nats, dashboard))
    }
    .await;
    let (router, auth, health_reporter, nats, dashboard) = match started {
        Ok(parts) => parts,
        Err(e) => {
            trigger.trigger();
            let _ = http_task.await;
            drop(store);
            drop(observed);
            drop(http_auth);
            release(backend, config.grpc.shutdown_timeout).await;
            return Err(e);
        }
    };

    // Every accepted connection must send its HTTP/2 preface in time (slowloris).
    let handshake_timeout = config.grpc.grpc_handshake_timeout;
    let incoming = TcpIncoming::from(grpc_listener)
        .with_nodelay(Some(true))
        .map_ok(move |tcp| handshake::Deadline::new(tcp, handshake_timeout));
    let mut grpc_stop = trigger.signal();
    let mut grpc_task = tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(incoming, async move { grpc_stop.wait().await })
            .await
    });

    dashboard_slot.install(dashboard);
    let listed = cluster::keep_listed(
        backend.membership.clone(),
        node_id.clone(),
        trigger.signal(),
    );
    readiness.set(true);
    tracing::info!(
        grpc = %grpc_addr,
        admin = %http_addr,
        node = %node_id,
        backend = ?config.backend_kind(),
        tls = config.tls.grpc_tls_enabled,
        "orisun is listening"
    );

    // Run until told to stop, or until the transport fails on its own.
    let early_exit = tokio::select! {
        () = shutdown => None,
        result = &mut grpc_task => Some(result),
    };
    readiness.set(false);
    health_reporter
        .set_not_serving::<EventStoreServer<EventStoreService>>()
        .await;
    trigger.trigger();
    if early_exit.is_none() {
        tracing::info!("shutting down: finishing in-flight calls");
    }
    let grpc_result = match early_exit {
        Some(result) => result,
        None => match tokio::time::timeout(config.grpc.shutdown_timeout, &mut grpc_task).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(
                    timeout = ?config.grpc.shutdown_timeout,
                    "in-flight calls did not finish in time; closing connections"
                );
                grpc_task.abort();
                Ok(Ok(()))
            }
        },
    };
    let http_result = http_task.await;
    // Leave the cluster's node list now rather than when the listing expires.
    if tokio::time::timeout(config.grpc.shutdown_timeout, listed)
        .await
        .is_err()
    {
        tracing::warn!("leaving the cluster's node list did not finish in time");
    }
    // The publishers saw the shutdown signal; wait for them to release their leases (so other
    // nodes take over at once) and to let go of the store.
    if let Some(nats) = nats {
        if tokio::time::timeout(config.grpc.shutdown_timeout, nats.stop())
            .await
            .is_err()
        {
            tracing::warn!("the NATS publishers did not stop in time");
        }
    }
    // Let go of the store before returning, so that a caller may reopen it at once (the
    // embedded backend locks its directory): the tasks that held clones are winding down.
    drop(auth);
    drop(dashboard_slot);
    drop(store);
    drop(observed);
    // It holds the authority, which holds the store.
    drop(http_auth);
    release(backend, config.grpc.shutdown_timeout).await;
    match grpc_result {
        Ok(result) => result?,
        Err(e) => {
            return Err(ServerError::io(
                "gRPC server task",
                std::io::Error::other(e.to_string()),
            ))
        }
    }
    match http_result {
        Ok(result) => result.map_err(|e| ServerError::io("admin HTTP server", e))?,
        Err(e) => {
            return Err(ServerError::io(
                "admin HTTP server task",
                std::io::Error::other(e.to_string()),
            ))
        }
    }
    tracing::info!("orisun stopped");
    Ok(())
}

/// Waits (up to `timeout`) until `backend` holds the last reference to its store, then drops it.
async fn release(backend: Backend, timeout: std::time::Duration) {
    let Backend {
        store, provisioner, ..
    } = backend;
    drop(provisioner);
    let deadline = tokio::time::Instant::now() + timeout;
    while Arc::strong_count(&store) > 1 {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                holders = Arc::strong_count(&store) - 1,
                "the store is still in use after shutdown"
            );
            break;
        }
        // Aborted tasks drop their clones on their next poll; this is a short, bounded wait.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
