//! The newcomer's path: the README's example, as written, builds (it is
//! `src/bin/readme.rs`, and the README shows that file verbatim) and runs
//! against `evenkeel-sim` over loopback.

use std::process::Stdio;
use std::time::Duration;

use evenkeel_sim::Sim;

#[test]
fn the_readme_shows_the_example_as_it_is_built() {
    let readme = include_str!("../../README.md");
    let example = include_str!("../src/bin/readme.rs");
    assert!(
        readme.contains(example),
        "README.md must show tests/src/bin/readme.rs verbatim"
    );
    // And the dependencies it needs, with the features it uses.
    for line in [
        r#"evenkeel = { version = "0.1", features = ["full"] }"#,
        r#"tokio = { version = "1", features = ["macros", "rt-multi-thread"] }"#,
        r#"tower = { version = "0.5", features = ["util"] }"#,
        "http-body-util",
        "bytes",
    ] {
        assert!(readme.contains(line), "README.md lists `{line}`");
    }
}

#[tokio::test]
async fn the_readme_example_runs_against_the_simulator() {
    let server = Sim::builder()
        .seed(1)
        .build()
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_readme"))
        .env("ANTHROPIC_API_KEY", "sk-test")
        .env("ANTHROPIC_BASE_URL", server.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // A bound, not a speed target: the example makes one call.
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the example finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("200 OK: "), "{stdout}");
    assert_eq!(server.stats().successes(), 1, "one call reached the sim");
    server.shutdown().await;
}
