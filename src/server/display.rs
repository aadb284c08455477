//! How stored facts are shown to people: masked openids, short browser names.

/// Masks an openid for display: `oAbc…xyz9`.
pub fn mask_openid(openid: &str) -> String {
    let chars: Vec<char> = openid.chars().collect();
    if chars.len() <= 8 {
        return "…".to_string();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// A short description of a user agent: "Chrome 131 · Windows".
pub fn describe_browser(user_agent: &str) -> String {
    match woothee::parser::Parser::new().parse(user_agent) {
        Some(r) if r.name != "UNKNOWN" => {
            let major = r.version.split('.').next().unwrap_or("");
            let name = if major.is_empty() || major == "UNKNOWN" { r.name.to_string() } else { format!("{} {}", r.name, major) };
            if r.os == "UNKNOWN" { name } else { format!("{name} · {}", r.os) }
        }
        _ => {
            let short: String = user_agent.chars().take(40).collect();
            if short.is_empty() { "unknown".to_string() } else { short }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking() {
        assert_eq!(mask_openid("oAbcdefghijklmnxyz9"), "oAbc…xyz9");
        assert_eq!(mask_openid("short"), "…");
    }

    #[test]
    fn browser_descriptions() {
        let ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        assert_eq!(describe_browser(ua), "Chrome 131 · Windows 10");
        assert_eq!(describe_browser(""), "unknown");
    }
}
