//! Who may enter each protected site: an `allow` list per OIDC client (`OIDC_CLIENTS`) and
//! per forward-auth host (`ACCESS_RULES`). Entries are `group:NAME`, `user:ID` and
//! `admins`; no list admits any active user; nobody but active users ever passes.
//!
//! ```toml
//! default = "allow"                 # or "deny": hosts no rule names
//!
//! [[rule]]
//! host = "grafana.example.com"      # this host and the hosts below it
//! allow = ["group:ops", "admins"]
//! ```
//!
//! The most specific rule wins (`a.grafana.example.com` follows a rule for
//! `grafana.example.com` unless one names it). Mistakes stop the server with the line they
//! are on; a `user:ID` nobody has yet is only a warning (the person may come later).

use crate::domain::{GroupName, UserId, UserStatus};
use crate::server::users::User;
use serde::Deserialize;
use toml::Spanned;

/// One `allow` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allow {
    Group(GroupName),
    User(UserId),
    Admins,
}

impl Allow {
    fn admits(&self, user: &User) -> bool {
        match self {
            Allow::Group(g) => user.groups.contains(g),
            Allow::User(id) => user.id == *id,
            Allow::Admins => user.admin,
        }
    }

    /// The entry as written.
    pub fn describe(&self) -> String {
        match self {
            Allow::Group(g) => format!("group:{g}"),
            Allow::User(id) => format!("user:{id}"),
            Allow::Admins => "admins".into(),
        }
    }

    /// Reads one entry.
    pub fn parse(s: &str) -> Result<Allow, String> {
        if s == "admins" {
            return Ok(Allow::Admins);
        }
        if let Some(g) = s.strip_prefix("group:") {
            return GroupName::try_from(g).map(Allow::Group).map_err(|e| format!("{s:?}: {e}"));
        }
        if let Some(id) = s.strip_prefix("user:") {
            return id
                .parse::<i64>()
                .ok()
                .filter(|i| *i > 0)
                .map(|i| Allow::User(UserId(i)))
                .ok_or_else(|| format!("{s:?}: user:ID takes a user id (a number)"));
        }
        Err(format!("{s:?}: an entry is group:NAME, user:ID or admins"))
    }
}

/// Who a site admits: `None`, any active user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub allow: Option<Vec<Allow>>,
}

/// Why someone was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Pending or disabled: no site admits them.
    NotActive(UserStatus),
    /// Active, but no entry of the rule names them.
    NotAllowed,
}

impl Policy {
    /// Whether `user` may enter.
    pub fn check(&self, user: &User) -> Result<(), Refusal> {
        if !user.is_active() {
            return Err(Refusal::NotActive(user.status));
        }
        match &self.allow {
            None => Ok(()),
            Some(list) if list.iter().any(|a| a.admits(user)) => Ok(()),
            Some(_) => Err(Refusal::NotAllowed),
        }
    }

    /// The list as written, for logs and `check-config`.
    pub fn describe(&self) -> String {
        match &self.allow {
            None => "any active user".into(),
            Some(l) if l.is_empty() => "nobody".into(),
            Some(l) => l.iter().map(Allow::describe).collect::<Vec<_>>().join(", "),
        }
    }

    /// Every `user:ID` the list names.
    pub fn user_ids(&self) -> impl Iterator<Item = UserId> + '_ {
        self.allow.iter().flatten().filter_map(|a| match a {
            Allow::User(id) => Some(*id),
            _ => None,
        })
    }
}

/// The audit line of a refusal by `site`: why, and (not allowed) the rule's list.
pub fn refusal_detail(site: &str, why: Refusal, policy: &Policy) -> String {
    match why {
        Refusal::NotActive(status) => format!("{site}: account {}", status.as_str()),
        Refusal::NotAllowed => format!("{site}: not allowed (allow: {})", policy.describe()),
    }
}

/// Reads an `allow` list written in a TOML file whose text is `text` (for line numbers).
pub fn parse_allow(list: &Option<Vec<Spanned<String>>>, text: &str, file: &str) -> Result<Policy, String> {
    let Some(list) = list else { return Ok(Policy { allow: None }) };
    let allow = list
        .iter()
        .map(|e| Allow::parse(e.get_ref()).map_err(|m| format!("{file} line {}: {m}", line_of(text, e.span().start))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Policy { allow: Some(allow) })
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    default: Option<Spanned<String>>,
    #[serde(default)]
    rule: Vec<RuleEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    host: Spanned<String>,
    allow: Option<Vec<Spanned<String>>>,
}

/// One host's rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRule {
    pub host: String,
    pub policy: Policy,
}

/// The forward-auth rules (`ACCESS_RULES`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Hosts no rule names: any active user (`allow`), or nobody (`deny`).
    pub default: Policy,
    pub hosts: Vec<HostRule>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules { default: Policy { allow: None }, hosts: Vec::new() }
    }
}

/// A host as a rule may name it: a DNS name, no scheme, port or path.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && !h.starts_with('.')
        && !h.ends_with('.')
        && h.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

