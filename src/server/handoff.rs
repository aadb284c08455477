//! The login hand-off: where a login goes after the scan, and what it signs in to. The
//! OIDC side and forward-auth build one; the login page's URL carries it (`next`, and
//! `fresh` when a site asked for a new scan); the ticket and the page guard read it back.
//! It is the only place that knows the shape of those URLs.

use crate::domain::NextPath;

/// Where the browser goes once the login is done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A page of ours (`/account` unless the page said otherwise).
    Page(NextPath),
    /// A pending OpenID Connect authorization request, answered at `/oidc/resume/<id>`.
    Oidc(String),
    /// Back to a protected app's URL through `/auth/return` (checked again there).
    ForwardAuth(String),
    /// A setup link's page (`/setup/<secret>`): the owner's way to become the first admin,
    /// which lets a newcomer in whatever the sign-up policy.
    Setup(String),
    /// An invitation's page (`/invite/<secret>`), which lets a newcomer in too.
    Invite(String),
}

/// A login's hand-off: its target, and whether a new scan is required even when the
/// browser is signed in (OIDC `prompt=login`, `max_age`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handoff {
    pub target: Target,
    pub fresh: bool,
}

const OIDC_RESUME: &str = "/oidc/resume/";
const AUTH_RETURN: &str = "/auth/return?rd=";
const SETUP: &str = "/setup/";
const INVITE: &str = "/invite/";

/// A pending request's id as we make them: 22 characters of base64url (128 bits).
fn is_request_id(s: &str) -> bool {
    s.len() == 22 && is_base64url(s)
}

fn is_base64url(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl Handoff {
    /// To the OIDC request `id` once signed in.
    pub fn oidc(id: &str, fresh: bool) -> Self {
        Handoff { target: Target::Oidc(id.to_string()), fresh }
    }

    /// To the setup link `secret`'s page once signed in.
    pub fn setup(secret: &str) -> Self {
        Handoff { target: Target::Setup(secret.to_string()), fresh: false }
    }

    /// Back to the protected app's `rd` once signed in.
    pub fn forward_auth(rd: &str) -> Self {
        Handoff { target: Target::ForwardAuth(rd.to_string()), fresh: false }
    }

    /// Reads the login page's query. `next` names an OIDC request only when it is
    /// exactly `/oidc/resume/<id>`: anything around the id (`?`, `&`, `/..`) makes it a
    /// plain page, attached to no site.
    pub fn from_login(next: Option<NextPath>, fresh: bool) -> Self {
        let next = next.unwrap_or_default();
        let path = next.as_str();
        let secret =
            |prefix: &str| path.strip_prefix(prefix).filter(|s| (1..=64).contains(&s.len()) && is_base64url(s)).map(str::to_string);
        let target = match path.strip_prefix(OIDC_RESUME) {
            Some(id) if is_request_id(id) => Target::Oidc(id.to_string()),
            _ => match (secret(SETUP), secret(INVITE)) {
                (Some(s), _) => Target::Setup(s),
                (_, Some(s)) => Target::Invite(s),
                _ => Target::Page(next),
            },
        };
        Handoff { target, fresh }
    }

    /// The path the browser goes to after the login (the ticket's `next`).
    pub fn next(&self) -> String {
        match &self.target {
            Target::Page(p) => p.as_str().to_string(),
            Target::Oidc(id) => format!("{OIDC_RESUME}{id}"),
            Target::ForwardAuth(rd) => format!("{AUTH_RETURN}{}", encode(rd)),
            Target::Setup(secret) => format!("{SETUP}{secret}"),
            Target::Invite(secret) => format!("{INVITE}{secret}"),
        }
    }

    /// The login page for this hand-off (a same-site path).
    pub fn login_url(&self) -> String {
        let next = match &self.target {
            // Already URL-safe: kept readable.
            Target::Oidc(_) | Target::Setup(_) | Target::Invite(_) => self.next(),
            _ => encode(&self.next()),
        };
        let fresh = if self.fresh { "&fresh=1" } else { "" };
        format!("/login?next={next}{fresh}")
    }

    /// To the invitation `secret`'s page once signed in.
    pub fn invite(secret: &str) -> Self {
        Handoff { target: Target::Invite(secret.to_string()), fresh: false }
    }

    /// The invitation this login goes through, if any.
    pub fn invite_secret(&self) -> Option<&str> {
        match &self.target {
            Target::Invite(s) => Some(s),
            _ => None,
        }
    }

    /// The setup link this login goes through, if any.
    pub fn setup_secret(&self) -> Option<&str> {
        match &self.target {
            Target::Setup(s) => Some(s),
            _ => None,
        }
    }

    /// The OIDC request this login answers, if any.
    pub fn oidc_request(&self) -> Option<&str> {
        match &self.target {
            Target::Oidc(id) => Some(id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(s: &str) -> Option<NextPath> {
        Some(NextPath::try_from(s).unwrap())
    }

    #[test]
    fn only_an_exact_resume_path_names_an_oidc_request() {
        let id = "AAAAAAAAAAAAAAAAAAAAAA";
        assert_eq!(Handoff::from_login(next(&format!("/oidc/resume/{id}")), false).oidc_request(), Some(id));
        for tricky in [
            format!("/oidc/resume/{id}&/../../../account"),
            format!("/oidc/resume/{id}?x=1"),
            format!("/oidc/resume/{id}/"),
            format!("/oidc/resume/{id}A"),
            "/oidc/resume/".to_string(),
            format!("/x/oidc/resume/{id}"),
        ] {
            let h = Handoff::from_login(next(&tricky), false);
            assert_eq!(h.oidc_request(), None, "{tricky}");
            assert_eq!(h.next(), tricky, "a plain page, unchanged");
        }
        assert_eq!(Handoff::from_login(None, false).next(), "/account");
        let setup = Handoff::from_login(next("/setup/abc_DEF-123"), false);
        assert_eq!(setup.setup_secret(), Some("abc_DEF-123"));
        assert_eq!(Handoff::from_login(next("/setup/abc/../../account"), false).setup_secret(), None);
        assert_eq!(Handoff::setup("s3cret").login_url(), "/login?next=/setup/s3cret");
        assert_eq!(Handoff::from_login(next("/invite/abc"), false).invite_secret(), Some("abc"));
        assert_eq!(Handoff::from_login(next("/invite/abc?x"), false).invite_secret(), None);
    }

    #[test]
    fn login_urls_read_back_as_the_same_handoff() {
        let id = "abcdefghijklmnopqrstu_";
        let h = Handoff::oidc(id, true);
        assert_eq!(h.login_url(), format!("/login?next=/oidc/resume/{id}&fresh=1"));
        assert_eq!(Handoff::from_login(next(&h.next()), true), h);
        let f = Handoff::forward_auth("https://grafana.example.com/d/x?a=1&b=2");
        assert_eq!(
            f.login_url(),
            "/login?next=%2Fauth%2Freturn%3Frd%3Dhttps%253A%252F%252Fgrafana%252Eexample%252Ecom%252Fd%252Fx%253Fa%253D1%2526b%253D2"
        );
        let url = url::Url::parse(&format!("http://x{}", f.login_url())).unwrap();
        let back: String = url.query_pairs().find(|(k, _)| k == "next").unwrap().1.into_owned();
        assert_eq!(back, f.next());
        let rd: String = url::Url::parse(&format!("http://x{back}")).unwrap().query_pairs().next().unwrap().1.into_owned();
        assert_eq!(rd, "https://grafana.example.com/d/x?a=1&b=2");
    }
}
