//! Connecting to PostgreSQL, for the shared ledger and the service's shared records: off
//! loopback only over TLS with a verified certificate; the password comes from the URL,
//! `PGPASSWORD` or `.pgpass` and is taught to the redactor, never shown.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, NoTls};

use crate::error::StorageError;

/// Connect to `url`: the client (its connection runs on a task of its own) and the server's
/// `postgres://host:port/db`, without the password, for messages. Without a password in the
/// URL, `PGPASSWORD` then `.pgpass` from `access` are used.
pub async fn connect(
    url: &str,
    access: &crate::LedgerAccess,
) -> Result<(Client, String), StorageError> {
    open(url, access, None).await
}

/// [`connect`], and `LISTEN channel` on the connection: the payload of every notification on
/// it arrives on the receiver, until the connection closes.
pub async fn listen(
    url: &str,
    access: &crate::LedgerAccess,
    channel: &str,
) -> Result<(Client, UnboundedReceiver<String>), StorageError> {
    let (notices, received) = tokio::sync::mpsc::unbounded_channel();
    let (client, target) = open(url, access, Some(notices)).await?;
    let plain = !channel.is_empty() && channel.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if !plain {
        return Err(setup_error(
            &target,
            "a channel is lowercase letters and `_`",
        ));
    }
    client
        .batch_execute(&format!("LISTEN {channel}"))
        .await
        .map_err(|e| setup_error(&target, e))?;
    Ok((client, received))
}

/// Connect, the connection driven on a task of its own that passes notifications to
/// `notices` when given.
async fn open(
    url: &str,
    access: &crate::LedgerAccess,
    notices: Option<UnboundedSender<String>>,
) -> Result<(Client, String), StorageError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|_| setup_error("the configured ledger.url", "not a valid postgres:// URL"))?;
    let target = target_of(&config);
    if config.get_password().is_none() {
        let from_file = || {
            let path = access.pgpass_file.as_ref()?;
            let text = read_pgpass(path)?;
            pgpass_lookup(&text, &config)
        };
        if let Some(pw) = access.password.clone().or_else(from_file) {
            config.password(pw.expose_secret());
        }
    }
    if let Some(pw) = config.get_password() {
        access.redactor.add_secret(&String::from_utf8_lossy(pw));
    }
    config.connect_timeout(Duration::from_secs(10));
    let loopback = !config.get_hosts().is_empty() && config.get_hosts().iter().all(is_loopback);
    let client = if loopback {
        let (client, connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| setup_error(&target, e))?;
        tokio::spawn(drive(connection, notices));
        client
    } else {
        config.ssl_mode(SslMode::Require);
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(
            tls_config().map_err(|e| setup_error(&target, e))?,
        );
        let (client, connection) = config
            .connect(tls)
            .await
            .map_err(|e| setup_error(&target, e))?;
        tokio::spawn(drive(connection, notices));
        client
    };
    Ok((client, target))
}

/// Drive `connection` until it closes, passing its notifications to `notices`.
async fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    notices: Option<UnboundedSender<String>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
        match message {
            Ok(tokio_postgres::AsyncMessage::Notification(note)) => {
                if let Some(notices) = &notices {
                    let _ = notices.send(note.payload().to_owned());
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
}

pub(crate) fn setup_error(target: &str, reason: impl std::fmt::Display) -> StorageError {
    StorageError::Io {
        what: format!("connecting to the ledger at {target}"),
        source: std::io::Error::other(reason.to_string()),
    }
}

fn is_loopback(host: &Host) -> bool {
    match host {
        Host::Tcp(name) => {
            name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        Host::Unix(_) => true,
    }
}

/// `host:port/db` of a configuration, for messages (never the password).
fn target_of(config: &tokio_postgres::Config) -> String {
    let host = config.get_hosts().first().map_or_else(
        || "?".into(),
        |h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        },
    );
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{host}:{port}/{}",
        config.get_dbname().unwrap_or("postgres")
    )
}

/// The password for `config` from a `.pgpass` file text (`host:port:db:user:password`, `*` wildcards).
#[must_use]
pub fn pgpass_lookup(text: &str, config: &tokio_postgres::Config) -> Option<SecretString> {
    let host = match config.get_hosts().first()? {
        Host::Tcp(name) => name.clone(),
        Host::Unix(_) => "localhost".into(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let db = config.get_dbname().unwrap_or("postgres").to_owned();
    let user = config.get_user().unwrap_or_default().to_owned();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.splitn(5, ':').collect();
            let [h, p, d, u, pw] = fields.as_slice() else {
                return None;
            };
            let fits = |pattern: &str, value: &str| pattern == "*" || pattern == value;
            (fits(h, &host) && fits(p, &port) && fits(d, &db) && fits(u, &user))
                .then(|| SecretString::from((*pw).to_owned()))
        })
        .next()
}

/// `.pgpass`, read only when it is a regular file of ours that group and others cannot read (as
/// libpq requires).
fn read_pgpass(path: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = fs_err::metadata(path).ok()?;
    let ours = meta.uid() == rustix::process::getuid().as_raw();
    (meta.is_file() && ours && meta.mode() & 0o077 == 0)
        .then(|| fs_err::read_to_string(path).ok())?
}

fn tls_config() -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err("no trusted root certificates found".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
