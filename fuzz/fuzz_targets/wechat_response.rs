//! WeChat's answers as raw bytes: the image-vs-JSON sniffing and the error-JSON parser
//! must answer every input without panicking, and agree with each other.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/server/wechat/parse.rs"]
mod parse;

use libfuzzer_sys::fuzz_target;

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Token {
    access_token: String,
    expires_in: u64,
}

fuzz_target!(|body: &[u8]| {
    let image = parse::parse_image(body);
    let json = parse::parse_json::<Token>(body);
    // An image is never also a successful JSON answer.
    if image.is_ok() {
        assert!(json.is_err());
    }
    // An errcode found in an image answer is the one the JSON parser finds.
    if let Err(e) = &image {
        if let Some(code) = e.errcode() {
            if body.first() == Some(&b'{') {
                assert_eq!(json.err().and_then(|j| j.errcode()), Some(code));
            }
        }
    }
});
