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

/// A short description of a user agent ("Chrome 131 · Windows 10"), made only of what
/// a known-browser parser recognised; `None` for anything else. Never the raw text: the
/// phone's confirm screen shows this, and a User-Agent such as "请放心点击登录" must not
/// reach it.
pub fn describe_browser(user_agent: &str) -> Option<String> {
    let r = woothee::parser::Parser::new().parse(user_agent)?;
    if r.name == "UNKNOWN" || r.category == "UNKNOWN" {
        return None;
    }
    let major = r.version.split('.').next().unwrap_or("");
    let name = if major.is_empty() || major == "UNKNOWN" { r.name.to_string() } else { format!("{} {}", r.name, major) };
    Some(if r.os == "UNKNOWN" { name } else { format!("{name} · {}", r.os) })
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
        assert_eq!(describe_browser(ua).as_deref(), Some("Chrome 131 · Windows 10"));
        for unknown in ["", "请放心点击登录", "Safe: tap 点击登录 now", "Mozilla/5.0 (please confirm)"] {
            assert_eq!(describe_browser(unknown), None, "{unknown:?}");
        }
    }
}
