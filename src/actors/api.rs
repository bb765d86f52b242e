//! `api` — owns the HTTP server.
//!
//! Messages: `ServerStopped` from the server task when it ends without being asked to, which
//! fails the actor so the supervisor restarts it; `InjectFault`.
//!
//! `pre_start` binds the listen address, so a taken port fails the daemon's start with a clear
//! reason instead of a server that silently never answers. The server itself runs in a task;
//! handlers read the store directly and never message another actor on the request path.
//! Stopping the actor drains in-flight requests for a few seconds, then cuts them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::actors::Fault;
use crate::actors::supervisor::SupervisorMsg;
use crate::actors::traced;
use crate::clock::Clock;
use crate::config::ValidConfig;
use crate::http::server::{ServerLimits, serve};
use crate::http::{AppState, router};
use crate::ingress::Ingress;
use crate::store::Store;

/// How long in-flight requests get to finish when the server stops.
const GRACE: Duration = Duration::from_secs(3);

pub struct Api;

pub struct ApiArgs {
    pub config: ValidConfig,
    pub store: Arc<Store>,
    pub ingress: Arc<Ingress>,
    pub clock: Clock,
    /// Present only when fault injection is enabled: the fault endpoint talks to it.
    pub supervisor: Option<ActorRef<SupervisorMsg>>,
}

pub enum ApiMsg {
    ServerStopped(String),
    InjectFault(Fault),
}

pub struct ApiState {
    address: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: Option<ServerTask>,
}

/// The server task, aborted when dropped: `post_stop` does not run after a panic, and a server
/// left behind would hold the port its restarted successor needs.
struct ServerTask(JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Actor for Api {
    type Msg = ApiMsg;
    type State = ApiState;
    type Arguments = ApiArgs;

    async fn pre_start(&self, myself: ActorRef<ApiMsg>, args: ApiArgs) -> Result<ApiState, ActorProcessingErr> {
        let listen = args.config.api.listen;
        let listener = TcpListener::bind(listen).await.map_err(|err| format!("cannot listen on {listen}: {err}"))?;
        let address = listener.local_addr().unwrap_or(listen);
        let limits = ServerLimits {
            header_read_timeout: args.config.api.header_read_timeout,
            write_timeout: args.config.api.write_timeout,
            max_connections: args.config.api.max_connections,
        };
        let state = AppState::new(args.config, args.store, args.ingress, args.clock, args.supervisor);
        let app = router(state);
        let (shutdown, mut stop) = watch::channel(false);
        let server = traced::spawn(async move {
            let graceful = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            serve(listener, app, limits, graceful).await;
            let _ = myself.cast(ApiMsg::ServerStopped("server ended".to_owned()));
        });
        tracing::info!(%address, "listening");
        Ok(ApiState { address, shutdown, server: Some(ServerTask(server)) })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ApiMsg>,
        message: ApiMsg,
        state: &mut ApiState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ApiMsg::ServerStopped(reason) => {
                if *state.shutdown.borrow() {
                    return Ok(());
                }
                Err(format!("http server on {} stopped: {reason}", state.address).into())
            }
            ApiMsg::InjectFault(fault) => fault.trigger("api"),
        }
    }

    async fn post_stop(&self, _myself: ActorRef<ApiMsg>, state: &mut ApiState) -> Result<(), ActorProcessingErr> {
        state.shutdown.send_replace(true);
        if let Some(mut server) = state.server.take() {
            // Dropping the task after the grace period aborts whatever is still in flight.
            let _ = tokio::time::timeout(GRACE, &mut server.0).await;
        }
        Ok(())
    }
}
