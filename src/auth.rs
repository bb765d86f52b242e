//! Who may do what through the API: bearer tokens from the configuration, each with a name and
//! a [`Role`].
//!
//! Tokens are compared in constant time, never logged, and never echoed: a refusal says only
//! that the token is missing, unknown or too weak for the action. The name of the token that made
//! a change is what the audit log records.

use std::sync::Arc;

use crate::config::{AuthConfig, ReadAccess, Role, TokenConfig};

/// Shorter tokens are refused by validation: a token is a password a machine types.
pub const MIN_TOKEN_CHARS: usize = 16;
/// A token file larger than this is not a token.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// What a request may do: the token's name (for the audit log) and its role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: Arc<str>,
    pub role: Role,
}

/// What the API checks a request for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Reading what the daemon serves (only checked with `auth.read = "token"`).
    Read,
    /// Sending readings.
    Ingest,
    /// Acknowledging, shelving, unshelving alarms.
    Operate,
}

impl Action {
    pub fn allowed(self, role: Role) -> bool {
        match self {
            Action::Read => true,
            Action::Ingest => matches!(role, Role::Ingest | Role::Admin),
            Action::Operate => matches!(role, Role::Operator | Role::Admin),
        }
    }

    /// The roles that may, for the 403's message.
    pub fn roles(self) -> &'static str {
        match self {
            Action::Read => "any role",
            Action::Ingest => "ingest or admin",
            Action::Operate => "operator or admin",
        }
    }
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No token, or one that no configured token matches: 401.
    Unauthenticated,
    /// A valid token whose role may not do this: 403. Whose it is, for the audit trail.
    Forbidden(Principal),
}

/// The tokens in force.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    read: ReadAccess,
    tokens: Vec<(Vec<u8>, Principal)>,
}

impl Auth {
    /// The tokens of a validated config; a token whose file cannot be read (validation said so)
    /// is left out rather than stopping the daemon.
    pub fn from_config(config: &AuthConfig) -> Self {
        let tokens = config
            .tokens
            .iter()
            .filter_map(|token| {
                let secret = read_secret(token).ok()?;
                Some((secret.into_bytes(), Principal { name: Arc::from(token.name.as_str()), role: token.role }))
            })
            .collect();
        Self { read: config.read, tokens }
    }

    /// True when no token is configured at all: writes are then impossible, and the API says how
    /// to add one.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Checks the secret a request presented (None: it presented none) for `action`.
    pub fn check(&self, presented: Option<&str>, action: Action) -> Result<Option<Principal>, Refusal> {
        if action == Action::Read && self.read == ReadAccess::Open {
            return Ok(presented.and_then(|secret| self.find(secret)).cloned());
        }
        let principal = presented.and_then(|secret| self.find(secret)).ok_or(Refusal::Unauthenticated)?;
        if action.allowed(principal.role) {
            Ok(Some(principal.clone()))
        } else {
            Err(Refusal::Forbidden(principal.clone()))
        }
    }

    fn find(&self, secret: &str) -> Option<&Principal> {
        // Every token is compared, and each comparison takes the same time whatever matches, so
        // the answer's timing says nothing about how close a guess was.
        let mut found = None;
        for (known, principal) in &self.tokens {
            if constant_time_eq(known, secret.as_bytes()) {
                found = Some(principal);
            }
        }
        found
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |differ, (x, y)| differ | (x ^ y)) == 0
}

/// The secret of a configured token: `token`, or the trimmed contents of `token_file`.
pub fn read_secret(token: &TokenConfig) -> Result<String, String> {
    match (&token.token, &token.token_file) {
        (Some(secret), None) => Ok(secret.expose().to_owned()),
        (None, Some(path)) => {
            let size = std::fs::metadata(path).map_err(|err| format!("token_file {}: {err}", path.display()))?.len();
            if size > MAX_TOKEN_FILE_BYTES {
                return Err(format!("token_file {} is {size} bytes: not a token", path.display()));
            }
            let text = std::fs::read_to_string(path).map_err(|err| format!("token_file {}: {err}", path.display()))?;
            Ok(text.trim().to_owned())
        }
        (Some(_), Some(_)) => Err("give token or token_file, not both".to_owned()),
        (None, None) => Err("needs token or token_file".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn auth(read: ReadAccess) -> Auth {
        let token = |name: &str, role, secret: &str| TokenConfig {
            name: name.into(),
            role,
            token: Some(Secret::new(secret)),
            token_file: None,
        };
        Auth::from_config(&AuthConfig {
            read,
            tokens: vec![
                token("gateway", Role::Ingest, "ingest-secret-0123456789"),
                token("night-shift", Role::Operator, "operator-secret-0123456789"),
                token("viewer", Role::Viewer, "viewer-secret-0123456789"),
            ],
        })
    }

    #[test]
    fn each_role_may_do_its_part_and_no_more() {
        let auth = auth(ReadAccess::Open);
        let ingest = auth.check(Some("ingest-secret-0123456789"), Action::Ingest).unwrap().unwrap();
        assert_eq!(&*ingest.name, "gateway");
        let forbidden = |secret, action| match auth.check(Some(secret), action) {
            Err(Refusal::Forbidden(principal)) => Some((principal.name.to_string(), principal.role)),
            _ => None,
        };
        assert_eq!(forbidden("ingest-secret-0123456789", Action::Operate), Some(("gateway".into(), Role::Ingest)));
        assert_eq!(forbidden("viewer-secret-0123456789", Action::Ingest), Some(("viewer".into(), Role::Viewer)));
        assert!(auth.check(Some("operator-secret-0123456789"), Action::Operate).is_ok());
        assert_eq!(auth.check(None, Action::Ingest), Err(Refusal::Unauthenticated));
        assert_eq!(auth.check(Some("ingest-secret-012345678"), Action::Ingest), Err(Refusal::Unauthenticated));
    }

    #[test]
    fn reads_are_open_unless_closed() {
        assert_eq!(auth(ReadAccess::Open).check(None, Action::Read), Ok(None));
        assert_eq!(auth(ReadAccess::Token).check(None, Action::Read), Err(Refusal::Unauthenticated));
        assert!(auth(ReadAccess::Token).check(Some("viewer-secret-0123456789"), Action::Read).is_ok());
    }

    #[test]
    fn a_token_file_is_read_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "file-secret-0123456789\n").unwrap();
        let token = TokenConfig { name: "file".into(), role: Role::Admin, token: None, token_file: Some(path) };
        assert_eq!(read_secret(&token).unwrap(), "file-secret-0123456789");
        let missing = TokenConfig { token_file: Some(dir.path().join("nope")), ..token };
        assert!(read_secret(&missing).unwrap_err().contains("nope"));
    }
}
