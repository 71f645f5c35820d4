//! The preset's configuration errors name what the user typed and the
//! method that took it, before any layer is built.

#![cfg(feature = "hyper")]

use evenkeel::Preset;

fn refused(url: &str) -> String {
    let err = Preset::builder().endpoint(url).build_http().expect_err(url);
    assert_eq!(err.field(), "endpoint", "{url}: {err}");
    err.to_string()
}

#[test]
fn a_bad_endpoint_url_is_quoted_and_named() {
    for (url, expect) in [
        ("http//api.anthropic.com", "`http//api.anthropic.com`"),
        ("https:/api.anthropic.com", "`https:/api.anthropic.com`"),
        ("api.anthropic.com", "write `https://api.anthropic.com`"),
        ("htps://api.anthropic.com", "the scheme `htps`"),
        ("ftp://files.example", "the scheme `ftp`"),
        ("https://api.example/?v=1", "has a query"),
    ] {
        let message = refused(url);
        assert!(message.contains(expect), "{url}: {message}");
        assert!(!message.contains("server_address"), "{url}: {message}");
        assert!(!message.contains("base_url"), "{url}: {message}");
    }
    for empty in ["", "  "] {
        let message = refused(empty);
        assert!(message.contains("is empty"), "{empty:?}: {message}");
    }
}

#[test]
fn every_endpoint_is_checked_not_only_the_first() {
    let err = Preset::builder()
        .endpoint("https://api.anthropic.com")
        .endpoint("ftp://backup.example")
        .build_http()
        .unwrap_err();
    assert!(err.to_string().contains("`ftp://backup.example`"), "{err}");
}

#[test]
fn good_urls_build() {
    for url in [
        "https://api.anthropic.com",
        "http://127.0.0.1:8080/anthropic",
        "HTTPS://API.EXAMPLE",
    ] {
        assert!(
            Preset::builder().endpoint(url).build_http().is_ok(),
            "{url}"
        );
    }
}