impl Rules {
    /// Reads and checks a rules file; `file` names it in messages.
    pub fn parse(text: &str, file: &str) -> Result<Rules, String> {
        let parsed: RulesFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start)).map(|l| format!(" line {l}")).unwrap_or_default();
            format!("{file}{line}: {}", e.message())
        })?;
        let default = match parsed.default.as_ref().map(|d| (d.get_ref().as_str(), d.span().start)) {
            None | Some(("allow", _)) => Policy { allow: None },
            Some(("deny", _)) => Policy { allow: Some(Vec::new()) },
            Some((other, at)) => return Err(format!("{file} line {}: default is \"allow\" or \"deny\", not {other:?}", line_of(text, at))),
        };
        let mut hosts: Vec<HostRule> = Vec::new();
        for r in parsed.rule {
            let line = line_of(text, r.host.span().start);
            let host = r.host.get_ref().trim().to_ascii_lowercase();
            if !valid_host(&host) {
                return Err(format!("{file} line {line}: host {:?} must be a host name alone (no scheme, port or path)", r.host.get_ref()));
            }
            if hosts.iter().any(|h| h.host == host) {
                return Err(format!("{file} line {line}: a second rule for {host}"));
            }
            let policy = parse_allow(&r.allow, text, file)?;
            hosts.push(HostRule { host, policy });
        }
        Ok(Rules { default, hosts })
    }

    /// Reads the file at `path`.
    pub fn load(path: &std::path::Path) -> Result<Rules, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read ACCESS_RULES {}: {e}", path.display()))?;
        Rules::parse(&text, &path.display().to_string())
    }

    /// The rule for `host`: the most specific one naming it or a parent, else the default
    /// (`None` as the rule's host).
    pub fn for_host(&self, host: &str) -> (&Policy, Option<&str>) {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let host = host.split(':').next().unwrap_or_default();
        self.hosts
            .iter()
            .filter(|r| host == r.host || host.strip_suffix(&r.host).is_some_and(|rest| rest.ends_with('.')))
            .max_by_key(|r| r.host.len())
            .map(|r| (&r.policy, Some(r.host.as_str())))
            .unwrap_or((&self.default, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UnixMillis;
    use crate::server::wechat::WxIdentity;

    fn user(id: i64, groups: &[&str], admin: bool, status: UserStatus) -> User {
        let mut u = User::new(UserId(id), &WxIdentity { openid: format!("o{id}"), unionid: None }, "x".into(), UnixMillis(0), status);
        u.groups = groups.iter().map(|g| GroupName::try_from(*g).unwrap()).collect();
        u.admin = admin;
        u
    }

    const FILE: &str = r#"
default = "deny"

[[rule]]
host = "grafana.example.com"
allow = ["group:ops", "admins"]

[[rule]]
host = "example.com"

[[rule]]
host = "secret.grafana.example.com"
allow = ["user:7"]
"#;

    #[test]
    fn the_most_specific_rule_decides_and_only_active_users_pass() {
        let rules = Rules::parse(FILE, "rules.toml").unwrap();
        let ops = user(1, &["ops"], false, UserStatus::Active);
        let dev = user(2, &["dev"], false, UserStatus::Active);
        let admin = user(3, &[], true, UserStatus::Active);
        let seven = user(7, &[], false, UserStatus::Active);
        let (grafana, name) = rules.for_host("grafana.example.com");
        assert_eq!(name, Some("grafana.example.com"));
        assert_eq!(grafana.check(&ops), Ok(()));
        assert_eq!(grafana.check(&admin), Ok(()));
        assert_eq!(grafana.check(&dev), Err(Refusal::NotAllowed));
        assert_eq!(rules.for_host("A.Grafana.Example.com.").1, Some("grafana.example.com"), "below it, case and dot aside");
        assert_eq!(rules.for_host("grafana.example.com:8443").1, Some("grafana.example.com"), "a port is not part of the host");
        let (secret, _) = rules.for_host("secret.grafana.example.com");
        assert_eq!((secret.check(&seven), secret.check(&ops)), (Ok(()), Err(Refusal::NotAllowed)));
        assert_eq!(rules.for_host("wiki.example.com").0.check(&dev), Ok(()), "example.com admits any active user");
        let (other, name) = rules.for_host("elsewhere.org");
        assert_eq!((name, other.check(&admin)), (None, Err(Refusal::NotAllowed)), "default deny");
        assert_eq!(rules.for_host("evilexample.com").1, None, "suffixes match on a dot boundary only");
        let pending = user(1, &["ops"], true, UserStatus::Pending);
        assert_eq!(grafana.check(&pending), Err(Refusal::NotActive(UserStatus::Pending)));
        assert_eq!(Policy::default().check(&pending), Err(Refusal::NotActive(UserStatus::Pending)), "not even without a list");
    }

    #[test]
    fn mistakes_name_their_line() {
        let cases = [
            ("[[rule]]\nhost = \"a.com\"\ncolour = \"red\"\n", "line 3"),
            ("[[rule]]\nhost = \"https://a.com\"\n", "line 2"),
            ("[[rule]]\nhost = \"a.com/x\"\n", "line 2"),
            ("[[rule]]\nhost = \"a.com\"\nallow = [\"group:\"]\n", "line 3"),
            ("[[rule]]\nhost = \"a.com\"\nallow = [\n  \"admins\",\n  \"user:abc\",\n]\n", "line 5"),
            ("[[rule]]\nhost = \"a.com\"\n\n[[rule]]\nhost = \"A.com\"\n", "line 5"),
            ("default = \"maybe\"\n", "line 1"),
            ("[[rule]]\nhost = \"a.com\"\nallow = [\"everyone\"]\n", "line 3"),
        ];
        for (text, line) in cases {
            let e = Rules::parse(text, "rules.toml").unwrap_err();
            assert!(e.starts_with("rules.toml") && e.contains(line), "{text:?}: {e}");
        }
        assert_eq!(Rules::parse("", "r").unwrap(), Rules::default(), "an empty file admits any active user everywhere");
        assert_eq!(Rules::parse("[[rule]]\nhost = \"a.com\"\nallow = []\n", "r").unwrap().for_host("a.com").0.describe(), "nobody");
    }
}
