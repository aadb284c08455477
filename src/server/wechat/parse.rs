//! Parsers for WeChat's answers, on raw bytes: errors arrive as HTTP 200 JSON with
//! any content type, and image endpoints answer either an image or JSON, so the body
//! is sniffed, never trusted by its headers.

use serde::de::DeserializeOwned;

/// What went wrong talking to WeChat.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WechatError {
    /// WeChat answered an `errcode`.
    #[error("wechat errcode {errcode}: {errmsg}")]
    Api {
        errcode: i64,
        /// WeChat's message (no secrets in it).
        errmsg: String,
    },
    /// A non-2xx HTTP status.
    #[error("wechat http status {0}")]
    Http(u16),
    /// No answer: connection refused, timeout (the message carries no URL).
    #[error("wechat transport: {0}")]
    Transport(String),
    /// An answer we cannot read.
    #[error("wechat malformed answer: {0}")]
    Malformed(String),
}

impl WechatError {
    /// The errcode, when WeChat sent one.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            WechatError::Api { errcode, .. } => Some(*errcode),
            _ => None,
        }
    }

    /// True for the codes that mean the access token is no good (40001/40014/42001).
    pub fn is_token_error(&self) -> bool {
        matches!(self.errcode(), Some(40001 | 40014 | 42001))
    }
}

/// Parses a JSON answer: an `errcode` other than 0 is an error whatever the HTTP
/// status or content type said.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, WechatError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| WechatError::Malformed(format!("not JSON: {e}")))?;
    if !value.is_object() {
        return Err(WechatError::Malformed("JSON is not an object".into()));
    }
    if let Some(err) = api_error(&value) {
        return Err(err);
    }
    serde_json::from_value(value).map_err(|e| WechatError::Malformed(format!("unexpected shape: {e}")))
}

fn api_error(value: &serde_json::Value) -> Option<WechatError> {
    let errcode = value.get("errcode")?.as_i64().unwrap_or(-1);
    (errcode != 0).then(|| WechatError::Api {
        errcode,
        errmsg: value.get("errmsg").and_then(|m| m.as_str()).unwrap_or("").chars().take(200).collect(),
    })
}

/// The image formats WeChat sends codes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// `is_hyaline: true`.
    Png,
    /// The default.
    Jpeg,
}

impl ImageKind {
    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            ImageKind::Png => "image/png",
            ImageKind::Jpeg => "image/jpeg",
        }
    }
}

/// Decides what an image endpoint answered by sniffing the first bytes.
pub fn parse_image(body: &[u8]) -> Result<ImageKind, WechatError> {
    if body.starts_with(&[0x89, b'P', b'N', b'G']) {
        return Ok(ImageKind::Png);
    }
    if body.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(ImageKind::Jpeg);
    }
    let trimmed = body.trim_ascii_start();
    if trimmed.starts_with(b"{") {
        let value: serde_json::Value =
            serde_json::from_slice(trimmed).map_err(|_| WechatError::Malformed("truncated JSON where an image was expected".into()))?;
        return Err(api_error(&value).unwrap_or_else(|| WechatError::Malformed("JSON without errcode where an image was expected".into())));
    }
    Err(WechatError::Malformed(format!("neither an image nor JSON ({} bytes)", body.len())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct Tok {
        access_token: String,
        expires_in: u64,
    }

    #[test]
    fn success_json_with_odd_content_and_errcode_zero() {
        let t: Tok = parse_json(br#"{"access_token":"ACCESS","expires_in":7200}"#).unwrap();
        assert_eq!((t.access_token.as_str(), t.expires_in), ("ACCESS", 7200));
        let t: Tok = parse_json(br#"{"errcode":0,"errmsg":"ok","access_token":"A","expires_in":7000}"#).unwrap();
        assert_eq!(t.expires_in, 7000);
    }

    #[test]
    fn errors_arrive_as_http_200_json() {
        let e = parse_json::<Tok>(br#"{"errcode":40013,"errmsg":"invalid appid rid: 6543-21"}"#).unwrap_err();
        assert_eq!(e.errcode(), Some(40013));
        let e = parse_json::<Tok>(br#"{"errcode":-1,"errmsg":"system error"}"#).unwrap_err();
        assert_eq!(e.errcode(), Some(-1));
        assert!(parse_json::<Tok>(br#"{"errcode":42001,"errmsg":"access_token expired"}"#).unwrap_err().is_token_error());
    }

    #[test]
    fn garbage_and_wrong_shapes_are_malformed() {
        for body in [&b"<html>502 Bad Gateway</html>"[..], b"", b"[1,2]", br#"{"access_token":1}"#, b"\xff\xfe"] {
            assert!(matches!(parse_json::<Tok>(body), Err(WechatError::Malformed(_))), "{body:?}");
        }
    }

    #[test]
    fn images_are_sniffed_not_trusted() {
        let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0];
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F'];
        assert_eq!(parse_image(&png), Ok(ImageKind::Png));
        assert_eq!(parse_image(&jpeg), Ok(ImageKind::Jpeg));
        assert_eq!(ImageKind::Jpeg.mime(), "image/jpeg");
        let e = parse_image(b"  {\"errcode\":41030,\"errmsg\":\"invalid page rid: x\"}").unwrap_err();
        assert_eq!(e.errcode(), Some(41030));
        assert!(matches!(parse_image(br#"{"errcode":0}"#), Err(WechatError::Malformed(_))));
        assert!(matches!(parse_image(b"{\"errc"), Err(WechatError::Malformed(_))));
        assert!(matches!(parse_image(b"GIF89a...."), Err(WechatError::Malformed(_))));
    }
}

#[cfg(all(test, feature = "test-support"))]
mod properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(serde::Deserialize)]
    struct Anything {}

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever bytes WeChat (or a broken proxy) sends, the parsers answer, never panic.
        #[test]
        fn parsers_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_image(&body);
            let _ = parse_json::<Anything>(&body);
        }

        /// Bytes that start like an image are that image, whatever follows.
        #[test]
        fn image_magic_wins(tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut png = vec![0x89, b'P', b'N', b'G'];
            png.extend(&tail);
            prop_assert_eq!(parse_image(&png), Ok(ImageKind::Png));
            let mut jpeg = vec![0xFF, 0xD8, 0xFF];
            jpeg.extend(&tail);
            prop_assert_eq!(parse_image(&jpeg), Ok(ImageKind::Jpeg));
        }

        /// Any non-zero errcode in JSON is an error, for images and JSON alike, with any
        /// surrounding fields.
        #[test]
        fn nonzero_errcode_is_always_an_error(code in any::<i64>().prop_filter("non-zero", |c| *c != 0), msg in ".{0,40}", extra in "[a-z_]{1,10}") {
            let body = serde_json::json!({ "errcode": code, "errmsg": msg, extra: 1 }).to_string();
            prop_assert_eq!(parse_image(body.as_bytes()).unwrap_err().errcode(), Some(code));
            prop_assert_eq!(parse_json::<Anything>(body.as_bytes()).err().and_then(|e| e.errcode()), Some(code));
        }
    }
}
