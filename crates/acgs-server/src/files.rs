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

/// `user`'s upload folder under `root`.
pub(crate) fn folder(root: &Path, user: &str) -> PathBuf {
    root.join(user)
}

/// `POST /v1/files`: the first field of a multipart form, kept for its owner.
pub(crate) async fn upload(
    State(shared): State<Arc<Shared>>,
    request: Request,
) -> Result<Response, ServerError> {
    let user = crate::api::user_of(request.extensions())?;
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|e| ServerError::BadRequest(format!("a multipart form: {}", e.body_text())))?;
    let mut field = form
        .next_field()
        .await
        .map_err(|e| too_large_or_bad(e.status(), &e.body_text(), shared.max_upload))?
        .ok_or_else(|| ServerError::BadRequest("the form has no file".into()))?;
    let dir = folder(&shared.files, &user.name);
    tokio::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .await
        .map_err(|e| ServerError::Store(format!("the upload folder: {e}")))?;
    let id = Store::new_file_id()?;
    let path = dir.join(&id);
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .await
        .map_err(|e| ServerError::Store(format!("an upload: {e}")))?;
    let mut bytes = 0u64;
    let mut head = Vec::with_capacity(64);
    let copied: Result<(), ServerError> = async {
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| too_large_or_bad(e.status(), &e.body_text(), shared.max_upload))?
        {
            bytes = bytes.saturating_add(chunk.len() as u64);
            if bytes > shared.max_upload {
                return Err(ServerError::TooLarge(
                    usize::try_from(shared.max_upload).unwrap_or(usize::MAX),
                ));
            }
            let room = 64usize.saturating_sub(head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..room]);
            file.write_all(&chunk)
                .await
                .map_err(|e| ServerError::Store(format!("an upload: {e}")))?;
        }
        Ok(())
    }
    .await;
    drop(file);
    let kind = copied.and_then(|()| {
        ContentType::sniff(&head).ok_or_else(|| {
            ServerError::BadRequest("not an image, video or audio file acgs knows".into())
        })
    });
    let kind = match kind {
        Ok(kind) => kind,
        Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
    };
    let upload = Upload {
        id,
        path,
        content_type: kind.mime().to_owned(),
        bytes,
    };
    shared.store.put_upload(&user.name, &upload)?;
    Ok(crate::api::json(
        StatusCode::CREATED,
        &json!({"id": upload.id, "content_type": upload.content_type, "bytes": upload.bytes}),
    ))
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
        .store
        .upload(&user.name, &id)?
        .ok_or(ServerError::NotFound)?;
    stream(&upload.path, &id, &upload.content_type).await
}

/// Stream the regular file at `path` as `name` (never through a link).
pub(crate) async fn stream(
    path: &Path,
    name: &str,
    content_type: &str,
) -> Result<Response, ServerError> {
    let meta = tokio::fs::symlink_metadata(path)
        .await
        .map_err(|_| ServerError::NotFound)?;
    if !meta.is_file() {
        return Err(ServerError::NotFound);
    }
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|_| ServerError::NotFound)?;
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
            (header::CONTENT_LENGTH, meta.len().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}
