//! `scanlogin simulator`: the WeChat simulator as a server of its own, so that several
//! scanlogin instances in real mode (credentials set, `WECHAT_API_BASE` pointing here)
//! share one simulated WeChat — for tests, and for anyone integrating without a WeChat
//! account. Its codes link to its own simulated phone page, whose mini-program calls it
//! forwards to `--site` (the scanlogin instance, or the proxy in front of several), as the
//! real mini program would call the site.

use super::{SimConfig, Simulator};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The subcommand's settings.
#[derive(clap::Parser, Debug)]
#[command(name = "scanlogin simulator", about = "The WeChat API simulator as a standalone server (for tests and integrators).")]
pub struct SimulatorArgs {
    /// Address to listen on.
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:3300")]
    pub listen: SocketAddr,
    /// The mini program's appid the simulator knows.
    #[arg(long = "appid", env = "WECHAT_APPID", default_value = "wxdemo0000000000")]
    pub appid: String,
    /// That app's secret (prefer --secret-file).
    #[arg(long = "secret", env = "WECHAT_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// A file holding the secret.
    #[arg(long = "secret-file", env = "WECHAT_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// Where the simulated phone's mini-program calls go: the scanlogin site.
    #[arg(long = "site", env = "SITE_URL")]
    pub site: url::Url,
    /// This simulator's public URL, for the links in its codes [default: http://<listen address>].
    #[arg(long = "public-url", env = "PUBLIC_URL")]
    pub public_url: Option<url::Url>,
    /// The mini program's login page, as released.
    #[arg(long = "mp-page", env = "WECHAT_MP_PAGE", default_value = "pages/login/index")]
    pub mp_page: String,
}

#[derive(Clone)]
struct Forward {
    client: reqwest::Client,
    site: String,
}

/// Serves until the process ends; `on_listen` hears the bound address.
pub async fn serve(args: SimulatorArgs, on_listen: impl FnOnce(SocketAddr)) -> Result<(), String> {
    let secret = match (&args.secret, &args.secret_file) {
        (Some(s), _) => s.clone(),
        (None, Some(f)) => std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?.trim().to_string(),
        (None, None) => return Err("the simulator needs the app's secret: --secret-file or WECHAT_SECRET".into()),
    };
    let listener = crate::server::startup::listen(args.listen).map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let public_url = args.public_url.map(|u| u.as_str().trim_end_matches('/').to_string()).unwrap_or_else(|| format!("http://{addr}"));
    let sim = Simulator::new(SimConfig { appid: args.appid, secret, public_url, released_pages: vec![args.mp_page] });
    let forward = Forward {
        client: reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build().map_err(|e| e.to_string())?,
        site: args.site.as_str().trim_end_matches('/').to_string(),
    };
    let app = axum::Router::new()
        .route("/api/mp/{call}", axum::routing::post(forward_call))
        .with_state(forward)
        .nest("/_wechat", super::router(sim))
        .layer(axum::extract::DefaultBodyLimit::max(crate::server::http::api::MAX_BODY));
    on_listen(addr);
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}

/// The simulated phone's `POST /api/mp/{call}`, passed on to the site.
async fn forward_call(State(f): State<Forward>, Path(call): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    if !matches!(call.as_str(), "scan" | "confirm" | "cancel") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut req = f.client.post(format!("{}/api/mp/{call}", f.site)).body(body);
    for name in [header::CONTENT_TYPE, header::ACCEPT, header::ACCEPT_LANGUAGE] {
        if let Some(v) = headers.get(&name) {
            req = req.header(name, v);
        }
    }
    match req.send().await {
        Ok(res) => {
            let status = res.status();
            let kind = res.headers().get(header::CONTENT_TYPE).cloned();
            let body = res.bytes().await.unwrap_or_default();
            let mut out = (status, body).into_response();
            if let Some(k) = kind {
                out.headers_mut().insert(header::CONTENT_TYPE, k);
            }
            out
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("the site did not answer: {}", e.without_url())).into_response(),
    }
}
