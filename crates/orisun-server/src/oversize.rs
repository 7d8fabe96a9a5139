//! Reports an oversize request as `RESOURCE_EXHAUSTED`, as gRPC-Go (and so Go Orisun) does.
//!
//! tonic rejects a message larger than the service's maximum decoding size with `OUT_OF_RANGE`
//! ("Error, decoded message length too large: ..."). Clients of Go Orisun expect
//! `RESOURCE_EXHAUSTED`, so this layer rewrites that one status (always sent in the response
//! headers, as a trailers-only response) and leaves every other response untouched.

use futures::future::{MapOk, TryFutureExt};
use tonic::codegen::http::{HeaderMap, HeaderValue, Request, Response};
use tower::{Layer, Service};

const OUT_OF_RANGE: &str = "11";
const RESOURCE_EXHAUSTED: &str = "8";
/// The start of tonic's message, as sent percent-encoded in `grpc-message`.
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large";

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
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = MapOk<S::Future, fn(Response<ResBody>) -> Response<ResBody>>;

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

fn rewrite<B>(mut response: Response<B>) -> Response<B> {
    rewrite_headers(response.headers_mut());
    response
}

fn rewrite_headers(headers: &mut HeaderMap) {
    let is_out_of_range = headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == OUT_OF_RANGE.as_bytes());
    if !is_out_of_range {
        return;
    }
    let too_large = headers
        .get("grpc-message")
        .is_some_and(|v| percent_decode(v.as_bytes()).starts_with(TONIC_TOO_LARGE));
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
