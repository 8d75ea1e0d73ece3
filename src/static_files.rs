//! The official Faye browser client, served from `--client-js DIR` as Faye's StaticServer does
//! (spec 1.3): looked up by basename, `client.js` and `<mount basename>.js` as aliases of
//! `faye-browser-min.js`, an unquoted SHA-1 ETag, Last-Modified, and 304 on a match.

use crate::http::response::{Response, fmt_http_date, parse_http_date};
use bytes::Bytes;
use sha1::{Digest, Sha1};
use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;

pub struct StaticFile {
    body: Bytes,
    etag: String,
    modified: SystemTime,
    content_type: &'static str,
}

#[derive(Default)]
pub struct StaticFiles {
    files: HashMap<String, StaticFile>,
}

impl StaticFiles {
    /// Reads every `.js` and `.map` file of `dir` into memory once.
    pub fn load(dir: Option<&Path>) -> std::io::Result<StaticFiles> {
        let mut files = HashMap::new();
        let Some(dir) = dir else {
            return Ok(StaticFiles { files });
        };
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let content_type = if name.ends_with(".js") {
                "text/javascript; charset=utf-8"
            } else if name.ends_with(".map") {
                "application/json; charset=utf-8"
            } else {
                continue;
            };
            let body = std::fs::read(entry.path())?;
            let etag = Sha1::digest(&body)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let modified = entry.metadata()?.modified()?;
            files.insert(
                name,
                StaticFile {
                    body: body.into(),
                    etag,
                    modified,
                    content_type,
                },
            );
        }
        Ok(StaticFiles { files })
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The response for a claimed path ending in `.js` or `.map` under `mount`.
    pub fn respond(
        &self,
        path: &str,
        mount: &str,
        if_none_match: Option<&str>,
        if_modified_since: Option<&str>,
    ) -> Response {
        let base = path.rsplit('/').next().unwrap_or_default();
        let mount_alias = format!("{}.js", mount.rsplit('/').next().unwrap_or_default());
        let name = if base == "client.js" || base == mount_alias {
            "faye-browser-min.js"
        } else {
            base
        };
        let Some(file) = self.files.get(name) else {
            return Response::new(404);
        };
        let modified = fmt_http_date(file.modified);
        let not_modified = if_none_match.is_some_and(|e| e == file.etag)
            || if_modified_since
                .and_then(parse_http_date)
                .is_some_and(|since| {
                    let secs = |t: SystemTime| {
                        t.duration_since(SystemTime::UNIX_EPOCH)
                            .map(|d| d.as_secs())
                            .unwrap_or(0)
                    };
                    secs(since) >= secs(file.modified)
                });
        if not_modified {
            return Response::new(304)
                .header("ETag", &file.etag)
                .header("Last-Modified", modified);
        }
        Response::new(200)
            .header("Content-Type", file.content_type)
            .header("ETag", &file.etag)
            .header("Last-Modified", modified)
            .body(file.body.clone())
    }
}
