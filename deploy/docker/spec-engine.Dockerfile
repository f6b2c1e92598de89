# syntax=docker/dockerfile:1
# Container image for `spec-engine`. Build from the repository root:
#   docker build -f deploy/docker/spec-engine.Dockerfile -t spec-engine:dev .
#
# The build stage runs the same steps as CI (`make deps configure build`):
# scripts/install-deps.sh, then the CMake preset "default". tests/unit/deploy
# fails when these drift apart.

FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive \
    DEPS_PROFILE=build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY CMakeLists.txt CMakePresets.json ./
COPY src src
COPY tests tests
COPY bench bench
COPY migrations migrations
COPY config config
RUN cmake --preset default && cmake --build --preset default --target spec-engine

FROM debian:12 AS runtime
# Runtime libraries only (the -dev packages stay in the build stage); curl is
# for HEALTHCHECK.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates curl \
      libboost-system1.81.0 libboost-url1.81.0 \
      libsoci-core4.0 libsoci-sqlite3-4.0 libsoci-postgresql4.0 libsqlite3-0 libpq5 \
      libsodium23 libjwt0 libssl3 \
      libspdlog1.10 libfmt9 libyaml-cpp0.7 libnats3.4 libjemalloc2 \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /var/lib/agentic-ide \
      --no-create-home --shell /usr/sbin/nologin app \
 && install -d -o app -g app -m 0750 /var/lib/agentic-ide
COPY --from=build /src/build/bin/spec-engine /usr/local/bin/spec-engine
COPY --from=build /src/migrations /usr/share/agentic-ide/migrations
COPY --from=build /src/config /usr/share/agentic-ide/config
ENV SPEC_ENGINE_HOST=0.0.0.0 \
    SPEC_ENGINE_PORT=8000 \
    SPEC_ENGINE_DATA_DIR=/var/lib/agentic-ide
WORKDIR /var/lib/agentic-ide
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=15s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8000/health || exit 1
ENTRYPOINT ["/usr/local/bin/spec-engine"]
