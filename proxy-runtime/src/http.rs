//! HTTP plumbing shared by both directions: the response body type, local replies, hop-by-hop
//! header handling and the matcher's view of a request.

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use mesh_artifact::RequestParts;

/// Body of every response (and upstream request) the proxy produces: either streamed through
/// from a peer, or a short local reply. An enum rather than a boxed trait object, so forwarding
/// allocates nothing for the body.
#[derive(Debug)]
pub enum ProxyBody {
    Empty,
    Full(Option<Bytes>),
    /// The caller's request body, streamed through (made by [`ProxyBody::from_caller`]).
    Incoming(Incoming, BodyFailed),
    /// A response body from a pooled upstream connection.
    Upstream(crate::upstream::UpstreamBody),
}

impl ProxyBody {
    pub fn text(text: &'static str) -> Self {
        ProxyBody::Full(Some(Bytes::from_static(text.as_bytes())))
    }

    /// The caller's request body to stream upstream, and the flag that tells afterwards whether
    /// reading it failed.
    pub fn from_caller(body: Incoming) -> (Self, BodyFailed) {
        let failed = BodyFailed::watching(&body);
        (ProxyBody::Incoming(body, failed.clone()), failed)
    }
}

/// Set when reading the caller's request body fails while it is streamed upstream (malformed
/// chunked framing, a caller gone mid-upload). The upstream then reports an error too (HTTP/1
/// and HTTP/2 each in their own way); this flag says the fault was the caller's, so the answer
/// is 400 and the upstream is not blamed. A body that is already complete (a `GET`) cannot
/// fail and gets no flag, so the common request allocates nothing for it.
#[derive(Clone, Debug, Default)]
pub struct BodyFailed(Option<Arc<AtomicBool>>);

impl BodyFailed {
    fn watching(body: &Incoming) -> Self {
        BodyFailed((!body.is_end_stream()).then(|| Arc::new(AtomicBool::new(false))))
    }

    pub fn get(&self) -> bool {
        self.0.as_ref().is_some_and(|f| f.load(Ordering::Relaxed))
    }

    fn set(&self) {
        if let Some(f) = &self.0 {
            f.store(true, Ordering::Relaxed);
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Empty => Poll::Ready(None),
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Incoming(i, failed) => {
                let frame = Pin::new(i).poll_frame(cx);
                if let Poll::Ready(Some(Err(_))) = &frame {
                    failed.set();
                }
                frame
            }
            ProxyBody::Upstream(u) => Pin::new(u).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Empty => true,
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Incoming(i, _) => i.is_end_stream(),
            ProxyBody::Upstream(u) => u.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Empty => SizeHint::with_exact(0),
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Incoming(i, _) => i.size_hint(),
            ProxyBody::Upstream(u) => u.size_hint(),
        }
    }
}

/// Header naming which part of the proxy produced a local reply.
pub const LOCAL_REPLY: HeaderName = HeaderName::from_static("x-mesh-proxy");

/// A short plain-text reply produced by the proxy itself. `reason` is a fixed token, never
/// request data or policy text.
pub fn local_reply(status: StatusCode, reason: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::text(reason));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(LOCAL_REPLY, HeaderValue::from_static("local-reply"));
    r
}

