# Multi-stage build: the official Swift image compiles, a slim Debian image runs.
FROM swift:6.2-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libhiredis-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
# The demo page is a resource bundle, which the binary finds beside itself.
RUN swift build -c release --product sse-broker --static-swift-stdlib \
    && cp "$(swift build -c release --show-bin-path)/sse-broker" /usr/local/bin/sse-broker \
    && cp -R "$(swift build -c release --show-bin-path)/swift-sse-broker_SSEDemo.resources" /usr/local/bin/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libhiredis0.14 ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home sse
COPY --from=build /usr/local/bin/sse-broker /usr/local/bin/sse-broker
COPY --from=build /usr/local/bin/swift-sse-broker_SSEDemo.resources /usr/local/bin/swift-sse-broker_SSEDemo.resources
USER sse
ENV HOST=0.0.0.0 PORT=5000
EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=2s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/5000"]
ENTRYPOINT ["/usr/local/bin/sse-broker"]
