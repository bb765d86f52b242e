//! `[mqtt]`: the broker the daemon subscribes to, and how Sparkplug B names map to sensors and
//! parameters. Its own file because it is the one section with a network address, credentials
//! and name maps of its own.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Secret;

/// MQTT ingestion: plain JSON topics under `topic_prefix`, and Sparkplug B when `sparkplug` is on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// `mqtt://host:port` (or `tcp://`); the port defaults to 1883. Empty: no MQTT. No TLS is
    /// built in, and credentials go in `username` / `password`, never in the URL. Needs a restart.
    pub url: String,
    /// The client id: fixed, so the broker keeps the session (subscriptions and unacknowledged
    /// messages) while the daemon restarts. "" (the default): `wtf-monitor-<cluster.instance>`,
    /// so two daemons on one broker each keep a session of their own. Needs a restart.
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The password; or leave it out and give `password_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// A file holding the password (surrounding whitespace ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Plain topics: `<prefix>/<sensor_id>` (a JSON reading) and `<prefix>/<sensor_id>/<parameter>`
    /// (a bare number or `{"value": …, "timestamp": …}`).
    pub topic_prefix: String,
    /// Also subscribe to `spBv1.0/#` and read Sparkplug B births, data and deaths.
    pub sparkplug: bool,
    /// Sparkplug metric name → parameter, for names that are not a parameter's own name (which
    /// match case-insensitively): `"Pressure/PT-101" = "pressure"`. Applies on reload.
    pub sparkplug_metrics: BTreeMap<String, String>,
    /// Sparkplug `<edge_node>/<device>` (or `<edge_node>`) → sensor id; unmapped ones are
    /// `<edge_node>.<device>` (or `<edge_node>`). Applies on reload.
    pub sparkplug_sensors: BTreeMap<String, String>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            client_id: String::new(),
            username: None,
            password: None,
            password_file: None,
            topic_prefix: "wtf".into(),
            sparkplug: false,
            sparkplug_metrics: BTreeMap::new(),
            sparkplug_sensors: BTreeMap::new(),
        }
    }
}

impl MqttConfig {
    /// The client id this daemon connects with: `client_id`, or one derived from the instance.
    pub fn session_id(&self, instance: &str) -> String {
        if self.client_id.is_empty() { format!("wtf-monitor-{instance}") } else { self.client_id.clone() }
    }
}

/// A password file larger than this is not a password.
const MAX_PASSWORD_FILE_BYTES: u64 = 4096;

impl MqttConfig {
    /// The password to log in with: `password`, or the trimmed contents of `password_file`.
    pub fn read_password(&self) -> Result<Option<String>, String> {
        match (&self.password, &self.password_file) {
            (None, None) => Ok(None),
            (Some(password), None) => Ok(Some(password.expose().to_owned())),
            (None, Some(path)) => {
                let shown = path.display();
                let size = std::fs::metadata(path).map_err(|err| format!("password_file {shown}: {err}"))?.len();
                if size > MAX_PASSWORD_FILE_BYTES {
                    return Err(format!("password_file {shown} is {size} bytes: not a password"));
                }
                let text = std::fs::read_to_string(path).map_err(|err| format!("password_file {shown}: {err}"))?;
                Ok(Some(text.trim().to_owned()))
            }
            (Some(_), Some(_)) => Err("give password or password_file, not both".to_owned()),
        }
    }

    /// The settings of the connection itself, which need a restart to change; the name maps
    /// apply live.
    pub fn connection(&self) -> MqttConfig {
        MqttConfig { sparkplug_metrics: BTreeMap::new(), sparkplug_sensors: BTreeMap::new(), ..self.clone() }
    }
}

/// Where the broker is, from `mqtt.url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerAddress {
    pub host: String,
    pub port: u16,
}

impl BrokerAddress {
    /// Reads `mqtt://host[:port][/]`; the reason names what is wrong, never the whole URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = if let Some(rest) = url.strip_prefix("mqtt://").or_else(|| url.strip_prefix("tcp://")) {
            rest
        } else if ["mqtts://", "ssl://", "tls://", "ws://", "wss://"].iter().any(|scheme| url.starts_with(scheme)) {
            return Err("only mqtt:// (plain TCP) is built in: no TLS or websockets; put a TLS-terminating \
                        proxy beside the broker, or keep the broker on the plant network"
                .into());
        } else {
            return Err("must start with mqtt://, or be empty".into());
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('@') {
            return Err("credentials go in mqtt.username and mqtt.password (or password_file), not in the URL, \
                        which is logged"
                .into());
        }
        if authority.contains(['/', '?', '#']) {
            return Err("must be mqtt://host:port, without a path or query".into());
        }
        let (host, port) = match authority.strip_prefix('[') {
            // An IPv6 literal: [::1]:1883
            Some(inner) => {
                let (host, after) = inner.split_once(']').ok_or("an IPv6 address needs its closing ]")?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            return Err("names no host".into());
        }
        let port = match port {
            None => 1883,
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => return Err(format!("port {:?} is not from 1 to 65535", crate::ingress::bounded(port, 12))),
            },
        };
        Ok(Self { host: host.to_owned(), port })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_url_gives_host_and_port() {
        let parse = |url| BrokerAddress::parse(url).map(|address| (address.host, address.port));
        assert_eq!(parse("mqtt://127.0.0.1:1884"), Ok(("127.0.0.1".into(), 1884)));
        assert_eq!(parse("mqtt://mosquitto"), Ok(("mosquitto".into(), 1883)));
        assert_eq!(parse("tcp://broker.plant:1883/"), Ok(("broker.plant".into(), 1883)));
        assert_eq!(parse("mqtt://[::1]:1885"), Ok(("::1".into(), 1885)));
    }

    #[test]
    fn a_broker_url_that_cannot_be_used_says_why() {
        let why = |url| BrokerAddress::parse(url).unwrap_err();
        assert!(why("mqtts://broker:8883").contains("TLS"));
        assert!(why("http://broker").contains("mqtt://"));
        assert!(why("mqtt://user:secret@broker").contains("mqtt.password"));
        assert!(!why("mqtt://user:secret@broker").contains("secret"));
        assert!(why("mqtt://broker:0").contains("port"));
        assert!(why("mqtt://broker:99999").contains("port"));
        assert!(why("mqtt://:1883").contains("host"));
        assert!(why("mqtt://broker/topic").contains("path"));
    }
}
