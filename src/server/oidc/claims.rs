//! The claims about a person, built once from the scopes granted, for both the ID token
//! and userinfo: `sub` always; `name` only with `profile`.

use crate::server::users::User;
use openidconnect::core::CoreGenderClaim;
use openidconnect::{EndUserName, LocalizedClaim, StandardClaims, SubjectIdentifier};

/// The scopes the provider knows; discovery lists them.
pub const SCOPES: [&str; 2] = ["openid", "profile"];

/// The claims discovery lists as supported.
pub const CLAIMS: [&str; 9] = ["sub", "name", "auth_time", "nonce", "amr", "iss", "aud", "exp", "iat"];

/// What `user` discloses under `scope` (space-separated, as granted).
pub fn standard_claims(user: &User, scope: &str) -> StandardClaims<CoreGenderClaim> {
    let claims = StandardClaims::new(SubjectIdentifier::new(user.id.to_string()));
    if !scope.split(' ').any(|s| s == "profile") {
        return claims;
    }
    let mut name = LocalizedClaim::new();
    name.insert(None, EndUserName::new(user.name.clone()));
    claims.set_name(Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UnixMillis;

    #[test]
    fn the_name_is_disclosed_only_under_the_profile_scope() {
        let who = crate::server::wechat::WxIdentity { openid: "o".into(), unionid: None };
        let user = User::new(7, &who, "张三".into(), UnixMillis(0), crate::domain::UserStatus::Active);
        let bare = standard_claims(&user, "openid");
        assert_eq!(bare.subject().as_str(), "7");
        assert!(bare.name().is_none());
        let profile = standard_claims(&user, "openid profile");
        assert_eq!(profile.name().and_then(|n| n.get(None)).map(|n| n.as_str()), Some("张三"));
        assert!(standard_claims(&user, "openid profiles").name().is_none(), "whole words only");
    }
}
