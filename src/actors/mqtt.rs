//! `mqtt` — subscribes to the broker and hands what comes to the ingress, like any other source.
//!
//! Messages: `Ended` from its connection task when it stops on its own (it should not), which
//! fails the actor so the supervisor restarts it; `SetNames` from the supervisor after a reload
//! changed the Sparkplug name maps or the parameters; `InjectFault`.
//!
//! Started by the supervisor only when `mqtt.url` is set. The work is done by two tasks tied to
//! the actor's state (aborted when it is dropped, a crash included: nothing outlives the actor):
//!
//! - the **connection** task polls rumqttc's event loop, which is what moves bytes, sends pings
//!   and acknowledgements, and reconnects. After a failure it waits out an exponential backoff with
//!   jitter ([`Backoff`]) before the next attempt. On each new session it subscribes (QoS 1) to
//!   the plain topics and, with `mqtt.sparkplug`, to `spBv1.0/#`. It passes each message on to
//!   the intake task through a bounded channel: when the intake falls behind, the connection
//!   stops reading and the broker holds the messages.
//! - the **intake** task reads each message ([`Intake`]), offers its readings to the ingress and
//!   raises the dropouts of devices gone offline, counting every refusal by reason in `/status`.
//!   It never touches a detector, so it cannot stall detection.
//!
//! **Nothing accepted is lost.** The session is persistent (a fixed client id, clean session
//! off), so the broker keeps the subscription and every QoS 1 message not yet acknowledged while
//! the daemon is away. A message is acknowledged only once the ingress has taken every reading in
//! it, or refused it for good: a full queue is waited out (up to `FULL_WAIT`) rather than
//! acknowledged as lost, and at shutdown a message not yet handled is left unacknowledged for the
//! broker to deliver again to the next run. Delivery is at least once: a message whose
//! acknowledgement was lost in a crash comes again, and the ingress refuses the copy as out of
//! order when it carries its timestamp.
//!
//! A message larger than `ingest.max_body` is read (up to MQTT's own limit) and refused, so one
//! oversized message cannot break the connection again on every redelivery.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, QoS, SubscribeFilter,
    SubscribeReasonCode,
};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use crate::actors::Fault;
use crate::actors::traced;
use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::config::{BrokerAddress, Config, ValidConfig};
use crate::domain::Reading;
use crate::ingress::{Ingress, Refusal, Source, bounded};
use crate::mqtt::{Delivery, Intake, MqttReason, MqttState, SequenceGap};
use crate::store::Store;

/// How long a reading waits for room in a full detector queue before it is refused for good.
const FULL_WAIT: Duration = Duration::from_secs(10);
/// Messages passed from the connection to the intake before the connection stops reading.
const INBOUND_CAPACITY: usize = 1024;
/// Requests (acknowledgements, subscriptions) waiting for the event loop. MQTT packet ids are 16
/// bits, so no more than 65,535 messages can await their acknowledgement: with room for all of
/// them, queueing an acknowledgement never waits, and the two tasks cannot wait on each other.
const REQUEST_CAPACITY: usize = 65_536 + 64;
/// MQTT's own limit on a packet: a larger message cannot exist, a smaller one is always read.
const MAX_PACKET: usize = 268_435_455 + 5;
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// Seconds allowed to open a connection and get the broker's answer.
const CONNECT_TIMEOUT_SECS: u64 = 5;
const BACKOFF_INITIAL: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long a graceful stop waits for the last acknowledgements to be sent.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Sparkplug sequence gaps are logged at most this often per edge node.
const GAP_LOG_PERIOD: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

pub struct Mqtt;

pub struct MqttArgs {
    pub config: ValidConfig,
    pub ingress: Arc<Ingress>,
    pub store: Arc<Store>,
    pub clock: Clock,
}

pub enum MqttMsg {
    /// The connection task ended, for this reason.
    Ended(String),
    /// New Sparkplug name maps or parameters from a reload.
    SetNames(Box<Config>),
    InjectFault(Fault),
}

pub struct MqttActorState {
    client: AsyncClient,
    names: watch::Sender<Arc<Config>>,
    stop: watch::Sender<bool>,
    connection: Option<AbortOnDropHandle<()>>,
    intake: Option<AbortOnDropHandle<()>>,
}

impl Actor for Mqtt {
    type Msg = MqttMsg;
    type State = MqttActorState;
    type Arguments = MqttArgs;

