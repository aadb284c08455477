//! The server: configuration → startup → serve.

use leptos::config::LeptosOptions;
use scanlogin::server::config::{Config, LogFormat};
use scanlogin::server::startup::Application;

#[tokio::main]
async fn main() {
    #[cfg(feature = "demo")]
    if std::env::args().nth(1).as_deref() == Some("simulator") {
        return simulator().await;
    }
    if std::env::args().nth(1).as_deref() == Some("admin") {
        return admin().await;
    }
    if std::env::args().nth(1).as_deref() == Some("check-config") {
        return check_config();
    }
    let config = Config::from_env();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,tower_http=warn,sqlx=warn".into());
    match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
        // One object per line; a request's lines carry its spans, the outermost naming
        // method, path and request id.
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_env_filter(filter)
            .init(),
    }
    if let Err(e) = config.validate() {
        eprintln!("scanlogin: invalid configuration: {e}");
        std::process::exit(2);
    }
    // cargo-leptos passes LEPTOS_* variables; a bare binary falls back to the defaults.
    let leptos = match leptos::config::get_configuration(None) {
        Ok(conf) if !conf.leptos_options.output_name.is_empty() => conf.leptos_options,
        _ => LeptosOptions::builder().output_name("scanlogin").build(),
    };
    let app = match Application::build(&config, leptos).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("scanlogin: cannot start: {e}");
            // A configuration mistake (a rule file's line, a bad setting) is exit code 2.
            let code = if matches!(e, scanlogin::server::error::StartupError::Config(_)) { 2 } else { 1 };
            std::process::exit(code);
        }
    };
    let mode = if app.state().site.demo { "demo mode (embedded WeChat simulator)" } else { "WeChat mode" };
    tracing::info!("scanlogin listening on http://{} — {mode}; open {}/login", app.local_addr(), app.public_url());
    // SIGTERM is what systemd, Docker and Kubernetes send; Ctrl-C for people.
    let shutdown = async {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("scanlogin: cannot watch SIGTERM: {e}");
                std::process::exit(1);
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    if let Err(e) = app.run_until(shutdown).await {
        eprintln!("scanlogin: server error: {e}");
        std::process::exit(1);
    }
}

/// `scanlogin admin setup-link`: prints a fresh one-time link (its last line) that makes
/// whoever signs in through it an administrator. Reads the same settings as the server
/// (DATABASE_URL, PUBLIC_URL) from the environment.
async fn admin() {
    use clap::Parser as _;
    let args: Vec<String> = std::env::args().skip(2).collect();
    if args.first().map(String::as_str) != Some("setup-link") || args.len() > 1 {
        eprintln!("usage: scanlogin admin setup-link   (DATABASE_URL and PUBLIC_URL from the environment)");
        std::process::exit(2);
    }
    let config = match Config::try_parse_from(["scanlogin"]) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("scanlogin: invalid configuration: {e}");
            std::process::exit(2);
        }
    };
    match scanlogin::server::people::setup_link_command(&config).await {
        Ok(url) => {
            println!("Open this link and sign in by scanning to become an administrator (once, within a day):");
            println!("{url}");
        }
        Err(e) => {
            eprintln!("scanlogin: {e}");
            std::process::exit(1);
        }
    }
}

/// `scanlogin check-config`: reads the settings, `OIDC_CLIENTS` and `ACCESS_RULES` as the
/// server would and prints what each client and host admits; exit code 2 on a mistake.
fn check_config() {
    use clap::Parser as _;
    let report = Config::try_parse_from(["scanlogin"])
        .map_err(|e| e.to_string())
        .and_then(|c| c.validate().map_err(|e| e.to_string()).map(|()| c))
        .and_then(|c| scanlogin::server::startup::describe_access(&c));
    match report {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
        }
        Err(e) => {
            eprintln!("scanlogin: invalid configuration: {e}");
            std::process::exit(2);
        }
    }
}

/// `scanlogin simulator`: the WeChat simulator alone (see `simulator::standalone`).
#[cfg(feature = "demo")]
async fn simulator() {
    use clap::Parser as _;
    use scanlogin::server::simulator::standalone::{SimulatorArgs, serve};
    let args = SimulatorArgs::parse_from(std::env::args().skip(1));
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let site = args.site.clone();
    let served = serve(args, |addr| {
        tracing::info!("WeChat simulator listening on http://{addr}; its phone calls go to {site}");
        tracing::info!("point scanlogin at it: WECHAT_API_BASE=http://{addr}/_wechat");
    })
    .await;
    if let Err(e) = served {
        eprintln!("scanlogin simulator: {e}");
        std::process::exit(1);
    }
}
