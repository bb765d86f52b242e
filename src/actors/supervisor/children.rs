//! The children the supervisor knows how to spawn, by kind, and their names: the one place that
//! spells `simulator:<sensor>` and `detector:<sensor>:<parameter>`.

use ractor::{ActorCell, ActorRef};

use crate::actors::Fault;
use crate::actors::api::ApiMsg;
use crate::actors::detector::DetectorMsg;
use crate::actors::mirror::MirrorMsg;
use crate::actors::mqtt::MqttMsg;
use crate::actors::notifier::NotifierMsg;
use crate::actors::peers::PeersMsg;
use crate::actors::simulator::SimulatorMsg;
use crate::actors::summarizer::SummarizerMsg;
use crate::domain::{Parameter, SensorId};
use crate::health::Component;

/// The actor name of a sensor's simulator, as `/status` lists it.
pub fn simulator_name(sensor_id: &str) -> String {
    format!("simulator:{sensor_id}")
}

/// The actor name of one sensor × parameter's detector.
pub fn detector_name(sensor_id: &str, parameter: &str) -> String {
    format!("detector:{sensor_id}:{parameter}")
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChildKind {
    Simulator(SensorId),
    Detector(SensorId, Parameter),
    Summarizer,
    /// Only when `redis.url` is set.
    Mirror,
    /// Only when `mqtt.url` is set.
    Mqtt,
    /// Only when a notification receiver is configured.
    Notifier,
    /// Only when `redis.url` is set: the journal streams shared with the other daemons.
    Peers,
    Api,
}

impl ChildKind {
    pub fn name(&self) -> String {
        match self {
            ChildKind::Simulator(sensor_id) => simulator_name(sensor_id.as_str()),
            ChildKind::Detector(sensor_id, parameter) => detector_name(sensor_id.as_str(), parameter.as_str()),
            ChildKind::Summarizer => "summarizer".into(),
            ChildKind::Mirror => "mirror".into(),
            ChildKind::Mqtt => "mqtt".into(),
            ChildKind::Notifier => "notifier".into(),
            ChildKind::Peers => "peers".into(),
            ChildKind::Api => "api".into(),
        }
    }

    pub fn component(&self) -> Component {
        match self {
            ChildKind::Simulator(_) => Component::Sensor,
            ChildKind::Detector(..) => Component::Detector,
            ChildKind::Summarizer => Component::Llm,
            ChildKind::Mirror => Component::Redis,
            ChildKind::Mqtt => Component::Mqtt,
            ChildKind::Notifier => Component::Notify,
            ChildKind::Peers => Component::Redis,
            ChildKind::Api => Component::Api,
        }
    }

    /// The sensor a simulator or detector belongs to.
    pub fn sensor(&self) -> Option<&SensorId> {
        match self {
            ChildKind::Simulator(sensor_id) | ChildKind::Detector(sensor_id, _) => Some(sensor_id),
            _ => None,
        }
    }
}

/// A running child, typed so the supervisor can message it.
#[derive(Clone)]
pub enum ChildRef {
    Simulator(ActorRef<SimulatorMsg>),
    Detector(ActorRef<DetectorMsg>),
    Summarizer(ActorRef<SummarizerMsg>),
    Mirror(ActorRef<MirrorMsg>),
    Mqtt(ActorRef<MqttMsg>),
    Notifier(ActorRef<NotifierMsg>),
    Peers(ActorRef<PeersMsg>),
    Api(ActorRef<ApiMsg>),
}

impl ChildRef {
    pub fn cell(&self) -> ActorCell {
        match self {
            ChildRef::Simulator(actor) => actor.get_cell(),
            ChildRef::Detector(actor) => actor.get_cell(),
            ChildRef::Summarizer(actor) => actor.get_cell(),
            ChildRef::Mirror(actor) => actor.get_cell(),
            ChildRef::Mqtt(actor) => actor.get_cell(),
            ChildRef::Notifier(actor) => actor.get_cell(),
            ChildRef::Peers(actor) => actor.get_cell(),
            ChildRef::Api(actor) => actor.get_cell(),
        }
    }

    pub fn inject(&self, fault: Fault) -> bool {
        match self {
            ChildRef::Simulator(actor) => actor.cast(SimulatorMsg::InjectFault(fault)).is_ok(),
            ChildRef::Detector(actor) => actor.cast(DetectorMsg::InjectFault(fault)).is_ok(),
            ChildRef::Summarizer(actor) => actor.cast(SummarizerMsg::InjectFault(fault)).is_ok(),
            ChildRef::Mirror(actor) => actor.cast(MirrorMsg::InjectFault(fault)).is_ok(),
            ChildRef::Mqtt(actor) => actor.cast(MqttMsg::InjectFault(fault)).is_ok(),
            ChildRef::Notifier(actor) => actor.cast(NotifierMsg::InjectFault(fault)).is_ok(),
            ChildRef::Peers(actor) => actor.cast(PeersMsg::InjectFault(fault)).is_ok(),
            ChildRef::Api(actor) => actor.cast(ApiMsg::InjectFault(fault)).is_ok(),
        }
    }
}
