//! Untrusted strings that reach the ticket rules: ticket ids / scenes, `next` targets,
//! and the text shown about a requester.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/domain.rs"]
mod domain;

#[allow(dead_code)]
#[path = "../../src/server/display.rs"]
mod display;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    if domain::TicketId::try_from(input).is_ok() {
        // Every id we could have issued is a valid WeChat scene.
        const EXTRA: &[u8] = b"!#$&'()*+,/:;=?@-._~";
        assert!(input.len() <= domain::MAX_TICKET_LEN);
        assert!(input.bytes().all(|b| b.is_ascii_alphanumeric() || EXTRA.contains(&b)));
    }
    if let Ok(next) = domain::NextPath::try_from(input) {
        // Accepted targets are same-site paths: "/" then not "/" or "\".
        let next = next.as_str();
        assert!(next.starts_with('/'));
        assert!(!next.starts_with("//") && !next.starts_with("/\\"));
        assert!(!next.chars().any(|c| c.is_control()));
    }
    let _ = display::mask_openid(input);
    let _ = display::describe_browser(input);
});
