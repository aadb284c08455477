//! Health checks for orchestrators: `/healthz` (alive) and `/readyz` (able to serve).

use crate::server::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the database answers and is migrated, and the server is not draining.
pub async fn readyz(State(st): State<AppState>) -> (StatusCode, &'static str) {
    if st.tickets.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining");
    }
    let migrated: Result<(i64,), _> = sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations WHERE success").fetch_one(&st.db).await;
    match migrated {
        Ok((n,)) if n > 0 => (StatusCode::OK, "ready"),
        Ok(_) => (StatusCode::SERVICE_UNAVAILABLE, "not migrated"),
        Err(e) => {
            tracing::warn!(error = %e, "readyz: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
        }
    }
}