/// The reply to a request whose body turned out malformed (or was cut off) after its head was
/// forwarded: the caller's fault, so 400 rather than a gateway error.
pub const BAD_REQUEST_BODY: &str = "mesh-proxy: malformed or incomplete request body\n";

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Hop-by-hop headers (RFC 9110 section 7.6.1, plus the proxy ones in common use).
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    KEEP_ALIVE,
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Remove hop-by-hop headers, including those the `Connection` header names. `TE: trailers`
/// is kept (gRPC needs it); any other `TE` is dropped. A message that came with a
/// `Transfer-Encoding` loses its `Content-Length` too (RFC 9112, section 6.3, 3: the body was
/// framed by the transfer coding, and a sender must remove the received length before
/// forwarding; left in, it would frame the re-encoded body wrongly, truncating it).
///
/// One pass over the names first: most messages carry none of these headers, and the usual
/// one, `Connection: keep-alive` (nginx sends it on every response), costs two removals.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let (mut connection, mut te, mut other, mut coded) = (false, false, false, false);
    for name in headers.keys() {
        if name == header::CONNECTION {
            connection = true;
        } else if name == header::TE {
            te = true;
        } else if HOP_BY_HOP.contains(name) {
            other = true;
            coded |= name == header::TRANSFER_ENCODING;
        }
    }
    if connection {
        if headers.get_all(header::CONNECTION).iter().nth(1).is_none() {
            if let Some(value) = headers.remove(header::CONNECTION) {
                remove_named(headers, &value);
            }
        } else {
            let values: Vec<HeaderValue> = headers
                .get_all(header::CONNECTION)
                .iter()
                .cloned()
                .collect();
            headers.remove(header::CONNECTION);
            for v in &values {
                remove_named(headers, v);
            }
        }
    }
    if other {
        for h in &HOP_BY_HOP {
            headers.remove(h);
        }
        if coded {
            headers.remove(header::CONTENT_LENGTH);
        }
    }
    if te
        && let Some(v) = headers.get(header::TE)
        && !v.as_bytes().eq_ignore_ascii_case(b"trailers")
    {
        headers.remove(header::TE);
    }
}

/// Remove the headers a `Connection` value names.
fn remove_named(headers: &mut HeaderMap, value: &HeaderValue) {
    let Ok(text) = value.to_str() else { return };
    for token in text.split(',').map(str::trim) {
        // `keep-alive` (on nearly every response of nginx and others) names a header that is
        // hop-by-hop anyway: `strip_hop_by_hop` removes it with the others when it is present,
        // so it costs no lookup here.
        if token.is_empty()
            || token.eq_ignore_ascii_case("close")
            || token.eq_ignore_ascii_case("keep-alive")
        {
            continue;
        }
        if let Ok(n) = HeaderName::from_bytes(token.as_bytes()) {
            headers.remove(n);
        }
    }
}

/// The matcher's view of a request's head; borrows, never allocates.
pub struct ReqView<'a> {
    parts: &'a Parts,
}

impl<'a> ReqView<'a> {
    pub fn new(parts: &'a Parts) -> Self {
        ReqView { parts }
    }
}

impl RequestParts for ReqView<'_> {
    fn method(&self) -> &str {
        self.parts.method.as_str()
    }
    fn path(&self) -> &str {
        self.parts.uri.path()
    }
    fn query(&self) -> Option<&str> {
        self.parts.uri.query()
    }
    fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        field_value(&self.parts.headers, name)
    }
}

/// The value of a header as routing and policy read it: borrowed when the name is on one line
/// (no allocation), the lines' values joined in order when it repeats (RFC 9110 section 5.3;
/// `; ` for `cookie`, RFC 9113 section 8.2.3), so that neither sees only the first of the lines
/// the application receives. `None` when absent, or when a line's value is not visible ASCII.
pub fn field_value<'a, K>(headers: &'a HeaderMap, name: K) -> Option<Cow<'a, str>>
where
    K: header::AsHeaderName + AsRef<str>,
{
    let separator = mesh_artifact::field_separator(name.as_ref());
    mesh_artifact::combine_field_lines(
        separator,
        headers.get_all(name).iter().map(|v| v.to_str().ok()),
    )
}

