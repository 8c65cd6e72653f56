//! Files in and out: `POST /v1/files` streams one multipart upload to the owner's folder (0600,
//! under a size cap, its type read from its bytes), and any file the service hands back — an
//! upload or a job's output — is streamed to its owner in 64 KiB reads, only if it is a regular
//! file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use acgs_core::ContentType;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest as _, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use serde_json::json;
use tokio::io::AsyncWriteExt as _;

use crate::Shared;
use crate::error::ServerError;
use crate::store::{Store, Upload};

/// The most bytes one user's uploads may take in all.
pub(crate) const USER_QUOTA: u64 = 2 * 1024 * 1024 * 1024;
/// The most uploads one user may keep.
pub(crate) const USER_FILES: u64 = 256;
/// The most bytes of a form before its first part's headers end.
const HEADERS_CAP: usize = 16 * 1024;

/// `user`'s upload folder under `root`; a name that is not plain gets none (user names are
/// checked when users are added, and again here, since the name becomes a path).
pub(crate) fn folder(root: &Path, user: &str) -> Option<PathBuf> {
    crate::store::check_user_name(user)
        .ok()
        .map(|()| root.join(user))
}

/// The request body, refused when its first part's headers do not end (a blank line) within
/// the first 16 KiB: the form parser would otherwise hold them all in memory.
fn headers_bounded(request: Request) -> Request {
    let (parts, body) = request.into_parts();
    let mut seen: Vec<u8> = Vec::new();
    let mut ended = false;
    let stream = futures_util::StreamExt::map(body.into_data_stream(), move |chunk| {
        let chunk = chunk?;
        if !ended {
            let room = (HEADERS_CAP + 4)
                .saturating_sub(seen.len())
                .min(chunk.len());
            seen.extend_from_slice(&chunk[..room]);
            ended = seen.windows(4).any(|w| w == b"\r\n\r\n");
            if !ended && seen.len() > HEADERS_CAP {
                return Err(axum::Error::new(std::io::Error::other(
                    "the form's headers are longer than 16 KiB",
                )));
            }
        }
        Ok(chunk)
    });
    Request::from_parts(parts, Body::from_stream(stream))
}

/// `POST /v1/files`: the first field of a multipart form, kept for its owner.
pub(crate) async fn upload(
    State(shared): State<Arc<Shared>>,
    request: Request,
) -> Result<Response, ServerError> {
    let user = crate::api::user_of(request.extensions())?;
    let (used, count) = shared.records.uploads_of(&user.name).await?;
    if used >= USER_QUOTA || count >= USER_FILES {
        return Err(ServerError::TooManyFiles);
    }
    let cap = shared.max_upload.min(USER_QUOTA - used);
    let mut form = Multipart::from_request(headers_bounded(request), &())
        .await
        .map_err(|e| ServerError::BadRequest(format!("a multipart form: {}", e.body_text())))?;
    let idle = crate::api::BODY_TIME;
    let mut field = tokio::time::timeout(idle, form.next_field())
        .await
        .map_err(|_| ServerError::TooSlow(idle.as_secs()))?
        .map_err(|e| too_large_or_bad(e.status(), &e.body_text(), cap))?
        .ok_or_else(|| ServerError::BadRequest("the form has no file".into()))?;
    let dir = folder(&shared.files, &user.name)
        .ok_or_else(|| ServerError::Store("a user name that is not plain".into()))?;
    tokio::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .await
        .map_err(|e| ServerError::Store(format!("the upload folder: {e}")))?;
    let id = Store::new_file_id()?;
    // Written under a temporary name, and named only once recorded.
    let part = dir.join(format!("{id}.part"));
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&part)
        .await
        .map_err(|e| ServerError::Store(format!("an upload: {e}")))?;
    let mut bytes = 0u64;
    let mut head = Vec::with_capacity(64);
    let copied: Result<(), ServerError> = async {
        // Each piece must come within 30 s: a stalled upload does not hold its task forever.
        let idle = crate::api::BODY_TIME;
        while let Some(chunk) = tokio::time::timeout(idle, field.chunk())
            .await
            .map_err(|_| ServerError::TooSlow(idle.as_secs()))?
            .map_err(|e| too_large_or_bad(e.status(), &e.body_text(), cap))?
        {
            bytes = bytes.saturating_add(chunk.len() as u64);
            if bytes > cap {
                return Err(ServerError::TooLarge(
                    usize::try_from(cap).unwrap_or(usize::MAX),
                ));
            }
            let room = 64usize.saturating_sub(head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..room]);
            file.write_all(&chunk)
                .await
                .map_err(|e| ServerError::Store(format!("an upload: {e}")))?;
        }
        // The last write's failure shows only here.
        file.flush()
            .await
            .and(file.sync_all().await)
            .map_err(|e| ServerError::Store(format!("an upload: {e}")))
    }
    .await;
    drop(file);
    let kept = match copied.and_then(|()| {
        ContentType::sniff(&head).ok_or_else(|| {
            ServerError::BadRequest("not an image, video or audio file acgs knows".into())
        })
    }) {
        Ok(kind) => keep(&shared, &user.name, id, &part, kind, bytes).await,
        Err(e) => Err(e),
    };
    match kept {
        Ok(upload) => Ok(crate::api::json(
            StatusCode::CREATED,
            &json!({"id": upload.id, "content_type": upload.content_type, "bytes": upload.bytes}),
        )),
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            Err(e)
        }
    }
}

