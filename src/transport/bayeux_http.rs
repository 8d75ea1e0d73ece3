//! Bayeux over plain HTTP requests (spec 1.2 and 2.1 to 2.5): static client files, CORS
//! preflight, EventSource hand-off, JSON-P GET, JSON and form POST.

use crate::bayeux::json::BodyError;
use crate::http::Head;
use crate::http::form::{jsonp_escape, param, valid_jsonp_callback};
use crate::http::response::{Lines, Response, bad_request, plain};
use crate::shard::{Node, Peer, RequestBody, Via};
use std::net::IpAddr;
use std::rc::Rc;

/// What a request turned into.
pub enum Outcome {
    Reply(Response),
    /// Switch this connection to an EventSource stream for the clientId.
    EventSource {
        mount: usize,
        client_id: String,
    },
}

const JSONP_DEFAULT: &str = "jsonpcallback";

/// Answers one request to `mount`; `path` is `head.path()`, already read.
pub async fn respond(
    node: &Rc<Node>,
    mount: usize,
    head: &Head,
    path: &str,
    body: RequestBody,
    ip: Option<IpAddr>,
) -> Outcome {
    let settings = &node.settings;
    let auth = &settings.policy(mount).auth;
    let method = head.method();
    if path.ends_with(".js") || path.ends_with(".map") {
        let mount_path = &settings.mounts[mount];
        let resp = settings.client_files.respond(
            path,
            mount_path,
            head.header_str("if-none-match"),
            head.header_str("if-modified-since"),
        );
        return Outcome::Reply(resp);
    }
    if !auth.origin_ok(head.header_str("origin")) {
        return Outcome::Reply(plain(403, "Origin not allowed"));
    }
    if method == "OPTIONS" || head.header_str("access-control-request-method") == Some("POST") {
        return Outcome::Reply(preflight(head));
    }
    if method == "GET" && head.has_token("accept", "text/event-stream") {
        let target = match head.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        };
        let client_id = target.rsplit('/').next().unwrap_or_default().to_owned();
        return Outcome::EventSource { mount, client_id };
    }
    let peer = super::peer_of(node, mount, head, ip);
    let reply = match method {
        "GET" => jsonp(node, mount, head, peer).await,
        "POST" => post(node, mount, head, body, peer).await,
        _ => Err(BodyError::NotJson),
    };
    Outcome::Reply(reply.unwrap_or_else(refused))
}

/// The 400 of a body that is not a batch, saying why when it is a limit.
fn refused(e: BodyError) -> Response {
    match e {
        BodyError::TooMany => plain(400, "Too many messages in one request"),
        BodyError::TooDeep => plain(400, "JSON nested too deeply"),
        _ => bad_request(),
    }
}

fn preflight(head: &Head) -> Response {
    let origin = head
        .header_str("origin")
        .or_else(|| head.header_str("referer"))
        .unwrap_or("*");
    Response::new(200)
        .header("Access-Control-Allow-Credentials", "true")
        .header(
            "Access-Control-Allow-Headers",
            "Accept, Authorization, Content-Type, Pragma, X-Requested-With",
        )
        .header("Access-Control-Allow-Methods", "POST, GET")
        .header("Access-Control-Allow-Origin", origin)
        .header("Access-Control-Max-Age", "86400")
}

/// The headers of every processed Bayeux response (spec 2.1), for JSON and for JSON-P.
macro_rules! bayeux_lines {
    ($content_type:literal) => {
        Lines::new(concat!(
            "Content-Type: ",
            $content_type,
            "\r\nCache-Control: no-cache, no-store\r\nX-Content-Type-Options: nosniff\r\n"
        ))
    };
}
const JSON_HEADERS: Lines = bayeux_lines!("application/json; charset=utf-8");
const JSONP_HEADERS: Lines = bayeux_lines!("text/javascript; charset=utf-8");

/// A processed Bayeux response (spec 2.1): `lines` is `JSON_HEADERS` or `JSONP_HEADERS`.
fn bayeux_response(head: &Head, lines: Lines, body: Vec<u8>) -> Response {
    let mut resp = Response::new(200).fixed(lines);
    if let Some(origin) = head.header_str("origin") {
        resp = resp
            .header("Access-Control-Allow-Credentials", "true")
            .header("Access-Control-Allow-Origin", origin);
    }
    resp.body(body)
}

/// Request bodies become UTF-8 the way Node decodes them: invalid sequences turn into U+FFFD.
fn lossy(body: RequestBody) -> RequestBody {
    // The SIMD check: a body is checked whole on every request.
    if simdutf8::basic::from_utf8(&body).is_ok() {
        return body;
    }
    String::from_utf8_lossy(&body)
        .into_owned()
        .into_bytes()
        .into()
}

async fn run(
    node: &Rc<Node>,
    mount: usize,
    json: RequestBody,
    peer: Peer,
) -> Result<Vec<u8>, BodyError> {
    node.process(mount, lossy(json), Via::Http, peer).await
}

async fn jsonp(
    node: &Rc<Node>,
    mount: usize,
    head: &Head,
    peer: Peer,
) -> Result<Response, BodyError> {
    let query = head.query().unwrap_or_default().as_bytes();
    let message = param(query, "message").ok_or(BodyError::NotJson)?;
    let callback = param(query, "jsonp")
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| JSONP_DEFAULT.to_owned());
    if !valid_jsonp_callback(&callback) {
        return Err(BodyError::NotJson);
    }
    let reply = run(node, mount, message.into_bytes().into(), peer).await?;
    let reply = String::from_utf8_lossy(&reply);
    let body = format!("/**/{callback}({});", jsonp_escape(&reply));
    Ok(bayeux_response(head, JSONP_HEADERS, body.into_bytes())
        .header("Content-Disposition", "attachment; filename=f.txt"))
}

/// `application/json` whatever the case and spacing (Faye is stricter by accident, spec 11.13).
fn is_json(head: &Head) -> bool {
    head.header("content-type").is_some_and(|ct| {
        if ct == b"application/json" {
            return true; // what the Faye clients send, checked without case folding
        }
        let media_type = &ct[..memchr::memchr(b';', ct).unwrap_or(ct.len())];
        media_type
            .trim_ascii()
            .eq_ignore_ascii_case(b"application/json")
    })
}

async fn post(
    node: &Rc<Node>,
    mount: usize,
    head: &Head,
    body: RequestBody,
    peer: Peer,
) -> Result<Response, BodyError> {
    let json = if is_json(head) {
        body
    } else {
        if param(&body, "jsonp").is_some_and(|c| !c.is_empty() && !valid_jsonp_callback(&c)) {
            return Err(BodyError::NotJson);
        }
        param(&body, "message")
            .ok_or(BodyError::NotJson)?
            .into_bytes()
            .into()
    };
    let reply = run(node, mount, json, peer).await?;
    Ok(bayeux_response(head, JSON_HEADERS, reply))
}
