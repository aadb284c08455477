//! A correctness run of the load generator: 100 concurrent complete logins against one
//! server, every one signed in as the right user. No timing assertions (figures come
//! from `scripts/bench`).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_logins_all_land_on_the_right_user() {
    let dir = tempfile::tempdir().unwrap();
    let (figures, verdict) =
        scanlogin_bench::run_scanlogin(100, &format!("sqlite://{}/load.db", dir.path().display()), 0, std::time::Duration::from_secs(120))
            .await
            .unwrap();
    assert!(verdict.lost.is_empty(), "lost: {:?}", verdict.lost);
    assert!(verdict.cross_bound.is_empty(), "cross-bound: {:?}", verdict.cross_bound);
    assert_eq!(figures.logins, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_baselines_complete_every_login_of_their_shape() {
    use scanlogin_bench::{Shape, run_baseline};
    for shape in [Shape::Minimal, Shape::Scanlogin] {
        let figures = run_baseline(50, std::time::Duration::from_secs(60), shape).await.unwrap();
        assert_eq!(figures.logins, 50, "{shape:?}");
        assert_eq!(figures.confirm_to_browser.len(), 50, "{shape:?}: each long-poll woken by its confirm");
    }
}
