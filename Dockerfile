# syntax=docker/dockerfile:1

# Build: scripts/build.sh is the one build command, shared with the test
# that checks the binary is static and runs it as a non-root user.
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#                --build-arg COMMIT=$(git rev-parse HEAD) -t zautic-forwarder .
ARG GO_VERSION=1.26
FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    VERSION="$VERSION" COMMIT="$COMMIT" sh scripts/build.sh /out/zautic-forwarder \
    && mkdir -p /out/data

# Run: no shell, no package manager, uid 65532. The root filesystem can be
# read-only: the forwarder writes nothing but the embedded nats-server's
# store, which lives on the /data volume (unused with an external nats.url).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/zautic-forwarder /zautic-forwarder
COPY --from=build --chown=65532:65532 /out/data /data
ENV FORWARDER_NATS_EMBEDDED_STORE_DIR=/data
VOLUME ["/data"]
# Numeric, so that Kubernetes can verify runAsNonRoot without a passwd file.
USER 65532:65532
# 8080: webhooks (http.addr). 9090: probes, metrics, pprof (admin.addr).
EXPOSE 8080 9090
ENTRYPOINT ["/zautic-forwarder"]
CMD ["serve"]
