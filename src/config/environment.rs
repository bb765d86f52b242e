//! `WTF_…` variables that are not settings: a misspelt section must not pass silently.
//!
//! figment reads a variable whose first segment names a section (`WTF_DETECTION__DRIFT_DURATION`);
//! an unknown key inside it is then an error like any other. A variable whose first segment names
//! no section is one of two things:
//!
//! - shaped like a setting, with the `__` that nests keys (`WTF_DETECTOIN__DRIFT_DURATION`): a
//!   typo, refused like an unknown key in the file;
//! - a single name (`WTF_CONFIG`, `WTF_TEST_REDIS_URL`): perhaps another tool's, which shares
//!   the prefix; the daemon warns about it and goes on, unless it is on [`ENV_ALLOWED`], the
//!   names this project's own tools use, which pass silently.

use super::{ENV_PREFIX, SECTIONS};

/// Prefixes (after `WTF_`) of variables that are not settings and are expected: the test suite's
/// switches (`WTF_TEST_REDIS_URL`, `WTF_SKIP_REDIS_TESTS`).
pub const ENV_ALLOWED: [&str; 2] = ["TEST_", "SKIP_"];

/// A `WTF_` variable that sets nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrayVariable {
    pub name: String,
    /// Refused (the config is invalid), or only warned about.
    pub refused: bool,
    pub message: String,
}

/// Whether figment's key for a variable (`detection.drift_duration`, `log_level`) starts with a
/// section; a variable that does is read as a setting.
pub(super) fn names_a_section(key: &str) -> bool {
    let first = key.split(['.', '_']).next().unwrap_or_default();
    SECTIONS.iter().any(|section| section.eq_ignore_ascii_case(first))
}

/// The process's `WTF_` variables that set nothing, except those on [`ENV_ALLOWED`].
pub fn stray_variables() -> Vec<StrayVariable> {
    let names = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
    stray_among(names)
}

fn stray_among(names: impl IntoIterator<Item = String>) -> Vec<StrayVariable> {
    let mut stray = Vec::new();
    for name in names {
        let Some(rest) = strip_prefix_ignoring_case(&name, ENV_PREFIX) else { continue };
        let allowed = ENV_ALLOWED.iter().any(|allowed| strip_prefix_ignoring_case(rest, allowed).is_some());
        if allowed || names_a_section(&rest.to_ascii_lowercase().replace("__", ".")) {
            continue;
        }
        let sections = SECTIONS.join(", ");
        let (refused, message) = match rest.split_once("__") {
            Some((section, _)) => {
                (true, format!("{:?} is not a section (expected one of {sections})", section.to_ascii_lowercase()))
            }
            None => (false, format!("sets nothing: no section is named so (sections: {sections}); ignored")),
        };
        stray.push(StrayVariable { name: crate::ingress::bounded(&name, 80), refused, message });
    }
    stray.sort_by(|a, b| a.name.cmp(&b.name));
    stray
}

fn strip_prefix_ignoring_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stray(names: &[&str]) -> Vec<StrayVariable> {
        stray_among(names.iter().map(|name| (*name).to_owned()))
    }

    #[test]
    fn a_misspelt_section_is_refused_by_the_variable_name() {
        let found = stray(&["WTF_DETECTOIN__DRIFT_DURATION", "WTF_DETECTION__DRIFT_DURATION", "PATH"]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].name, "WTF_DETECTOIN__DRIFT_DURATION");
        assert!(found[0].refused);
        assert!(found[0].message.contains("\"detectoin\" is not a section"), "{}", found[0].message);
    }

    #[test]
    fn other_names_are_warned_about_unless_allowed() {
        let found = stray(&["WTF_CONFIG", "WTF_TEST_REDIS_URL", "WTF_SKIP_REDIS_TESTS", "wtf_test_x", "WTF_LOG_LEVEL"]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].name.as_str(), found[0].refused), ("WTF_CONFIG", false));
    }
}
