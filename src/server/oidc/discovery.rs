//! `/.well-known/openid-configuration`: what the provider offers, from the same
//! constants the handlers use.

use super::claims::{CLAIMS, SCOPES};
use openidconnect::core::{
    CoreClaimName, CoreClientAuthMethod, CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthUrl, EndSessionUrl, IssuerUrl, JsonWebKeySetUrl, ProviderMetadata, ResponseTypes, Scope, TokenUrl,
    UserInfoUrl,
};
use serde::{Deserialize, Serialize};

/// Discovery's extra fields: RP-initiated logout, PKCE methods, `iss` in authorization
/// responses (RFC 9207), and no request objects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraMetadata {
    end_session_endpoint: EndSessionUrl,
    code_challenge_methods_supported: Vec<String>,
    authorization_response_iss_parameter_supported: bool,
    request_parameter_supported: bool,
    request_uri_parameter_supported: bool,
    revocation_endpoint: String,
    revocation_endpoint_auth_methods_supported: Vec<String>,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

/// The provider's metadata document.
pub type Metadata = ProviderMetadata<
    ExtraMetadata,
    openidconnect::core::CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    openidconnect::core::CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The metadata of the provider at `issuer`.
pub fn metadata(issuer: &str) -> Result<Metadata, url::ParseError> {
    let at = |path: &str| format!("{issuer}{path}");
    let extra = ExtraMetadata {
        end_session_endpoint: EndSessionUrl::new(at("/oidc/logout"))?,
        code_challenge_methods_supported: vec!["S256".into()],
        authorization_response_iss_parameter_supported: true,
        request_parameter_supported: false,
        request_uri_parameter_supported: false,
        revocation_endpoint: at("/oidc/revoke"),
        revocation_endpoint_auth_methods_supported: vec!["client_secret_basic".into(), "client_secret_post".into(), "none".into()],
    };
    Ok(Metadata::new(
        IssuerUrl::new(issuer.to_string())?,
        AuthUrl::new(at("/oidc/authorize"))?,
        JsonWebKeySetUrl::new(at("/oidc/jwks"))?,
        vec![ResponseTypes::new(vec![CoreResponseType::Code])],
        vec![CoreSubjectIdentifierType::Public],
        vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
        extra,
    )
    .set_token_endpoint(Some(TokenUrl::new(at("/oidc/token"))?))
    .set_userinfo_endpoint(Some(UserInfoUrl::new(at("/oidc/userinfo"))?))
    .set_scopes_supported(Some(SCOPES.iter().map(|s| Scope::new(s.to_string())).collect()))
    .set_response_modes_supported(Some(vec![CoreResponseMode::Query]))
    .set_grant_types_supported(Some(vec![CoreGrantType::AuthorizationCode]))
    .set_token_endpoint_auth_methods_supported(Some(vec![
        CoreClientAuthMethod::ClientSecretBasic,
        CoreClientAuthMethod::ClientSecretPost,
        CoreClientAuthMethod::None,
    ]))
    .set_claims_supported(Some(CLAIMS.iter().map(|c| CoreClaimName::new(c.to_string())).collect())))
}
