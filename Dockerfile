# acgs in a container: built from source, run as an unprivileged user, with no keys inside.
#
#   docker build -t acgs .
#   docker run --rm -e FAL_KEY -v "$PWD/work:/work" acgs image "a lighthouse at dusk" --yes
#
# Keys come from the environment (`-e FAL_KEY`, never baked into the image) or from a secret file
# mounted as the credentials file (`--mount type=bind,src=creds,dst=/home/acgs/.config/acgs/credentials,ro`;
# it must be owned by uid 10001 and mode 0600). .env files are never copied in (.dockerignore).
#
# compose.yaml beside this file runs it as a service: PostgreSQL, the API, two workers, a TLS proxy.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p acgs-cli --bin acgs

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install --no-install-recommends -y ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin acgs \
    && mkdir /work /state && chown acgs:acgs /work /state
COPY --from=build /src/target/release/acgs /usr/local/bin/acgs
USER acgs
WORKDIR /work
ENTRYPOINT ["acgs"]
CMD ["--help"]
