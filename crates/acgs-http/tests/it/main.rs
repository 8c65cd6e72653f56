//! Integration tests of acgs-http against local servers.

use std::time::{Duration, Instant};

use acgs_core::UserFacing as _;
use acgs_core::provider::{FailureClass, HttpFailure};
use acgs_core::redact::Redactor;
use acgs_http::{Credential, HttpClient, HttpError, HttpRequest, NetworkPolicy, RetryPolicy};
use secrecy::SecretString;
use tokio::io::AsyncWriteExt as _;
use url::Url;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const KEY: &str = "fal-canary-1111-2222:secretcanary0123456789abcdef";

fn policy(allow_loopback: bool) -> NetworkPolicy {
    NetworkPolicy {
        allow_loopback,
        ca_bundle: None,
        proxy: None,
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        read_idle_timeout: Duration::from_secs(5),
    }
}

fn client(allow_loopback: bool) -> HttpClient {
    let redactor = Redactor::new();
    redactor.add_secret(KEY);
    HttpClient::new(policy(allow_loopback), redactor).expect("client")
}

fn url(base: &str, p: &str) -> Url {
    Url::parse(&format!("{base}{p}")).expect("url")
}

fn credential(server: &MockServer) -> Credential {
    Credential::new(
        &url(&server.uri(), "/"),
        "authorization",
        "Key ",
        &SecretString::from(KEY),
    )
    .expect("credential")
}

fn by_status(f: &HttpFailure) -> FailureClass {
    match f.status {
        429 => FailureClass::RateLimited,
        408 | 500..=599 => FailureClass::Transient,
        _ => FailureClass::Rejected,
    }
}

#[tokio::test]
async fn credentials_reach_their_origin_but_not_a_redirect_target() {
    let provider = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/result"))
        .and(header("authorization", format!("Key {KEY}").as_str()))
        .respond_with(ResponseTemplate::new(302).insert_header(
            "location",
            format!("{}/media.png", elsewhere.uri()).as_str(),
        ))
        .expect(1)
        .mount(&provider)
        .await;
    Mock::given(method("GET"))
        .and(path("/media.png"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"\x89PNG\r\n\x1a\nrest".to_vec()))
        .expect(1)
        .mount(&elsewhere)
        .await;
    let c = client(true);
    let cred = credential(&provider);
    let response = c
        .execute(&HttpRequest::get(url(&provider.uri(), "/result")).credential(&cred))
        .await
        .expect("followed");
    assert!(response.body.starts_with(b"\x89PNG"));
    let seen = elsewhere.received_requests().await.expect("recorded");
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].headers.get("authorization").is_none(),
        "the key must not reach another origin"
    );
}

#[tokio::test]
async fn a_redirect_that_left_the_origin_never_brings_the_key_back() {
    let provider = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/result"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/bounce", elsewhere.uri()).as_str()),
        )
        .mount(&provider)
        .await;
    Mock::given(method("GET"))
        .and(path("/bounce"))
        .respond_with(ResponseTemplate::new(302).insert_header(
            "location",
            format!("{}/chosen-by-the-foreign-host", provider.uri()).as_str(),
        ))
        .mount(&elsewhere)
        .await;
    Mock::given(method("GET"))
        .and(path("/chosen-by-the-foreign-host"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"ok".to_vec()))
        .mount(&provider)
        .await;
    let c = client(true);
    let cred = credential(&provider);
    c.execute(&HttpRequest::get(url(&provider.uri(), "/result")).credential(&cred))
        .await
        .expect("followed");
    let seen = provider.received_requests().await.expect("recorded");
    let back = seen
        .iter()
        .find(|r| r.url.path() == "/chosen-by-the-foreign-host")
        .expect("came back");
    assert!(
        back.headers.get("authorization").is_none(),
        "the key must not follow a redirect back from another origin"
    );
    let first = seen
        .iter()
        .find(|r| r.url.path() == "/result")
        .expect("first");
    assert!(
        first.headers.get("authorization").is_some(),
        "the first hop has it"
    );
}

