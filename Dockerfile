# Orisun server image: a build stage that compiles the binary with scripts/build-release (the
# script the test suite also runs), and a small runtime stage that runs it as a non-root user.
#
#   docker build -t orisun .
#   docker run -p 5005:5005 -p 8991:8991 -v orisun-data:/var/lib/orisun orisun

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN scripts/build-release --profile release /out

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/orisun --create-home orisun
COPY --from=build /out/orisun /usr/local/bin/orisun
USER orisun
WORKDIR /var/lib/orisun
ENV ORISUN_DATA_DIR=/var/lib/orisun/data \
    ORISUN_HOST=0.0.0.0 \
    ORISUN_GRPC_PORT=5005 \
    ORISUN_ADMIN_PORT=8991
VOLUME ["/var/lib/orisun"]
EXPOSE 5005 8991
# Readiness from the admin port, with bash alone (no curl in the image): started, not stopping,
# and the store answering. With admin TLS enabled, point a TLS-capable probe at /ready instead.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${ORISUN_ADMIN_PORT} && printf 'GET /ready HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["orisun"]
CMD ["serve"]
