//! Downloading a 1 GiB video result from a loopback server (targets: peak memory of the `acgs`
//! process ≤ 64 MiB; throughput at least half of `curl -o` on the same file).
//!
//! `cargo bench -p acgs-cli --bench download` starts a fake fal queue whose result points at a
//! loopback server streaming a 1 GiB MP4 (generated on the fly, never held in memory), runs
//! `acgs video` against it while sampling the process's `VmHWM` from `/proc`, then fetches the same
//! file with `curl -o`. The transfer time of each client is measured by the server, from the
//! request to the last byte accepted by the socket.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acgs_testkit::canary::FAL_KEY;
use acgs_testkit::fal::{FakeFal, Outcome};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

const GIB: u64 = 1024 * 1024 * 1024;
const CHUNK: usize = 1024 * 1024;
const ENDPOINT: &str = "fal-ai/kling-video/v2.6/pro/text-to-video";

/// The transfer times the big-file server measured, one per request.
type Transfers = Arc<Mutex<Vec<Duration>>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (media_base, transfers) = serve_big_file().await;
    let fake = FakeFal::builder(ENDPOINT)
        .outcome(Outcome::Video)
        .media_redirect_to(&media_base)
        .start()
        .await;
    let sandbox = tempfile::tempdir().expect("sandbox");

    let started = Instant::now();
    let peak_kib = run_acgs(sandbox.path(), &fake.uri()).await;
    let acgs_total = started.elapsed();
    let acgs_transfer = last_transfer(&transfers);

    let target = sandbox.path().join("curl.mp4");
    let url = format!("{media_base}/files/rabbit/big.mp4");
    let status = tokio::process::Command::new("curl")
        .args(["-s", "-o"])
        .arg(&target)
        .arg(&url)
        .status()
        .await
        .expect("curl runs");
    assert!(status.success(), "curl failed");
    let curl_transfer = last_transfer(&transfers);

    let ms = |d: Duration| d.as_millis().max(1);
    let mib_s = |d: Duration| 1024 * 1000 / ms(d);
    let hundredths = |n: u128| format!("{}.{:02}", n / 100, n % 100);
    let report = format!(
        "1 GiB result download\n\
         acgs: peak RSS {} MiB, transfer {} ms ({} MiB/s), whole process {} ms\n\
         curl -o: transfer {} ms ({} MiB/s)\n\
         throughput ratio acgs/curl: {}\n",
        hundredths(u128::from(peak_kib) * 100 / 1024),
        ms(acgs_transfer),
        mib_s(acgs_transfer),
        ms(acgs_total),
        ms(curl_transfer),
        mib_s(curl_transfer),
        hundredths(ms(curl_transfer) * 100 / ms(acgs_transfer)),
    );
    std::io::Write::write_all(&mut std::io::stdout(), report.as_bytes()).expect("stdout");
}

/// Run `acgs video` to completion, sampling its peak resident set (KiB).
async fn run_acgs(sandbox: &Path, queue: &str) -> u32 {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_acgs"))
        .args(["video", "a slow orbit", "--yes"])
        .env_clear()
        .env("HOME", sandbox.join("home"))
        .env("XDG_CONFIG_HOME", sandbox.join("config"))
        .env("XDG_STATE_HOME", sandbox.join("state"))
        .env("FAL_KEY", FAL_KEY)
        .env("ACGS_PROVIDERS__FAL__QUEUE_URL", queue)
        .env("ACGS_PROVIDERS__FAL__REST_URL", queue)
        .env("ACGS_NETWORK__ALLOW_HTTP_LOOPBACK", "true")
        .current_dir(sandbox)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("acgs starts");
    let status_file = format!("/proc/{}/status", child.id().expect("pid"));
    let mut peak = 0;
    loop {
        if let Some(kib) = vm_hwm(&status_file) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = err.read_to_string(&mut stderr).await;
            }
            assert!(status.success(), "acgs failed: {stderr}");
            return peak;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `VmHWM` (peak resident set, KiB) from a `/proc/PID/status` file.
fn vm_hwm(status_file: &str) -> Option<u32> {
    let text = fs_err::read_to_string(status_file).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn last_transfer(transfers: &Transfers) -> Duration {
    *transfers
        .lock()
        .expect("lock")
        .last()
        .expect("the server saw a download")
}

/// A loopback HTTP/1.1 server answering every GET with a 1 GiB MP4 (one `mdat` box of zeros).
async fn serve_big_file() -> (String, Transfers) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let transfers: Transfers = Arc::default();
    let record = Arc::clone(&transfers);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                if let Some(took) = send_big_file(socket).await {
                    record.lock().expect("lock").push(took);
                }
            });
        }
    });
    (base, transfers)
}

async fn send_big_file(mut socket: tokio::net::TcpStream) -> Option<Duration> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        socket.read_exact(&mut byte).await.ok()?;
        head.push(byte[0]);
    }
    let started = Instant::now();
    let prefix = mp4_prefix(GIB);
    let length = prefix.len() as u64 + GIB;
    let header = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: video/mp4\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n"
    );
    socket.write_all(header.as_bytes()).await.ok()?;
    socket.write_all(&prefix).await.ok()?;
    let zeros = vec![0u8; CHUNK];
    for _ in 0..GIB / CHUNK as u64 {
        socket.write_all(&zeros).await.ok()?;
    }
    socket.shutdown().await.ok()?;
    Some(started.elapsed())
}

/// `ftyp` and a 10 s `moov` (so the file probes as a video), then the header of an `mdat` box
/// of `payload` bytes.
fn mp4_prefix(payload: u64) -> Vec<u8> {
    let mut file = acgs_testkit::media::mp4(10, 0);
    let mdat_header = file.len() - 8;
    file.truncate(mdat_header);
    let size = u32::try_from(payload + 8).expect("mdat fits a 32-bit size");
    file.extend_from_slice(&size.to_be_bytes());
    file.extend_from_slice(b"mdat");
    file
}
