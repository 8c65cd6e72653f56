//! [`LocalProvider`]: the [`Provider`] for steps run on this machine. "Uploading" an input
//! copies it into a private working folder under a name acgs chose; submitting runs the step at
//! once and answers with its output's bytes.

use std::ffi::OsStr;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use acgs_core::catalog::Params;
use acgs_core::config::ToolsConfig;
use acgs_core::provider::{
    CancellationToken, EventSink, FailureClass, HttpFailure, ProviderError, ProviderResult,
};
use acgs_core::request::{
    Artifact, Authorized, CancelOutcome, JobHandle, LocalInput, Output, RemoteRef, Request,
    Submitted,
};
use acgs_core::{Provider, ProviderId};
use serde_json::Value;

use crate::edit::Bench;
use crate::ffmpeg::{Tools, failure};
use crate::grid;

/// What `local:` names in a request point at: `in-N.EXT`, staged by [`LocalProvider::upload`].
const SCHEME: &str = "local:";
/// Bytes copied at a time when staging an input.
const CHUNK: usize = 1024 * 1024;

/// Local media steps (see the crate documentation). One working folder per provider, removed
/// when the provider is dropped.
#[derive(Debug, Clone)]
pub struct LocalProvider {
    tools: Arc<Tools>,
    dir: Arc<tempfile::TempDir>,
    next: Arc<AtomicU64>,
}

impl LocalProvider {
    /// A provider using the programs `config` names, or those on `path_var` (the `PATH` the
    /// process was given). A program that cannot be found is an error when a step needs it.
    pub fn new(config: &ToolsConfig, path_var: Option<&OsStr>) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("acgs-local-").tempdir()?;
        Ok(Self {
            tools: Arc::new(Tools::locate(config, path_var)),
            dir: Arc::new(dir),
            next: Arc::new(AtomicU64::new(1)),
        })
    }

    fn number(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The staged name a `local:` reference in `params[field]` gives (one, or a list).
    fn staged(params: &Params, field: &str) -> Result<Vec<String>, ProviderError> {
        let bad = || {
            failure(
                FailureClass::Rejected,
                "local.bad_input",
                format!("`{field}` does not name an input this machine staged"),
            )
        };
        let values: Vec<&Value> = match params.get(field) {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(one) => vec![one],
            None => return Err(bad()),
        };
        values
            .into_iter()
            .map(|v| {
                v.as_str()
                    .and_then(|s| s.strip_prefix(SCHEME))
                    .filter(|name| is_staged_name(name))
                    .map(str::to_owned)
                    .ok_or_else(bad)
            })
            .collect()
    }

    fn one(params: &Params, field: &str) -> Result<String, ProviderError> {
        Self::staged(params, field)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                failure(
                    FailureClass::Rejected,
                    "local.bad_input",
                    format!("`{field}` is empty"),
                )
            })
    }

    /// Run the step `endpoint` names; the output's file name in the working folder and its type.
    async fn run(
        &self,
        endpoint: &str,
        params: &Params,
    ) -> Result<(String, &'static str), ProviderError> {
        let bench = Bench {
            tools: &self.tools,
            dir: self.dir.path(),
            job: self.number(),
        };
        let made = Self::dispatch(&bench, endpoint, params).await;
        bench.clean(made.as_ref().ok().map(|(name, _)| name.as_str()));
        made
    }

    /// The step `endpoint` names, on `bench`.
    async fn dispatch(
        bench: &Bench<'_>,
        endpoint: &str,
        params: &Params,
    ) -> Result<(String, &'static str), ProviderError> {
        let text = |name: &str| params.get(name).and_then(Value::as_str).unwrap_or_default();
        let flag = |name: &str| params.get(name).and_then(Value::as_bool).unwrap_or(false);
        let ms = |name: &str| params.get(name).and_then(millis_of);
        let video = "video/mp4";
        Ok(match endpoint {
            "local/concat" => (
                bench.concat(&Self::staged(params, "video_urls")?).await?,
                video,
            ),
            "local/mux_audio" => {
                let (v, a) = (
                    Self::one(params, "video_url")?,
                    Self::one(params, "audio_url")?,
                );
                let out = bench
                    .mux_audio(&v, &a, text("mode") == "mix", text("fit") != "cut")
                    .await?;
                (out, video)
            }
            "local/subtitles" => {
                let v = Self::one(params, "video_url")?;
                (bench.subtitles(&v, text("srt"), flag("burn")).await?, video)
            }
            "local/trim" => {
                let v = Self::one(params, "video_url")?;
                (
                    bench.trim(&v, ms("start").unwrap_or(0), ms("end")).await?,
                    video,
                )
            }
            "local/frame" => {
                let v = Self::one(params, "video_url")?;
                (bench.frame(&v, ms("at")).await?, "image/png")
            }
            other => {
                return Err(failure(
                    FailureClass::Rejected,
                    "local.unknown_step",
                    format!("there is no local step `{other}`"),
                ));
            }
        })
    }

    /// `split_grid`: the staged image cut in pure Rust, on a blocking thread (decoding and
    /// encoding up to 64 PNGs would hold up the runtime's few workers).
    async fn split_grid(&self, params: &Params) -> Result<Vec<Artifact>, ProviderError> {
        let name = Self::one(params, "image_url")?;
        let bytes =
            fs_err::read(self.dir.path().join(&name)).map_err(|e| io_failure("the image", &e))?;
        let count = |k: &str| {
            params
                .get(k)
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(2)
        };
        let (rows, cols) = (count("rows"), count("cols"));
        let tiles = tokio::task::spawn_blocking(move || grid::split(&bytes, rows, cols))
            .await
            .map_err(|_| failure(FailureClass::Other, "local.io", "cutting the grid stopped"))??;
        Ok(tiles
            .into_iter()
            .map(|data| Artifact::Bytes {
                data,
                claimed_type: Some("image/png".into()),
            })
            .collect())
    }

    fn take(&self, name: &str) -> Result<Vec<u8>, ProviderError> {
        let path = self.dir.path().join(name);
        let size = fs_err::metadata(&path).map_or(0, |m| m.len());
        if size >= crate::ffmpeg::MAX_OUTPUT_BYTES {
            let _ = fs_err::remove_file(&path);
            return Err(failure(
                FailureClass::Rejected,
                "local.too_large",
                "the output reached the 4 GiB cap and was not kept",
            ));
        }
        let bytes = fs_err::read(&path).map_err(|e| io_failure("the output", &e));
        let _ = fs_err::remove_file(&path);
        bytes
    }
}