#[tokio::test]
async fn plain_http_and_loopback_need_the_switch() {
    let server = MockServer::start().await;
    let c = client(false);
    let err = c
        .execute(&HttpRequest::get(url(&server.uri(), "/")))
        .await
        .expect_err("loopback refused");
    assert_eq!(err.code(), "network.refused");
    assert!(
        server
            .received_requests()
            .await
            .expect("recorded")
            .is_empty()
    );
    let err = client(true)
        .execute(&HttpRequest::get(
            Url::parse("http://93.184.216.34/").expect("url"),
        ))
        .await
        .expect_err("http off loopback");
    assert_eq!(err.code(), "network.refused");
}

#[tokio::test]
async fn disallowed_literals_are_refused_even_with_loopback_allowed() {
    let c = client(true);
    for target in [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/",
        "https://[::ffff:192.168.0.1]/",
        "https://[fd00::1]/",
        "https://0xa9.0xfe.0xa9.0xfe/",
        "ftp://example.com/",
        "https://user:pw@example.com/",
    ] {
        let err = c
            .execute(&HttpRequest::get(Url::parse(target).expect("url")))
            .await
            .expect_err(target);
        assert!(matches!(err, HttpError::Refused { .. }), "{target}: {err}");
    }
}

#[tokio::test]
async fn names_resolving_to_loopback_are_dropped_by_the_resolver() {
    let server = MockServer::start().await;
    let port = server.address().port();
    let err = client(false)
        .execute(&HttpRequest::get(
            Url::parse(&format!("https://localhost:{port}/")).expect("url"),
        ))
        .await
        .expect_err("blocked");
    assert!(matches!(err, HttpError::Refused { .. }), "{err:?}");
}

#[tokio::test]
async fn redirect_hops_are_checked_and_bounded() {
    let server = MockServer::start().await;
    Mock::given(path("/to-metadata"))
        .respond_with(
            ResponseTemplate::new(301).insert_header("location", "http://169.254.169.254/"),
        )
        .mount(&server)
        .await;
    Mock::given(path("/loop"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/loop"))
        .mount(&server)
        .await;
    let c = client(true);
    let err = c
        .execute(&HttpRequest::get(url(&server.uri(), "/to-metadata")))
        .await
        .expect_err("refused hop");
    assert!(matches!(err, HttpError::Refused { .. }), "{err:?}");
    let err = c
        .execute(&HttpRequest::get(url(&server.uri(), "/loop")))
        .await
        .expect_err("bounded");
    assert!(matches!(err, HttpError::Redirect(_)), "{err:?}");
    let hops = server
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|r| r.url.path() == "/loop")
        .count();
    assert_eq!(hops, acgs_http::MAX_REDIRECTS + 1);
}

#[tokio::test]
async fn posts_do_not_follow_redirects() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(307).insert_header("location", "/elsewhere"))
        .mount(&server)
        .await;
    let err = client(true)
        .execute(
            &HttpRequest::new(acgs_http::Method::Post, url(&server.uri(), "/submit"))
                .json(serde_json::json!({})),
        )
        .await
        .expect_err("not followed");
    assert_eq!(err.failure().map(|f| f.status), Some(307));
    assert_eq!(server.received_requests().await.expect("recorded").len(), 1);
}

#[tokio::test]
async fn error_bodies_are_redacted() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(|req: &Request| {
            let echoed = req
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            ResponseTemplate::new(401)
                .set_body_string(format!("{{\"detail\":\"bad key {echoed}\"}}"))
        })
        .mount(&server)
        .await;
    let cred = credential(&server);
    let err = client(true)
        .execute(&HttpRequest::get(url(&server.uri(), "/x")).credential(&cred))
        .await
        .expect_err("401");
    let body = err.failure().map(|f| f.body.clone()).unwrap_or_default();
    assert!(body.contains("bad key"), "{body}");
    assert!(!body.contains("secretcanary"), "{body}");
    assert!(!format!("{err:?}").contains("secretcanary"));
}

