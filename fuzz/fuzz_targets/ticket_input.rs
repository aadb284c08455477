//! Untrusted strings that reach the ticket rules: ticket ids / scenes and `next` targets.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/server/rules.rs"]
mod rules;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    if rules::is_plausible_ticket_id(input) {
        // Every id we could have issued is a valid WeChat scene.
        assert!(rules::is_valid_scene(input));
        assert!(input.len() <= rules::MAX_TICKET_LEN);
    }
    if let Some(next) = rules::validate_next(input) {
        // Accepted targets are same-site paths: "/" then not "/" or "\".
        assert!(next.starts_with('/'));
        assert!(!next.starts_with("//") && !next.starts_with("/\\"));
        assert!(!next.chars().any(|c| c.is_control()));
    }
    let _ = rules::mask_openid(input);
    let _ = rules::describe_browser(input);
});
