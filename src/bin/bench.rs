//! `scripts/bench`: N concurrent complete logins against one demo server, beside a bare
//! axum baseline from the same run. Usage: `bench [LOGINS] [EMPTY_POSTGRES_URL]`
//! (default 1000 logins on a temporary SQLite file).

use scanlogin::server::loadgen;
use std::time::Duration;

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let dir = tempfile_dir();
    let postgres = std::env::args().nth(2);
    let (database_url, database) = match &postgres {
        Some(url) => (url.clone(), "PostgreSQL"),
        None => (format!("sqlite://{}/bench.db", dir.display()), "SQLite"),
    };
    let deadline = Duration::from_secs(300);
    // BENCH_ONLY=waiters measures only the memory of waiting browsers (for quick iterations).
    if std::env::var("BENCH_ONLY").is_ok_and(|v| v == "waiters") {
        waiters(&dir).await;
        return;
    }
    let base = match loadgen::run_baseline(n, deadline).await {
        Ok(f) => f,
        Err(e) => fail(&format!("baseline: {e}")),
    };
    let (ours, verdict) = match loadgen::run_scanlogin(n, &database_url, deadline).await {
        Ok(r) => r,
        Err(e) => fail(&e),
    };
    print!("{}", loadgen::report(n, database, &ours, &base, &verdict));
    let verify_db = match &postgres {
        Some(url) => url.clone(),
        None => format!("sqlite://{}/verify.db", dir.display()),
    };
    match loadgen::run_verify(&verify_db, 20 * n, 64).await {
        Ok((ours, base)) => print!("{}", loadgen::report_verify(&ours, &base)),
        Err(e) => fail(&format!("forward-auth: {e}")),
    }
    let pool_dbs = [format!("sqlite://{}/pool.db", dir.display()), format!("sqlite://{}/direct.db", dir.display())];
    match loadgen::run_pool([&pool_dbs[0], &pool_dbs[1]], 32, 500).await {
        Ok((pooled, direct)) => print!("{}", loadgen::report_pool(32, 500, &pooled, &direct)),
        Err(e) => fail(&format!("pool: {e}")),
    }
    if let Some(url) = &postgres {
        match loadgen::limit_cost(url, 2000).await {
            Ok((local, shared)) => print!(
                "\nrate-limit check, one after another: {local:.2} µs in this process, {shared:.1} µs counted in PostgreSQL for the fleet\n"
            ),
            Err(e) => fail(&format!("limits: {e}")),
        }
    }
    waiters(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    for problem in verdict.lost.iter().chain(&verdict.cross_bound).take(10) {
        eprintln!("  {problem}");
    }
    if !verdict.lost.is_empty() || !verdict.cross_bound.is_empty() {
        std::process::exit(1);
    }
}

/// Memory of waiting browsers, measured on the release server binary beside this one.
async fn waiters(dir: &std::path::Path) {
    let waiters: usize = std::env::var("BENCH_WAITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let server = std::env::current_exe().map(|p| p.with_file_name("scanlogin")).unwrap_or_default();
    if server.exists() {
        match loadgen::run_waiters(&server, dir, waiters, &[]).await {
            Ok(m) => print!("{}", loadgen::report_waiters(&m)),
            Err(e) => fail(&format!("waiters: {e}")),
        }
    } else {
        println!("\n(memory of waiting browsers: skipped, {} not built)", server.display());
    }
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("scanlogin-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())));
    dir
}

fn fail(msg: &str) -> ! {
    eprintln!("bench failed: {msg}");
    std::process::exit(1);
}