#[tokio::test]
async fn bodies_are_capped() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'a'; 4096]))
        .mount(&server)
        .await;
    let err = client(true)
        .execute(&HttpRequest::get(url(&server.uri(), "/big")).cap(1024))
        .await
        .expect_err("too large");
    assert!(
        matches!(err, HttpError::TooLarge { cap: 1024, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn rate_limits_are_retried_after_the_advised_delay() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": true})))
        .with_priority(2)
        .mount(&server)
        .await;
    let started = Instant::now();
    let response = client(true)
        .execute_retrying(
            &HttpRequest::new(acgs_http::Method::Post, url(&server.uri(), "/submit")).submit(),
            &RetryPolicy::default(),
            &by_status,
        )
        .await
        .expect("retried");
    assert_eq!(response.status, 200);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the Retry-After delay was honoured"
    );
    assert_eq!(server.received_requests().await.expect("recorded").len(), 2);
}

#[tokio::test]
async fn failed_submits_are_not_resent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let err = client(true)
        .execute_retrying(
            &HttpRequest::new(acgs_http::Method::Post, url(&server.uri(), "/submit")).submit(),
            &RetryPolicy::default(),
            &by_status,
        )
        .await
        .expect_err("503");
    assert_eq!(err.failure().map(|f| f.status), Some(503));
    assert_eq!(server.received_requests().await.expect("recorded").len(), 1);
}

