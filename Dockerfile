# syntax=docker/dockerfile:1
#
# Images of the Foundry gateway operator and the Foundry emulator.
#
#   docker build -t foundry-gateway-operator .                    # target "operator" (the default)
#   docker build --target emulator -t foundry-emulator .
#
# Both binaries come from one release build in the builder stage; the runtime stages are distroless
# (glibc, CA certificates, no shell) and run as the unprivileged user 65532.

ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-slim-bookworm AS builder
ARG RUST_VERSION
# The image's toolchain is the one rust-toolchain.toml pins; naming it skips that file's extra
# components (rustfmt, clippy), which a release build does not need.
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION}
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p foundry-gateway-operator -p foundry-gateway-emulator \
 && mkdir -p /out \
 && cp target/release/foundry-gateway-operator target/release/foundry-emulator /out/

FROM gcr.io/distroless/cc-debian12:nonroot AS emulator
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="foundry-emulator" \
      org.opencontainers.image.description="Local, offline Microsoft Foundry for bring-your-own AI gateway: ARM project connections and the project data plane" \
      org.opencontainers.image.source="https://github.com/foundry-gateway/foundry-gateway-operator" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=builder /out/foundry-emulator /usr/local/bin/foundry-emulator
# The emulator listens on loopback by default; in a container it must listen on all interfaces.
ENV FOUNDRY_EMULATOR_LISTEN=0.0.0.0:8443
EXPOSE 8443
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/foundry-emulator"]

FROM gcr.io/distroless/cc-debian12:nonroot AS operator
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="foundry-gateway-operator" \
      org.opencontainers.image.description="Kubernetes operator for Microsoft Foundry bring-your-own AI gateway" \
      org.opencontainers.image.source="https://github.com/foundry-gateway/foundry-gateway-operator" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=builder /out/foundry-gateway-operator /usr/local/bin/foundry-gateway-operator
# The admin server: /metrics, /healthz, /readyz.
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/foundry-gateway-operator"]
