//! Reports an oversize message as `RESOURCE_EXHAUSTED`, as gRPC-Go (and so Go Orisun) does.
//!
//! tonic rejects a request larger than the service's maximum decoding size, and a response
//! larger than its maximum encoding size, with `OUT_OF_RANGE` ("Error, decoded/encoded message
//! length too large: ..."). Clients of Go Orisun expect `RESOURCE_EXHAUSTED`, so this layer
//! rewrites exactly those statuses, whether they travel in the response headers (a rejected
//! request: trailers-only response) or in the trailers (a response that grew too large), and
//! leaves everything else untouched.

use futures::future::{MapOk, TryFutureExt};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::codegen::http::{HeaderMap, HeaderValue, Request, Response};
use tower::{Layer, Service};

const OUT_OF_RANGE: &str = "11";
const RESOURCE_EXHAUSTED: &str = "8";
/// The starts of tonic's messages, as sent percent-encoded in `grpc-message`.
const TONIC_TOO_LARGE: [&str; 2] = [
    "Error, decoded message length too large",
    "Error, encoded message length too large",
];

/// The layer; see the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct OversizeLayer;

impl<S> Layer<S> for OversizeLayer {
    type Service = Oversize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Oversize { inner }
    }
}

/// The service built by [`OversizeLayer`].
#[derive(Debug, Clone)]
pub struct Oversize<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Oversize<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<OversizeBody<ResBody>>;
    type Error = S::Error;
    type Future = MapOk<S::Future, fn(Response<ResBody>) -> Response<OversizeBody<ResBody>>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        self.inner.call(request).map_ok(rewrite::<ResBody>)
    }
}

fn rewrite<B>(mut response: Response<B>) -> Response<OversizeBody<B>> {
    rewrite_headers(response.headers_mut());
    response.map(|inner| OversizeBody { inner })
}

/// A response body whose trailers get the same rewrite as the headers.
#[derive(Debug)]
pub struct OversizeBody<B> {
    inner: B,
}

impl<B> Body for OversizeBody<B>
where
    B: Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx).map(|frame| {
            frame.map(|frame| {
                frame.map(|mut frame| {
                    if let Some(trailers) = frame.trailers_mut() {
                        rewrite_headers(trailers);
                    }
                    frame
                })
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn rewrite_headers(headers: &mut HeaderMap) {
    let is_out_of_range = headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == OUT_OF_RANGE.as_bytes());
    if !is_out_of_range {
        return;
    }
    let too_large = headers.get("grpc-message").is_some_and(|v| {
        let message = percent_decode(v.as_bytes());
        TONIC_TOO_LARGE.iter().any(|p| message.starts_with(p))
    });
    if too_large {
        headers.insert("grpc-status", HeaderValue::from_static(RESOURCE_EXHAUSTED));
    }
}

/// Decodes `%XX` escapes (the encoding of `grpc-message`); invalid escapes are kept as-is.
fn percent_decode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(byte) = hex {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_the_oversize_status() {
        let mut h = HeaderMap::new();
        h.insert("grpc-status", HeaderValue::from_static("11"));
        h.insert(
            "grpc-message",
            HeaderValue::from_static("Error,%20decoded%20message%20length%20too%20large:%20found"),
        );
        rewrite_headers(&mut h);
        assert_eq!(h["grpc-status"], "8");

        let mut other = HeaderMap::new();
        other.insert("grpc-status", HeaderValue::from_static("11"));
        other.insert("grpc-message", HeaderValue::from_static("something%20else"));
        rewrite_headers(&mut other);
        assert_eq!(other["grpc-status"], "11");
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode(b"a%20b%2"), "a b%2");
        assert_eq!(percent_decode(b"%zz"), "%zz");
    }
}
