//! The claims about a person, built once from the scopes granted, for both the ID token
//! and userinfo: `sub` always; `name` only with `profile`; `groups` only with `groups`.

use crate::server::users::User;
use openidconnect::core::{CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreTokenType};
use openidconnect::{AdditionalClaims, EmptyExtraTokenFields, EndUserName, LocalizedClaim, StandardClaims, SubjectIdentifier};
use serde::{Deserialize, Serialize};

/// The scopes the provider knows; discovery lists them.
pub const SCOPES: [&str; 4] = ["openid", "profile", "email", "groups"];

/// The claims discovery lists as supported.
pub const CLAIMS: [&str; 13] =
    ["sub", "name", "picture", "email", "email_verified", "groups", "auth_time", "nonce", "amr", "iss", "aud", "exp", "iat"];

/// Our claims beyond the standard ones: the person's groups (scope `groups`), which apps
/// map to roles (Grafana's `role_attribute_path`, Gitea's `group_claim_name`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupsClaim {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
}
impl AdditionalClaims for GroupsClaim {}

/// The ID token with our claims.
pub type IdToken = openidconnect::IdToken<GroupsClaim, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;
/// Its claims.
pub type IdTokenClaims = openidconnect::IdTokenClaims<GroupsClaim, CoreGenderClaim>;
/// The token endpoint's answer carrying it.
pub type TokenResponse = openidconnect::StandardTokenResponse<
    openidconnect::IdTokenFields<
        GroupsClaim,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;
/// Userinfo's claims.
pub type UserInfoClaims = openidconnect::UserInfoClaims<GroupsClaim, CoreGenderClaim>;

/// `user`'s groups under `scope`.
pub fn groups_claim(user: &User, scope: &str) -> GroupsClaim {
    let granted = scope.split(' ').any(|s| s == "groups");
    GroupsClaim { groups: granted.then(|| user.groups.iter().map(|g| g.as_str().to_string()).collect()) }
}

/// The subject `client` knows `user` by: pairwise (OIDC Core §8.1), the HMAC-SHA256 of the
/// client and the user under the server's own key, so no two clients can join their
/// users by `sub`, and nobody can count users or guess one from another; or the user id
/// for a client configured with `legacy_subject`.
pub fn subject(user: &User, client: &str, legacy: bool, key: &[u8]) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    if legacy {
        return user.id.to_string();
    }
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(key) else { return user.id.to_string() };
    mac.update(format!("sub\0{client}\0{}", user.id).as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..18])
}

/// What `user` discloses as `sub` under `scope` (space-separated, as granted): `name` and,
/// once they set an avatar, `picture` (an absolute URL under `public_url`) with `profile`;
/// their verified address as `email` with `email_verified: true` under `email` (an
/// unverified address is never kept, so never sent).
pub fn standard_claims(user: &User, sub: String, scope: &str, public_url: &str) -> StandardClaims<CoreGenderClaim> {
    let granted = |name: &str| scope.split(' ').any(|s| s == name);
    let mut claims = StandardClaims::new(SubjectIdentifier::new(sub));
    if granted("email")
        && let Some(email) = &user.email
    {
        claims = claims.set_email(Some(openidconnect::EndUserEmail::new(email.clone()))).set_email_verified(Some(true));
    }
    if !granted("profile") {
        return claims;
    }
    let mut name = LocalizedClaim::new();
    name.insert(None, EndUserName::new(user.name.clone()));
    let picture = user.picture(public_url).map(|p| {
        let mut c = LocalizedClaim::new();
        c.insert(None, openidconnect::EndUserPictureUrl::new(p));
        c
    });
    claims.set_name(Some(name)).set_picture(picture)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UnixMillis;

    #[test]
    fn the_name_is_disclosed_only_under_the_profile_scope() {
        let who = crate::server::wechat::WxIdentity { openid: "o".into(), unionid: None };
        let user = User::new(crate::domain::UserId(7), &who, "张三".into(), UnixMillis(0), crate::domain::UserStatus::Active);
        let bare = standard_claims(&user, "7".into(), "openid", "https://x");
        assert_eq!(bare.subject().as_str(), "7");
        assert!(bare.name().is_none());
        let profile = standard_claims(&user, "7".into(), "openid profile", "https://x");
        assert_eq!(profile.name().and_then(|n| n.get(None)).map(|n| n.as_str()), Some("张三"));
        assert!(standard_claims(&user, "7".into(), "openid profiles", "https://x").name().is_none(), "whole words only");
        assert!(profile.picture().is_none(), "no avatar, no picture");
        let mut pictured = user.clone();
        pictured.avatar_id = Some("ab".repeat(32));
        let url = standard_claims(&pictured, "7".into(), "openid profile", "https://login.example.com")
            .picture()
            .and_then(|p| p.get(None))
            .map(|p| p.as_str().to_string());
        assert_eq!(url, Some(format!("https://login.example.com/avatars/{}.png", "ab".repeat(32))));
        assert!(standard_claims(&pictured, "7".into(), "openid", "https://x").picture().is_none(), "only with profile");
        let mut ops = user.clone();
        ops.groups = vec![crate::domain::GroupName::try_from("ops").unwrap()];
        assert_eq!(groups_claim(&ops, "openid").groups, None);
        assert_eq!(groups_claim(&ops, "openid groups").groups, Some(vec!["ops".to_string()]));
        assert_eq!(groups_claim(&user, "openid groups").groups, Some(vec![]), "granted and empty: an empty list");
        let mut mailed = user.clone();
        assert!(standard_claims(&mailed, "7".into(), "openid email", "https://x").email().is_none(), "no address, no claim");
        mailed.email = Some("zhangsan@example.com".into());
        let c = standard_claims(&mailed, "7".into(), "openid email", "https://x");
        assert_eq!((c.email().map(|e| e.as_str()), c.email_verified()), (Some("zhangsan@example.com"), Some(true)));
        assert!(standard_claims(&mailed, "7".into(), "openid profile", "https://x").email().is_none(), "only under email");
    }

    #[test]
    fn subjects_are_pairwise_and_opaque() {
        let who = crate::server::wechat::WxIdentity { openid: "o".into(), unionid: None };
        let (a, b) = (
            User::new(crate::domain::UserId(7), &who, "x".into(), UnixMillis(0), crate::domain::UserStatus::Active),
            User::new(crate::domain::UserId(8), &who, "y".into(), UnixMillis(0), crate::domain::UserStatus::Active),
        );
        let key = [9u8; 32];
        let s = subject(&a, "grafana", false, &key);
        assert_eq!(s.len(), 24);
        assert_eq!(s, subject(&a, "grafana", false, &key), "stable");
        assert_ne!(s, subject(&a, "gitea", false, &key), "per client");
        assert_ne!(s, subject(&b, "grafana", false, &key), "per user");
        assert_ne!(s, subject(&a, "grafana", false, &[1u8; 32]), "per server key");
        assert_ne!(s, "7", "not the id");
        assert_eq!(subject(&a, "grafana", true, &key), "7", "legacy_subject keeps the id");
    }
}
