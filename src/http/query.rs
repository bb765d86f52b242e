//! Query strings, read strictly: an unknown or repeated parameter, an empty value or a value out
//! of range is a 400 that names the parameter, never a silent default. A client that misspells
//! `limit` learns it at once instead of getting 50 anomalies and wondering why.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use super::errors::ApiError;
use crate::config::Config;
use crate::domain::{AnomalyKind, Parameter};
use crate::store::AnomalyQuery;

/// Largest `limit` accepted by the list endpoints.
pub const MAX_LIMIT: usize = 1000;
/// `limit` when the request gives none, as in the prototype.
pub const DEFAULT_LIMIT: usize = 50;

/// The parameters `GET /anomalies` takes.
pub const ANOMALY_PARAMETERS: [&str; 5] = ["limit", "sensor_id", "parameter", "type", "since"];

/// The decoded parameters of one request, each at most once and each one the endpoint knows.
pub struct Params<'a> {
    // A list, not a map: an endpoint takes at most five names, and a request without a query
    // string (the common case) allocates nothing.
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> Params<'a> {
    /// Splits `raw` (`None`: no query string), refusing names outside `known`.
    pub fn parse(raw: Option<&'a str>, known: &[&str]) -> Result<Self, ApiError> {
        let mut pairs: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::new();
        for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            if !known.contains(&name.as_ref()) {
                let takes = if known.is_empty() {
                    "this endpoint takes no parameters".to_owned()
                } else {
                    format!("this endpoint takes {}", known.join(", "))
                };
                return Err(ApiError::bad(&name, format!("unknown parameter; {takes}")));
            }
            if pairs.iter().any(|(seen, _)| *seen == name) {
                return Err(ApiError::bad(&name, "given more than once"));
            }
            if value.trim().is_empty() {
                return Err(ApiError::bad(&name, "has no value"));
            }
            pairs.push((name, value));
        }
        Ok(Self { pairs })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(seen, _)| seen == name).map(|(_, value)| value.as_ref())
    }

    /// `limit`, 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when absent.
    pub fn limit(&self) -> Result<usize, ApiError> {
        let Some(text) = self.get("limit") else { return Ok(DEFAULT_LIMIT) };
        match text.trim().parse::<usize>() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
            _ => Err(ApiError::bad("limit", format!("must be a whole number from 1 to {MAX_LIMIT}, got {text:?}"))),
        }
    }
}

/// Refuses any query string, for the endpoints that take no parameters.
pub fn no_params(raw: Option<&str>) -> Result<(), ApiError> {
    Params::parse(raw, &[]).map(drop)
}

/// The filters of `GET /anomalies`. `known_sensor` says whether a sensor id is one the daemon
/// watches or holds anomalies of: an unknown one is a 400 naming it, like an unknown parameter.
pub fn anomaly_query(
    raw: Option<&str>,
    config: &Config,
    known_sensor: impl Fn(&str) -> bool,
) -> Result<AnomalyQuery, ApiError> {
    let params = Params::parse(raw, &ANOMALY_PARAMETERS)?;
    let parameter = params.get("parameter").map(|name| parse_parameter(name, config)).transpose()?;
    let kind = params.get("type").map(parse_kind).transpose()?;
    let since = params.get("since").map(parse_since).transpose()?;
    let sensor_id = params.get("sensor_id").map(|id| parse_sensor(id, &known_sensor)).transpose()?;
    Ok(AnomalyQuery { limit: params.limit()?, sensor_id, parameter, kind, since })
}

/// A sensor the daemon knows of.
pub fn parse_sensor(id: &str, known: impl Fn(&str) -> bool) -> Result<String, ApiError> {
    if known(id) {
        return Ok(id.to_owned());
    }
    Err(ApiError::bad(
        "sensor_id",
        format!("no sensor {:?} is watched or has anomalies", crate::ingress::bounded(id, 64)),
    ))
}

/// A configured parameter.
pub fn parse_parameter(name: &str, config: &Config) -> Result<Parameter, ApiError> {
    if let Some((known, _)) = config.parameters.get_key_value(name) {
        return Ok(known.clone());
    }
    let names = config.parameters.keys();
    Err(ApiError::bad("parameter", format!("must be {}, got {:?}", one_of(names), crate::ingress::bounded(name, 64))))
}

fn parse_kind(name: &str) -> Result<AnomalyKind, ApiError> {
    use strum::VariantArray;
    let names = AnomalyKind::VARIANTS.iter().map(|kind| kind.as_str());
    name.parse().map_err(|_| {
        ApiError::bad("type", format!("must be {}, got {:?}", one_of(names), crate::ingress::bounded(name, 64)))
    })
}

pub fn parse_since(text: &str) -> Result<DateTime<Utc>, ApiError> {
    let parse = |text: &str| DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc));
    // A `+` in an unescaped offset (`…T10:00:00+02:00`) arrives decoded as a space; put it back
    // rather than refuse what the client plainly meant.
    parse(text)
        .or_else(|err| match text.rsplit_once(' ') {
            Some((time, offset)) if offset.contains(':') => parse(&format!("{time}+{offset}")),
            _ => Err(err),
        })
        .map_err(|_| {
            ApiError::bad("since", format!("must be an RFC 3339 time such as 2025-05-19T10:15:00Z, got {text:?}"))
        })
}

/// "a, b or c", from a closed set of names.
fn one_of<T: std::fmt::Display>(names: impl IntoIterator<Item = T>) -> String {
    let names: Vec<String> = names.into_iter().map(|name| name.to_string()).collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}
