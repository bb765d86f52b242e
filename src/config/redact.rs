//! Credentials out of everything printed or logged: `check-config`, start-up and reload logs,
//! validation messages. Tokens are [`super::Secret`]s and print as `***` by construction; URLs
//! (`redis.url`, `llm.url`, a broker's) carry theirs inline, `scheme://user:password@host`, and
//! are redacted here before they are shown.

use super::Config;

/// What replaces a credential.
const HIDDEN: &str = "***";

/// Query parameters that hold a credential (`unix:///run/redis.sock?pass=…`).
const SECRET_PARAMETERS: [&str; 5] = ["pass", "password", "token", "secret", "key"];

/// `url` with its password (and any credential in its query) replaced by `***`; a user name is
/// kept, unless it stands alone (`scheme://token@host`), when it may be the credential itself.
/// A comma-separated list of URLs (Redis Cluster seeds) is redacted URL by URL.
pub fn redact_url(url: &str) -> String {
    url.split(',').map(redact_one).collect::<Vec<_>>().join(",")
}

fn redact_one(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:{HIDDEN}@{host}"),
            None => format!("{HIDDEN}@{host}"),
        },
        None => authority.to_owned(),
    };
    format!("{scheme}://{authority}{}", redact_query(tail))
}

fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else { return tail.to_owned() };
    let (query, fragment) = query.split_once('#').map_or((query, None), |(query, fragment)| (query, Some(fragment)));
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if SECRET_PARAMETERS.iter().any(|secret| secret.eq_ignore_ascii_case(name)) => {
                format!("{name}={HIDDEN}")
            }
            _ => pair.to_owned(),
        })
        .collect();
    let fragment = fragment.map(|fragment| format!("#{fragment}")).unwrap_or_default();
    format!("{path}?{}{fragment}", pairs.join("&"))
}

impl Config {
    /// A copy fit to print: every URL redacted (tokens already print as `***`).
    pub fn redacted(&self) -> Config {
        let mut shown = self.clone();
        shown.redis.url = redact_url(&self.redis.url);
        shown.llm.url = redact_url(&self.llm.url);
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_hidden_and_the_rest_kept() {
        let cases = [
            ("redis://:s3cret@redis-host:6379/2", "redis://:***@redis-host:6379/2"),
            ("redis://monitor:s3cret@redis-host:6379", "redis://monitor:***@redis-host:6379"),
            ("rediss://token-only@redis-host", "rediss://***@redis-host"),
            ("http://ollama:p%40ss@10.0.0.5:11434/api", "http://ollama:***@10.0.0.5:11434/api"),
            ("unix:///run/redis.sock?db=1&pass=s3cret", "unix:///run/redis.sock?db=1&pass=***"),
            ("redis://:a@r1:7000,redis://:b@r2:7000", "redis://:***@r1:7000,redis://:***@r2:7000"),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("", ""),
            ("not a url", "not a url"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn the_printed_config_carries_no_password() {
        let mut config = Config::default();
        config.redis.url = "redis://:hunter2@redis-host:6379".into();
        config.llm.url = "http://user:hunter3@ollama:11434".into();
        let printed = config.to_toml();
        assert!(!printed.contains("hunter"), "{printed}");
        assert!(printed.contains("redis://:***@redis-host:6379"), "{printed}");
        assert_eq!(config.redis.url, "redis://:hunter2@redis-host:6379", "the config itself is untouched");
    }
}
