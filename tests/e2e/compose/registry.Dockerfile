# The compose test's upstream: Debian's docker-registry (distribution v2),
# built from the same local Debian base as the kit.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-registry \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY registry.yml /etc/docker/registry/config.yml
USER docker-registry
EXPOSE 5000
CMD ["docker-registry", "serve", "/etc/docker/registry/config.yml"]