#[tokio::test]
async fn downloads_hash_on_the_fly_and_respect_the_cap() {
    let server = MockServer::start().await;
    let body = vec![7u8; 100_000];
    Mock::given(method("GET"))
        .and(path("/file"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(body.clone()))
        .mount(&server)
        .await;
    let c = client(true);
    let mut sink = Vec::new();
    let d = c
        .download_to(&url(&server.uri(), "/file"), None, &mut sink, 1 << 20)
        .await
        .expect("download");
    assert_eq!(d.bytes, 100_000);
    assert_eq!(sink, body);
    use sha2::Digest as _;
    let expected: String = sha2::Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(d.sha256, expected);
    let mut small = Vec::new();
    let err = c
        .download_to(&url(&server.uri(), "/file"), None, &mut small, 1000)
        .await
        .expect_err("cap");
    assert!(matches!(err, HttpError::TooLarge { .. }));
}

#[tokio::test]
async fn truncated_downloads_fail() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        if let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
            let _ = socket
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: 1000\r\n\r\n",
                )
                .await;
            let _ = socket.write_all(&[1u8; 400]).await;
            let _ = socket.shutdown().await;
        }
    });
    let mut sink = Vec::new();
    let err = client(true)
        .download_to(
            &Url::parse(&format!("http://{addr}/f")).expect("url"),
            None,
            &mut sink,
            1 << 20,
        )
        .await
        .expect_err("truncated");
    assert!(
        matches!(
            err,
            HttpError::Truncated { .. } | HttpError::Transfer { .. }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn https_never_falls_back_to_plaintext() {
    let server = MockServer::start().await;
    let port = server.address().port();
    let err = client(true)
        .execute(&HttpRequest::get(
            Url::parse(&format!("https://127.0.0.1:{port}/")).expect("url"),
        ))
        .await
        .expect_err("no TLS on a plain server");
    assert!(
        matches!(err, HttpError::Tls { .. } | HttpError::Connect { .. }),
        "{err:?}"
    );
}

/// A test certificate file (`tls/`: a CA, and a server certificate for 127.0.0.1 it signed,
/// with its key; made for these tests only).
fn tls_fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/tls")
        .join(name)
}

/// An HTTPS server on 127.0.0.1 presenting the test server certificate; it answers every
/// request `200 {}`.
async fn tls_server() -> u16 {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::AsyncReadExt as _;
    let certs = CertificateDer::pem_file_iter(tls_fixture("server.pem"))
        .expect("certificate")
        .collect::<Result<Vec<_>, _>>()
        .expect("certificate");
    let key = PrivateKeyDer::from_pem_file(tls_fixture("test-server-key.pem")).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = vec![0u8; 4096];
                let _ = tls.read(&mut head).await;
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

/// `GET https://{host}:{port}/` through `client`.
async fn get_https(
    client: &HttpClient,
    host: &str,
    port: u16,
) -> Result<acgs_http::HttpResponse, acgs_http::HttpError> {
    client
        .execute(&HttpRequest::get(url(
            &format!("https://{host}:{port}"),
            "/",
        )))
        .await
}

fn trusting_the_test_ca() -> HttpClient {
    let mut policy = policy(true);
    policy.ca_bundle = Some(tls_fixture("ca.pem"));
    HttpClient::new(policy, Redactor::new()).expect("client")
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_issuer_is_refused() {
    let port = tls_server().await;
    let err = get_https(&client(true), "127.0.0.1", port)
        .await
        .expect_err("the test CA is not an OS root");
    assert_eq!(err.code(), "network.tls", "{err:?}");
}

#[tokio::test]
async fn the_configured_ca_bundle_is_trusted_and_names_are_still_checked() {
    let port = tls_server().await;
    let client = trusting_the_test_ca();
    let response = get_https(&client, "127.0.0.1", port)
        .await
        .expect("verified with the bundle");
    assert_eq!(response.status, 200);
    assert_eq!(&response.body[..], b"{}");
    let err = get_https(&client, "localhost", port)
        .await
        .expect_err("the certificate names 127.0.0.1 only");
    assert_eq!(err.code(), "network.tls", "{err:?}");
}

#[tokio::test]
async fn a_ca_bundle_without_certificates_is_a_setup_error() {
    let dir = tempfile::tempdir().expect("dir");
    let empty = dir.path().join("bundle.pem");
    fs_err::write(&empty, "not a certificate\n").expect("write");
    let mut policy = policy(true);
    policy.ca_bundle = Some(empty);
    let err = HttpClient::new(policy, Redactor::new()).expect_err("no certificates");
    assert!(err.to_string().contains("holds no certificates"), "{err}");
}

#[tokio::test]
async fn multipart_forms_stream_the_file_with_its_length() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/form"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().expect("dir");
    let content: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    let file_path = dir.path().join("speech.wav");
    fs_err::write(&file_path, &content).expect("write");
    let input = acgs_core::request::LocalInput {
        field: "file".into(),
        file_name: "speech.wav".into(),
        content_type: acgs_core::ContentType::Wav,
        size: content.len() as u64,
        file: std::sync::Arc::new(fs_err::File::open(&file_path).expect("open").into_parts().0),
    };
    let body = acgs_http::multipart_form(&[("model_id", "scribe_v1")], "file", &input);
    let request =
        HttpRequest::new(acgs_http::Method::Post, url(&server.uri(), "/form")).with_body(body);
    client(true).execute(&request).await.expect("sent");
    let received = &server.received_requests().await.expect("recorded")[0];
    let content_type = received
        .headers
        .get("content-type")
        .expect("type")
        .to_str()
        .expect("ascii");
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .expect("multipart");
    let length: usize = received
        .headers
        .get("content-length")
        .expect("length")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number");
    assert_eq!(length, received.body.len());
    let text = String::from_utf8_lossy(&received.body);
    assert!(text.contains("name=\"model_id\"\r\n\r\nscribe_v1\r\n"));
    assert!(text.contains("name=\"file\"; filename=\"speech.wav\"\r\ncontent-type: audio/wav"));
    let marker = b"content-type: audio/wav\r\n\r\n";
    let start = received
        .body
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("file part")
        + marker.len();
    assert_eq!(
        &received.body[start..start + content.len()],
        content.as_slice(),
        "the file arrives intact"
    );
    assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
}
