//! `multipart/form-data` bodies whose file part is streamed from an opened [`LocalInput`], so a
//! large upload never sits in memory.
//!
//! Kept by hand rather than reqwest's `multipart` feature: its file parts re-open the file by
//! path (a gap between the check of the input and what is sent), and a form cannot be cloned
//! for a retry; streaming from the handle that was checked needs the framing written here (20
//! lines) either way.

use bytes::Bytes;

use acgs_core::request::LocalInput;

use crate::client::Body;

/// Bytes read from the file per chunk of the stream.
pub(crate) const FILE_CHUNK: usize = 256 * 1024;

/// A multipart form: text `fields`, then `input` as the part named `file_field`.
///
/// Field names and values are written as given (callers pass fixed names and checked values);
/// the file name is the input's, already reduced to a safe base name.
#[must_use]
pub fn multipart_form(fields: &[(&str, &str)], file_field: &str, input: &LocalInput) -> Body {
    let boundary = format!("acgs-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let mut prefix = String::new();
    for (name, value) in fields {
        prefix.push_str(&format!(
            "--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    prefix.push_str(&format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"{file_field}\"; filename=\"{}\"\r\ncontent-type: {}\r\n\r\n",
        input.file_name.replace(['"', '\r', '\n'], "_"),
        input.content_type.mime(),
    ));
    Body::File {
        prefix: Bytes::from(prefix),
        input: input.clone(),
        suffix: Bytes::from(format!("\r\n--{boundary}--\r\n")),
        content_type: format!("multipart/form-data; boundary={boundary}"),
    }
}

/// The stream of a [`Body::File`]: prefix, the file in chunks (positioned reads off the async
/// threads), suffix.
pub(crate) fn file_stream(
    prefix: Bytes,
    input: LocalInput,
    suffix: Bytes,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    use futures_util::StreamExt as _;
    let size = input.size;
    let chunks = futures_util::stream::unfold(0u64, move |offset| {
        let input = input.clone();
        async move {
            if offset >= size {
                return None;
            }
            let len = usize::try_from((size - offset).min(FILE_CHUNK as u64)).unwrap_or(FILE_CHUNK);
            let read = tokio::task::spawn_blocking(move || input.read_at(offset, len)).await;
            let chunk = match read {
                Ok(Ok(data)) if data.len() == len => Ok(Bytes::from(data)),
                Ok(Ok(_)) => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the input file shrank while it was sent",
                )),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            let next = if chunk.is_ok() {
                offset + len as u64
            } else {
                size
            };
            Some((chunk, next))
        }
    });
    futures_util::stream::once(async move { Ok(prefix) })
        .chain(chunks)
        .chain(futures_util::stream::once(async move { Ok(suffix) }))
}