    async fn pre_start(&self, myself: ActorRef<MqttMsg>, args: MqttArgs) -> Result<MqttActorState, ActorProcessingErr> {
        let config = &args.config.mqtt;
        let address = BrokerAddress::parse(&config.url).map_err(|why| format!("mqtt.url {why}"))?;
        // One persistent session per instance: two daemons on one broker never share one.
        let client_id = config.session_id(&args.config.cluster.instance_id());
        let mut options = MqttOptions::new(&client_id, address.host.clone(), address.port);
        options
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_keep_alive(KEEP_ALIVE)
            .set_max_packet_size(MAX_PACKET, 64 * 1024);
        if let Some(username) = &config.username {
            options.set_credentials(username, config.read_password()?.unwrap_or_default());
        }
        let (client, mut eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
        eventloop.network_options.set_connection_timeout(CONNECT_TIMEOUT_SECS);

        let intake = Intake::new(&args.config);
        let filters = intake.filters();
        let (inbound_tx, inbound) = mpsc::channel(INBOUND_CAPACITY);
        let (names, names_rx) = watch::channel(Arc::new(args.config.clone().into_inner()));
        let (stop, stop_rx) = watch::channel(false);
        args.store.health.set_mqtt(MqttState::Connecting, None);
        tracing::info!(
            broker = %format!("{}:{}", address.host, address.port),
            client_id = %client_id, ?filters, "connecting to the broker"
        );

        let link = Link { client: client.clone(), filters, store: Arc::clone(&args.store) };
        let connection = traced::spawn(async move {
            let reason = link.run(&mut eventloop, inbound_tx).await;
            let _ = myself.cast(MqttMsg::Ended(reason));
        });
        let mut reader = Reader {
            client: client.clone(),
            intake,
            ingress: args.ingress,
            store: args.store,
            clock: args.clock,
            max_payload: args.config.ingest.max_body,
            sharding: args.config.cluster.sharding(),
            gaps_logged: std::collections::HashMap::new(),
        };
        let intake = traced::spawn(async move { reader.run(inbound, names_rx, stop_rx).await });
        Ok(MqttActorState {
            client,
            names,
            stop,
            connection: Some(AbortOnDropHandle::new(connection)),
            intake: Some(AbortOnDropHandle::new(intake)),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<MqttMsg>,
        message: MqttMsg,
        state: &mut MqttActorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            MqttMsg::Ended(reason) => {
                if *state.stop.borrow() {
                    return Ok(());
                }
                Err(format!("the mqtt connection ended: {reason}").into())
            }
            MqttMsg::SetNames(config) => {
                state.names.send_replace(Arc::new(*config));
                Ok(())
            }
            MqttMsg::InjectFault(fault) => fault.trigger("mqtt"),
        }
    }

    /// A graceful stop: the intake finishes the message in hand and stops taking more; its
    /// acknowledgements go out, then a DISCONNECT. Messages not yet handled stay with the broker.
    async fn post_stop(
        &self,
        _myself: ActorRef<MqttMsg>,
        state: &mut MqttActorState,
    ) -> Result<(), ActorProcessingErr> {
        state.stop.send_replace(true);
        if let Some(intake) = state.intake.take() {
            let _ = tokio::time::timeout(STOP_GRACE, intake).await;
        }
        if let Some(connection) = state.connection.take() {
            let _ = tokio::time::timeout(STOP_GRACE, connection).await;
        }
        // Dropped either way: a task still running is aborted.
        let _ = state.client.try_disconnect();
        Ok(())
    }
}

/// The connection task: polls the event loop, subscribes on each new session, passes messages on.
struct Link {
    client: AsyncClient,
    filters: Vec<String>,
    store: Arc<Store>,
}

impl Link {
    /// Runs until the intake is gone or the daemon disconnects; returns why it ended.
    async fn run(&self, eventloop: &mut EventLoop, inbound: mpsc::Sender<Publish>) -> String {
        let mut backoff = Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX);
        let mut subscribed = false;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    if inbound.send(publish).await.is_err() {
                        return "the intake stopped".into();
                    }
                }
                Ok(Event::Incoming(Packet::ConnAck(connack))) => {
                    backoff.reset();
                    // A session the broker kept has the subscriptions already; this run's first
                    // connection subscribes anyway, in case the configuration changed.
                    if !connack.session_present || !subscribed {
                        let filters =
                            self.filters.iter().map(|filter| SubscribeFilter::new(filter.clone(), QoS::AtLeastOnce));
                        if let Err(err) = self.client.try_subscribe_many(filters) {
                            tracing::error!(error = %err, "could not ask for the subscription");
                        }
                        subscribed = true;
                    } else {
                        self.store.health.set_mqtt(MqttState::Connected, None);
                    }
                    tracing::info!(session_present = connack.session_present, "connected to the broker");
                }
                Ok(Event::Incoming(Packet::SubAck(suback))) => {
                    // Connected means receiving: only once the subscription is in place.
                    let mut error = None;
                    if suback.return_codes.iter().any(|code| matches!(code, SubscribeReasonCode::Failure)) {
                        let why = format!("the broker refused the subscription to {:?}", self.filters);
                        tracing::error!("{why}");
                        error = Some(why);
                    }
                    self.store.health.set_mqtt(MqttState::Connected, error);
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return "disconnected".into(),
                Ok(_) => {}
                Err(ConnectionError::RequestsDone) => return "the client was dropped".into(),
                Err(err) => {
                    let wait = backoff.next_delay();
                    let error = bounded(&err.to_string(), 200);
                    tracing::warn!(
                        error = %error, retry_in_ms = wait.as_millis() as u64,
                        "the broker is unreachable; retrying"
                    );
                    self.store.health.set_mqtt(MqttState::Connecting, Some(error));
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// What to do with a message once handled.
enum Handled {
    /// Taken, or refused for good: acknowledge it.
    Done,
    /// The daemon is stopping: leave it for the broker to deliver again.
    Leave,
}

/// The intake task: reads messages, hands them to the ingress, acknowledges them.
struct Reader {
    client: AsyncClient,
    intake: Intake,
    ingress: Arc<Ingress>,
    store: Arc<Store>,
    clock: Clock,
    max_payload: usize,
    /// Which sensors this daemon takes: the others' readings are left to their shard.
    sharding: crate::cluster::Sharding,
    /// When each edge node's sequence gap was last logged.
    gaps_logged: std::collections::HashMap<String, DateTime<Utc>>,
}

impl Reader {
    async fn run(
        &mut self,
        mut inbound: mpsc::Receiver<Publish>,
        mut names: watch::Receiver<Arc<Config>>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let publish = tokio::select! {
                biased;
                _ = stop.wait_for(|stop| *stop) => break,
                publish = inbound.recv() => match publish {
                    Some(publish) => publish,
                    None => break,
                },
            };
            if names.has_changed().unwrap_or(false) {
                let config = Arc::clone(&names.borrow_and_update());
                self.intake.set_names(&config);
            }
            match self.on_message(&publish).await {
                Handled::Done => {
                    // Never waits: the request queue has room for every acknowledgement.
                    if let Err(err) = self.client.ack(&publish).await {
                        tracing::warn!(error = %err, "could not acknowledge a message");
                    }
                }
                Handled::Leave => break,
            }
        }
        // Behind the acknowledgements already queued, so they reach the broker first.
        let _ = self.client.disconnect().await;
    }

    async fn on_message(&mut self, publish: &Publish) -> Handled {
        let store = Arc::clone(&self.store);
        let stats = &store.health.mqtt;
        stats.message();
        let arrival = self.clock.now();
        let delivery = if publish.payload.len() > self.max_payload {
            let why = format!("the payload is {} bytes, more than ingest.max_body", publish.payload.len());
            let refused = crate::mqtt::Refused { sensor_id: String::new(), reason: MqttReason::TooLarge, message: why };
            Delivery { refused: vec![refused], ..Delivery::default() }
        } else {
            self.intake.take(&publish.topic, &publish.payload, arrival)
        };
        if let Some(gap) = &delivery.gap {
            stats.sequence_gap();
            self.log_gap(gap, arrival);
        }
        for refused in &delivery.refused {
            stats.refused(refused.reason.as_str());
            self.ingress.refuse(Source::Mqtt, &refused.sensor_id, &refused.refusal());
        }
        for reading in &delivery.readings {
            if !self.sharding.owns(reading.sensor_id.as_str()) {
                // Another shard's sensor on a shared topic: that shard's daemons take it.
                stats.other_shard();
                continue;
            }
            if let Err(Refusal::ShuttingDown) = self.offer(reading).await {
                return Handled::Leave;
            }
        }
        if !delivery.offline.is_empty() {
            stats.death();
        }
        for sensor_id in &delivery.offline {
            match self.ingress.go_offline(sensor_id.as_str(), arrival) {
                Ok(()) => {
                    tracing::info!(%sensor_id, "the device went offline (death certificate)")
                }
                Err(Refusal::ShuttingDown) => return Handled::Leave,
                // A device the monitor does not watch: nothing to raise.
                Err(_) => {}
            }
        }
        Handled::Done
    }

    /// Offers a reading to the ingress; a full queue is waited out, up to [`FULL_WAIT`].
    async fn offer(&self, reading: &Reading) -> Result<(), Refusal> {
        let stats = &self.store.health.mqtt;
        let deadline = Instant::now() + FULL_WAIT;
        loop {
            let refusal = match self.ingress.offer(Source::Mqtt, reading) {
                Ok(()) => return Ok(()),
                Err(refusal) => refusal,
            };
            let Refusal::Full { .. } = refusal else {
                stats.refused(refusal.reason().into());
                return Err(refusal);
            };
            let now = Instant::now();
            if now >= deadline {
                stats.refused(refusal.reason().into());
                self.ingress.refuse(Source::Mqtt, reading.sensor_id.as_str(), &refusal);
                return Err(refusal);
            }
            if let Some(lane) = self.ingress.lane(reading.sensor_id.as_str()) {
                let _ = tokio::time::timeout(deadline - now, lane.wait_for_room(1)).await;
            }
        }
    }

    fn log_gap(&mut self, gap: &SequenceGap, now: DateTime<Utc>) {
        if self.gaps_logged.len() > 10_000 {
            self.gaps_logged.clear();
        }
        let last = self.gaps_logged.get(&gap.edge_node).copied();
        if last.is_none_or(|last| now - last >= GAP_LOG_PERIOD) {
            self.gaps_logged.insert(gap.edge_node.clone(), now);
            tracing::warn!(
                edge_node = %bounded(&gap.edge_node, 64), expected = gap.expected, got = gap.got,
                "sparkplug sequence number skipped: messages were lost before the broker"
            );
        }
    }
}