/// A number of seconds as milliseconds (`2`, `2.5`, `"2.5"`).
fn millis_of(value: &Value) -> Option<u64> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    crate::ffmpeg::millis(&text)
}

fn io_failure(what: &str, e: &std::io::Error) -> ProviderError {
    failure(
        FailureClass::Other,
        "local.io",
        format!("{what} could not be read: {}", e.kind()),
    )
}

/// `in-N.ext`: what [`LocalProvider::upload`] names a staged input.
fn is_staged_name(name: &str) -> bool {
    name.strip_prefix("in-")
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(n, ext)| {
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && (1..=5).contains(&ext.len())
                && ext.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

#[async_trait::async_trait]
impl Provider for LocalProvider {
    fn id(&self) -> ProviderId {
        ProviderId::Local
    }

    async fn preflight(&self, _request: &Request) -> ProviderResult<Vec<String>> {
        Ok(Vec::new())
    }

    async fn submit(&self, request: &Authorized<Request>) -> ProviderResult<Submitted> {
        let request = request.get();
        let params = &request.params;
        let artifacts = if request.model.endpoint == "local/split_grid" {
            self.split_grid(params).await?
        } else {
            let (name, mime) = self.run(&request.model.endpoint, params).await?;
            vec![Artifact::Bytes {
                data: self.take(&name)?,
                claimed_type: Some(mime.into()),
            }]
        };
        Ok(Submitted::Done(Output {
            artifacts,
            ..Output::default()
        }))
    }

    async fn wait(
        &self,
        _job: &JobHandle,
        _events: &EventSink,
        _cancel: CancellationToken,
    ) -> ProviderResult<Output> {
        Err(failure(
            FailureClass::NotFound,
            "local.no_job",
            "local steps finish when they are sent; there is no job to wait for",
        ))
    }

    async fn cancel(&self, _job: &JobHandle) -> ProviderResult<CancelOutcome> {
        Ok(CancelOutcome::Cancelled)
    }

    async fn upload(&self, input: LocalInput) -> ProviderResult<RemoteRef> {
        let name = format!("in-{}.{}", self.number(), input.content_type.extension());
        let path = self.dir.path().join(&name);
        let copy = move || -> std::io::Result<()> {
            let mut file = fs_err::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            let mut offset = 0u64;
            loop {
                let chunk = input.read_at(offset, CHUNK)?;
                if chunk.is_empty() || offset >= input.size {
                    break;
                }
                file.write_all(&chunk)?;
                offset += chunk.len() as u64;
            }
            file.sync_all()
        };
        tokio::task::spawn_blocking(copy)
            .await
            .map_err(|_| failure(FailureClass::Other, "local.io", "staging an input stopped"))?
            .map_err(|e| io_failure("an input", &e))?;
        Ok(RemoteRef {
            url: format!("{SCHEME}{name}"),
            delete_after_run: Some(name),
        })
    }

    async fn delete_upload(&self, name: &str) -> ProviderResult<()> {
        if is_staged_name(name) {
            let _ = fs_err::remove_file(self.dir.path().join(name));
        }
        Ok(())
    }

    async fn download(
        &self,
        _url: &str,
        _sink: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
        _cap: u64,
    ) -> ProviderResult<u64> {
        Err(failure(
            FailureClass::Rejected,
            "local.no_download",
            "local steps answer with their output; nothing is downloaded",
        ))
    }

    fn classify(&self, _failure: &HttpFailure) -> FailureClass {
        FailureClass::Other
    }
}

#[cfg(test)]
mod tests {
    use super::is_staged_name;

    #[test]
    fn only_names_acgs_chose_are_read() {
        assert!(is_staged_name("in-12.mp4"));
        for bad in [
            "-i",
            "concat:in-1.mp4|in-2.mp4",
            "http://x/in-1.mp4",
            "in-1.mp4/../x",
            "../in-1.mp4",
            "in-.mp4",
            "in-1",
            "in-1.m p4",
            "in-1.mp4.sh.x",
        ] {
            assert!(!is_staged_name(bad), "{bad}");
        }
    }
}
