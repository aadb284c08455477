//! The shell, the router and the page frame (demo banner, language switch).

use crate::i18n::{Lang, Ui};
use crate::pages::{account::AccountPage, login::LoginPage};
use leptos::prelude::*;
use leptos_meta::{HashedStylesheet, MetaTags, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::hooks::use_location;
use leptos_router::{SsrMode, path};

/// The language and mode a page renders in. The server decides (cookie /
/// Accept-Language, configuration) and writes both onto `<html>`, where the browser
/// reads them back, so hydration renders the same text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageEnv {
    /// UI language.
    pub lang: Lang,
    /// Demo mode (shows the banner).
    pub demo: bool,
    /// What the page is shown on, by its user agent.
    pub device: Device,
}

/// What a page is shown on: the login page leads with 「在微信中打开」 on a phone, whose
/// camera cannot scan its own screen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Device {
    #[default]
    Desktop,
    /// A phone's browser.
    Phone,
    /// WeChat's own browser (its user agent says MicroMessenger).
    WeChat,
}

impl Device {
    /// From a `User-Agent` header.
    pub fn from_user_agent(ua: &str) -> Device {
        if ua.contains("MicroMessenger") {
            Device::WeChat
        } else if ["Mobile", "Android", "iPhone", "iPad"].iter().any(|m| ua.contains(m)) {
            Device::Phone
        } else {
            Device::Desktop
        }
    }

    /// `<html data-device>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Desktop => "desktop",
            Device::Phone => "phone",
            Device::WeChat => "wechat",
        }
    }

    /// From `<html data-device>` (in the browser).
    pub fn from_attr(s: &str) -> Device {
        match s {
            "phone" => Device::Phone,
            "wechat" => Device::WeChat,
            _ => Device::Desktop,
        }
    }
}

/// The page environment of this render.
pub fn page_env() -> PageEnv {
    #[cfg(feature = "ssr")]
    {
        crate::server::http::pages::page_env()
    }
    #[cfg(not(feature = "ssr"))]
    {
        let root = web_sys::window().and_then(|w| w.document()).and_then(|d| d.document_element());
        let attr = |name: &str| root.as_ref().and_then(|r| r.get_attribute(name));
        PageEnv {
            lang: attr("lang").and_then(|l| Lang::from_tag(&l)).unwrap_or_default(),
            demo: attr("data-demo").as_deref() == Some("1"),
            device: Device::from_attr(&attr("data-device").unwrap_or_default()),
        }
    }
}

/// The page environment: from the context while the server renders, else (inside an
/// island, in the browser) read back from `<html>`.
pub fn use_page_env() -> PageEnv {
    use_context::<PageEnv>().unwrap_or_else(page_env)
}

/// The UI text table of the current page.
pub fn use_ui() -> &'static Ui {
    use_page_env().lang.ui()
}

/// The HTML document around the app (server only).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let env = page_env();
    #[cfg(feature = "ssr")]
    crate::server::http::pages::set_page_csp();
    view! {
        <!DOCTYPE html>
        <html lang=env.lang.tag() data-demo=if env.demo { "1" } else { "0" } data-device=env.device.as_str()>
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <AutoReload options=options.clone() />
                // Named as built: `scanlogin.<hash>.css` in release builds (immutable caching).
                <HashedStylesheet options=options.clone() id="leptos" />
                <HydrationScripts options islands=true />
                // Without JavaScript, the login page's form (hidden otherwise) is the way on.
                <noscript><link rel="stylesheet" href="/nojs.css" /></noscript>
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The application.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let env = page_env();
    provide_context(env);
    let ui = env.lang.ui();
    view! {
        <Title text=ui.app_name />
        <Router>
            <Frame env />
            <main class="page">
                <Routes fallback=move || view! { <NotFound /> }>
                    // Async: the page waits for its first ticket, so the QR is in the first
                    // HTML, and the session cookie that binds the ticket is still sendable.
                    <Route path=path!("/login") view=LoginPage ssr=SsrMode::Async />
                    // Async too: the whole page in the first HTML, so it reads without
                    // JavaScript (streamed parts would need a script to appear).
                    <Route path=path!("/account") view=AccountPage ssr=SsrMode::Async />
                    <Route path=path!("/admin") view=crate::pages::admin::AdminPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/audit") view=crate::pages::admin::AuditPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/invitations") view=crate::pages::admin::InvitationsPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/sessions") view=crate::pages::admin::SessionsPage ssr=SsrMode::Async />
                </Routes>
            </main>
        </Router>
    }
}

/// Percent-encodes a path for a query parameter.
fn encode_component(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The banner (demo mode) and the header with the language switch.
#[component]
fn Frame(env: PageEnv) -> impl IntoView {
    let ui = env.lang.ui();
    let other = env.lang.other();
    let location = use_location();
    let switch_href = move || {
        // `search` comes with its `?` in the browser and without it on the server.
        let search = location.search.get();
        let back = match search.trim_start_matches('?') {
            "" => location.pathname.get(),
            query => format!("{}?{query}", location.pathname.get()),
        };
        format!("/lang?set={}&back={}", other.tag(), encode_component(&back))
    };
    view! {
        {env.demo.then(|| view! { <div class="demo-banner" role="note" data-testid="demo-banner">{ui.demo_banner}</div> })}
        <header class="topbar">
            <a class="brand" href="/" rel="external">{ui.app_name}</a>
            <a class="lang-switch" href=switch_href rel="external nofollow">{other.ui().lang_name}</a>
        </header>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    let ui = use_ui();
    #[cfg(feature = "ssr")]
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <section class="card">
            <h1>{ui.not_found}</h1>
            <a class="button" href="/" rel="external">{ui.home}</a>
        </section>
    }
}