/// Name the finished upload and record it; a file that cannot be recorded is removed.
async fn keep(
    shared: &Shared,
    user: &str,
    id: String,
    part: &Path,
    kind: ContentType,
    bytes: u64,
) -> Result<Upload, ServerError> {
    let path = part.with_extension("");
    tokio::fs::rename(part, &path)
        .await
        .map_err(|e| ServerError::Store(format!("an upload: {e}")))?;
    let upload = Upload {
        id,
        path,
        content_type: kind.mime().to_owned(),
        bytes,
    };
    if let Err(e) = shared.records.put_upload(user, &upload).await {
        let _ = tokio::fs::remove_file(&upload.path).await;
        return Err(e);
    }
    Ok(upload)
}

fn too_large_or_bad(status: StatusCode, text: &str, max: u64) -> ServerError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ServerError::TooLarge(usize::try_from(max).unwrap_or(usize::MAX))
    } else {
        ServerError::BadRequest(format!("the upload: {text}"))
    }
}

/// `GET /v1/files/{id}`: an upload, to its owner.
pub(crate) async fn download(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    request: Request,
) -> Result<Response, ServerError> {
    let user = crate::api::user_of(request.extensions())?;
    let upload = shared
        .records
        .upload(&user.name, &id)
        .await?
        .ok_or(ServerError::NotFound)?;
    stream(&upload.path, &id, &upload.content_type).await
}

/// Open `path` for reading if it is a regular file and not a link, checked on the handle.
fn open_plain(path: &Path) -> std::io::Result<(std::fs::File, u64)> {
    use fs_err::os::unix::fs::OpenOptionsExt as _;
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = fs_err::OpenOptions::new()
        .read(true)
        .custom_flags(i32::try_from(flags.bits()).unwrap_or(0))
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok((file.into_parts().0, meta.len()))
}

/// Stream the regular file at `path` as `name` (never through a link).
pub(crate) async fn stream(
    path: &Path,
    name: &str,
    content_type: &str,
) -> Result<Response, ServerError> {
    let (file, length) = open_plain(path).map_err(|_| ServerError::NotFound)?;
    let file = tokio::fs::File::from_std(file);
    let chunks = futures_util::stream::unfold(Some(file), |file| async move {
        use tokio::io::AsyncReadExt as _;
        let mut file = file?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}
