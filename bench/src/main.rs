//! `scripts/bench`: N concurrent complete logins against one demo server, beside a bare
//! axum baseline and a no-work server answering the same exchanges (the ceiling) from the
//! same run, then forward-auth, the pool of ready codes, the
//! shared rate limits (PostgreSQL) and the memory of waiting browsers. Prints one
//! markdown table (scripts/bench appends the browser and WASM rows to it).
//! Usage: `bench [LOGINS] [EMPTY_POSTGRES_URL]` (default 1000 logins on temporary SQLite
//! files). BENCH_ROUNDS (default 3) login bursts per side, the median reported;
//! BENCH_WAITERS (default 10000); BENCH_ONLY=waiters for the memory rows alone,
//! BENCH_ONLY=logins for the login rows alone, BENCH_ONLY=verify for forward-auth alone, BENCH_ONLY=profile for the login bursts alone (for a profiler),
//! BENCH_ONLY=driver for the app's `Db`, sqlx's
//! `Any` pool under it and the backend's own pool.

use scanlogin_bench::{self as loadgen, Shape, median};
use std::time::Duration;

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let dir = tempfile_dir();
    let postgres = std::env::args().nth(2);
    let env_num = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let rounds = env_num("BENCH_ROUNDS", 3).max(1);
    let waiters = env_num("BENCH_WAITERS", 10_000);
    let mut table = String::from(loadgen::TABLE_HEAD);
    if std::env::var("BENCH_ONLY").is_ok_and(|v| v == "waiters") {
        table += &waiter_rows(&dir, waiters).await;
        print!("\n{table}");
        return;
    }
    let database = if postgres.is_some() { "PostgreSQL" } else { "SQLite" };
    // What the lone writes of a burst took: SQLite's group commits, PostgreSQL's batches.
    let lone_writes_took = if postgres.is_some() { "round trips" } else { "commits" };
    // The given PostgreSQL database, else a SQLite file of this name.
    let db_url = |name: &str| postgres.clone().unwrap_or_else(|| format!("sqlite://{}/{name}.db", dir.display()));
    let driver_db = db_url("driver");
    if std::env::var("BENCH_ONLY").is_ok_and(|v| v == "driver") {
        table += &driver_rows(&driver_db, database).await;
        print!("\n{table}");
        return;
    }
    if std::env::var("BENCH_ONLY").is_ok_and(|v| v == "verify") {
        match loadgen::run_verify(&db_url("verify"), 20 * n, 64).await {
            Ok((ours, base)) => table += &loadgen::rows_verify(&ours, &base),
            Err(e) => fail(&format!("forward-auth: {e}")),
        }
        print!("\n{table}");
        return;
    }
    let deadline = Duration::from_secs(300);
    if std::env::var("BENCH_ONLY").is_ok_and(|v| v == "profile") {
        // The login bursts alone, no baseline: for a profiler attached to this process.
        for round in 0..rounds {
            let (f, v) =
                loadgen::run_scanlogin(n, &db_url(&format!("profile-{round}")), round, deadline).await.unwrap_or_else(|e| fail(&e));
            println!(
                "round {}: scanlogin {:.1} logins/s ({:.2} ms CPU, {:.0} context switches each; {} lone writes in {} {}); lost {}, cross-bound {}",
                round + 1,
                f.rate(),
                f.cpu_ms_per_login(),
                f.switches_per_login(),
                f.group_commit.0,
                f.group_commit.1,
                lone_writes_took,
                v.lost.len(),
                v.cross_bound.len()
            );
        }
        return;
    }
    // Rounds alternate the two sides, so a slow moment of the machine hits both.
    let (mut base, mut shaped, mut ours, mut apart, mut problems) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let server = std::env::current_exe().map(|p| p.with_file_name("scanlogin")).unwrap_or_default();
    for round in 0..rounds {
        base.push(loadgen::run_baseline(n, deadline, Shape::Minimal).await.unwrap_or_else(|e| fail(&format!("baseline: {e}"))));
        shaped.push(loadgen::run_baseline(n, deadline, Shape::Scanlogin).await.unwrap_or_else(|e| fail(&format!("ceiling: {e}"))));
        let url = db_url(&format!("bench-{round}"));
        let (figures, verdict) = loadgen::run_scanlogin(n, &url, round, deadline).await.unwrap_or_else(|e| fail(&e));
        println!(
            "round {}: scanlogin {:.1} logins/s ({:.2} ms CPU, {:.0} context switches, {:.1} connections each), bare axum {:.1} ({:.2} ms, {:.0}), no-work server with scanlogin's exchanges {:.1} ({:.2} ms, {:.1} connections); listen-queue overflows {} / {}; {} of {n} signed in as the right user, lost {}, cross-bound {}; {} lone writes in {} {}",
            round + 1,
            figures.rate(),
            figures.cpu_ms_per_login(),
            figures.switches_per_login(),
            figures.connections_per_login(),
            base[round].rate(),
            base[round].cpu_ms_per_login(),
            base[round].switches_per_login(),
            shaped[round].rate(),
            shaped[round].cpu_ms_per_login(),
            shaped[round].connections_per_login(),
            figures.usage.overflows,
            base[round].usage.overflows,
            figures.logins - verdict.cross_bound.len().min(figures.logins),
            verdict.lost.len(),
            verdict.cross_bound.len(),
            figures.group_commit.0,
            figures.group_commit.1,
            lone_writes_took,
        );
        problems.extend(verdict.lost.into_iter().chain(verdict.cross_bound));
        ours.push(figures);
        let url = db_url(&format!("apart-{round}"));
        let (figures, verdict) = loadgen::run_scanlogin_sim_apart(&server, n, &url, round, deadline)
            .await
            .unwrap_or_else(|e| fail(&format!("simulator apart: {e}")));
        println!(
            "round {}: scanlogin with the simulator in its own process {:.1} logins/s ({:.2} ms CPU, {:.1} connections each); lost {}, cross-bound {}",
            round + 1,
            figures.rate(),
            figures.cpu_ms_per_login(),
            figures.connections_per_login(),
            verdict.lost.len(),
            verdict.cross_bound.len()
        );
        problems.extend(verdict.lost.into_iter().chain(verdict.cross_bound));
        apart.push(figures);
    }
    table += &loadgen::rows_logins(n, database, rounds, median(&ours), median(&base));
    table += &loadgen::rows_ceiling(median(&shaped), median(&base));
    table += &loadgen::rows_logins_apart(database, &apart, &ours, &shaped);
    if std::env::var("BENCH_ONLY").is_ok_and(|v| v == "logins") {
        print!("\n{table}");
        return;
    }

    let verify_db = db_url("verify");
    match loadgen::run_verify(&verify_db, 20 * n, 64).await {
        Ok((ours, base)) => table += &loadgen::rows_verify(&ours, &base),
        Err(e) => fail(&format!("forward-auth: {e}")),
    }
    let pool_dbs = [format!("sqlite://{}/pool.db", dir.display()), format!("sqlite://{}/direct.db", dir.display())];
    match loadgen::run_pool([&pool_dbs[0], &pool_dbs[1]], 32, 500).await {
        Ok((pooled, direct)) => table += &loadgen::rows_pool(32, 500, &pooled, &direct),
        Err(e) => fail(&format!("pool: {e}")),
    }
    table += &driver_rows(&driver_db, database).await;
    if let Some(url) = &postgres {
        match loadgen::limit_cost(url, 2000).await {
            Ok((local, shared)) => table += &loadgen::rows_limits(local, shared),
            Err(e) => fail(&format!("limits: {e}")),
        }
    }
    table += &waiter_rows(&dir, waiters).await;
    let _ = std::fs::remove_dir_all(&dir);
    print!("\n{table}");
    for problem in problems.iter().take(10) {
        eprintln!("  {problem}");
    }
    if !problems.is_empty() {
        std::process::exit(1);
    }
}

/// The `Any` driver against the backend's own (4000 reads each).
async fn driver_rows(url: &str, database: &str) -> String {
    match loadgen::driver_cost(url, 4000).await {
        Ok(cost) => loadgen::rows_driver(database, &cost),
        Err(e) => fail(&format!("driver: {e}")),
    }
}

/// Memory of waiting browsers and the wake-up beside them, measured on the release
/// server binary beside this one (WeChat simulated by a third process).
async fn waiter_rows(dir: &std::path::Path, waiters: usize) -> String {
    let server = std::env::current_exe().map(|p| p.with_file_name("scanlogin")).unwrap_or_default();
    if !server.exists() {
        return loadgen::row("memory of waiting browsers", "skipped", &format!("{} not built", server.display()), None, "");
    }
    let mut rows = String::new();
    for transport in [loadgen::Transport::Http1, loadgen::Transport::ProxyH2c] {
        match loadgen::run_waiters(&server, dir, waiters, &[], transport).await {
            Ok(m) => rows += &loadgen::rows_waiters(&m),
            Err(e) => fail(&format!("waiters ({transport:?}): {e}")),
        }
    }
    rows
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
