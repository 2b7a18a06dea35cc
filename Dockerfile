# syntax=docker/dockerfile:1
# Build: docker build -t refedge .
# Run:   docker run -p 8080:8080 -p 9090:9090 refedge
# HTTPS: docker run -p 80:8080 -p 443:8443 -v /etc/refedge/certs:/certs:ro \
#          -e REFEDGE_TLS_LISTEN=0.0.0.0:8443 -e REFEDGE_TLS_CERT_DIR=/certs \
#          -e REFEDGE_TLS_HTTPS_PORT=443 refedge

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# librdkafka (bundled by the rdkafka crate) is C and C++ built with cmake.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake g++ make pkg-config \
    && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin refedge \
    && mkdir -p /out/spool \
    && cp target/release/refedge /out/refedge

# glibc runtime without a shell or package manager, running as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/refedge /usr/local/bin/refedge
COPY config /etc/refedge
COPY --from=build --chown=65532:65532 /out/spool /var/lib/refedge/spool
RUN ["/usr/local/bin/refedge", "--version"]
ENV REFEDGE_SERVER_LISTEN=0.0.0.0:8080 \
    REFEDGE_ADMIN_LISTEN=0.0.0.0:9090 \
    REFEDGE_LINKS_FILE=/etc/refedge/links.jsonl \
    REFEDGE_EVENTS_SPOOL_DIR=/var/lib/refedge/spool
USER 65532:65532
EXPOSE 8080 8443 9090
VOLUME ["/var/lib/refedge/spool"]
ENTRYPOINT ["/usr/local/bin/refedge"]
CMD ["serve", "--config", "/etc/refedge/refedge.toml"]