/// A request no proxy may forward as it came, answered locally instead (both listeners, before
/// routing or authorization):
/// - more than one `Host` (RFC 9112, section 3.2): the proxy would route and authorize by one
///   and the application could read the other;
/// - userinfo (`user@`) in `Host` or in the target's authority (RFC 9110, sections 4.2.4 and
///   7.2): the mesh routes by the host after the `@`, an application may take the whole value;
/// - a standard method not in upper case (`post`): routes and policies see another method
///   (RFC 9110, section 9.1), an application that upper-cases methods (Flask) runs `POST`;
/// - a `Transfer-Encoding` with a coding other than `chunked` (RFC 9112, section 6.1, 501): the
///   body would reach the application re-framed as plain chunked, its coding silently lost.
///
/// One pass over the headers (a few names, compared as enum values) rather than a hash lookup
/// per name: this runs on every request.
pub fn refuse_ambiguous(parts: &Parts) -> Option<Response<ProxyBody>> {
    let (mut hosts, mut userinfo, mut other_coding) = (0, false, false);
    for (name, value) in &parts.headers {
        if name == header::HOST {
            hosts += 1;
            userinfo |= value.as_bytes().contains(&b'@');
        } else if name == header::TRANSFER_ENCODING {
            other_coding |= value
                .as_bytes()
                .split(|b| *b == b',')
                .any(|coding| !coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
    }
    if hosts > 1 {
        return Some(local_reply(
            StatusCode::BAD_REQUEST,
            "mesh-proxy: more than one host header\n",
        ));
    }
    if userinfo
        || parts
            .uri
            .authority()
            .is_some_and(|a| a.as_str().contains('@'))
    {
        return Some(local_reply(
            StatusCode::BAD_REQUEST,
            "mesh-proxy: userinfo in the request's authority\n",
        ));
    }
    if miscased(&parts.method) {
        return Some(local_reply(
            StatusCode::BAD_REQUEST,
            "mesh-proxy: a standard method not in upper case (methods are case-sensitive)\n",
        ));
    }
    if other_coding {
        return Some(local_reply(
            StatusCode::NOT_IMPLEMENTED,
            "mesh-proxy: transfer coding other than chunked\n",
        ));
    }
    None
}

/// A standard method spelt in other case (`post`): see [`mesh_artifact::miscased_method`]. hyper
/// parses the standard spellings into constants, so a usual request costs one comparison.
fn miscased(method: &Method) -> bool {
    const COMMON: [Method; 4] = [Method::GET, Method::POST, Method::PUT, Method::HEAD];
    !COMMON.contains(method) && mesh_artifact::miscased_method(method.as_str()).is_some()
}

/// The authority a request is addressed to: the request target's authority in absolute form
/// (`curl -x`, `HTTP_PROXY`) and HTTP/2, else the `Host` header.
pub fn request_authority(parts: &Parts) -> Option<&str> {
    if let Some(a) = parts.uri.authority() {
        return Some(a.as_str());
    }
    parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
}

/// Status class label, `1xx` to `5xx`, as an index 0..=4.
pub fn status_class(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::Request;

    fn refused(req: hyper::http::request::Builder) -> Option<u16> {
        let (parts, ()) = req.body(()).unwrap().into_parts();
        refuse_ambiguous(&parts).map(|r| r.status().as_u16())
    }

    #[test]
    fn ambiguous_requests_are_refused() {
        let get = || Request::get("/x");
        assert_eq!(refused(get().header("host", "a")), None);
        assert_eq!(
            refused(get()),
            None,
            "no host is the router's 400, not this one"
        );
        assert_eq!(
            refused(get().header("host", "a").header("host", "a")),
            Some(400)
        );
        assert_eq!(
            refused(get().header("host", "a").header("Host", "b")),
            Some(400)
        );
        // absolute form over HTTP/1.1: the target's authority wins and Host is replaced
        assert_eq!(
            refused(Request::get("http://a/x").header("host", "b")),
            None
        );
        assert_eq!(refused(get().header("host", "u@a")), Some(400));
        assert_eq!(refused(get().header("host", "u:p@a:80")), Some(400));
        assert_eq!(
            refused(Request::get("http://u:p@a/x").header("host", "a")),
            Some(400)
        );
        let post = || Request::post("/x").header("host", "a");
        assert_eq!(refused(post().header("transfer-encoding", "chunked")), None);
        assert_eq!(
            refused(post().header("transfer-encoding", " Chunked ")),
            None
        );
        for te in ["gzip, chunked", "chunked, chunked,gzip", "identity", ""] {
            assert_eq!(
                refused(post().header("transfer-encoding", te)),
                Some(501),
                "{te:?}"
            );
        }
        assert_eq!(
            refused(
                post()
                    .header("transfer-encoding", "gzip")
                    .header("transfer-encoding", "chunked")
            ),
            Some(501)
        );
    }

    #[test]
    fn hop_by_hop_headers_and_connection_named_ones_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::TE, HeaderValue::from_static("gzip"));
        h.insert("x-keep", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h.get("x-keep").unwrap(), "yes");

        let mut h = HeaderMap::new();
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.get(header::TE).unwrap(), "trailers");

        // Several `Connection` headers, each naming headers; hop-by-hop headers no
        // `Connection` names; a message without any.
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("close, x-one"));
        h.append(header::CONNECTION, HeaderValue::from_static("X-Two"));
        h.insert("x-one", HeaderValue::from_static("1"));
        h.insert("x-two", HeaderValue::from_static("2"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().collect::<Vec<_>>(), [header::CONTENT_LENGTH]);

        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::SERVER, HeaderValue::from_static("nginx"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().collect::<Vec<_>>(), [header::SERVER]);
        let before = h.clone();
        strip_hop_by_hop(&mut h);
        assert_eq!(h, before);
    }

    #[test]
    fn a_transfer_encoding_takes_the_content_length_with_it() {
        // RFC 9112, section 6.3 (3): the received length goes before forwarding.
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("100"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::SERVER, HeaderValue::from_static("app"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().collect::<Vec<_>>(), [header::SERVER]);

        // Every received length goes, next to other hop-by-hop headers.
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.append(header::CONTENT_LENGTH, HeaderValue::from_static("7"));
        h.append(header::CONTENT_LENGTH, HeaderValue::from_static("7"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        strip_hop_by_hop(&mut h);
        assert!(h.is_empty(), "{h:?}");

        // Without a transfer coding, the length stays, whatever else is stripped.
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().collect::<Vec<_>>(), [header::CONTENT_LENGTH]);
    }

    #[test]
    fn authority_prefers_absolute_form() {
        let (p, _) = Request::get("http://b.ns:8080/x")
            .header("host", "other")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(request_authority(&p), Some("b.ns:8080"));
        let (p, _) = Request::get("/x")
            .header("host", "b.ns")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(request_authority(&p), Some("b.ns"));
        let (p, _) = Request::get("/x").body(()).unwrap().into_parts();
        assert_eq!(request_authority(&p), None);
    }

    #[test]
    fn req_view_reads_parts() {
        let (p, _) = Request::post("/a/b?x=1")
            .header("X-Env", "canary")
            .body(())
            .unwrap()
            .into_parts();
        let v = ReqView::new(&p);
        assert_eq!(v.method(), "POST");
        assert_eq!(v.path(), "/a/b");
        assert_eq!(v.query(), Some("x=1"));
        assert!(matches!(v.header("x-env"), Some(Cow::Borrowed("canary"))));
        assert_eq!(v.header("x-other"), None);

        // Repeated lines: one value, in order; cookies with `; `.
        let (p, _) = Request::get("/")
            .header("x-debug", "0")
            .header("accept", "*/*")
            .header("X-Debug", "1")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .body(())
            .unwrap()
            .into_parts();
        let v = ReqView::new(&p);
        assert_eq!(v.header("x-debug").as_deref(), Some("0, 1"));
        assert_eq!(v.header("cookie").as_deref(), Some("a=1; b=2"));
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(101), 0);
        assert_eq!(status_class(204), 1);
        assert_eq!(status_class(302), 2);
        assert_eq!(status_class(404), 3);
        assert_eq!(status_class(503), 4);
    }
}
