# The Rendezvous homeserver (`rendezvous`) and client (`rdv`) as a container image.
#   docker build -t rendezvous .
#   docker run -v rendezvous-data:/var/lib/rendezvous \
#     -v $PWD/rendezvous.toml:/etc/rendezvous/rendezvous.toml:ro -p 8443:8443 -p 8448:8448 rendezvous
# The configuration must listen on 0.0.0.0 (or the container's address) and keep
# data_dir = "/var/lib/rendezvous"; see README.md, "Running a federating homeserver".

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin rendezvous --bin rdv

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# A fixed uid/gid, so that files in volumes keep their owner across image versions. Empty
# named volumes mounted on these directories take their owner and mode.
RUN groupadd --system --gid 10001 rendezvous \
 && useradd --system --uid 10001 --gid rendezvous --home-dir /var/lib/rendezvous \
      --no-create-home --shell /usr/sbin/nologin rendezvous \
 && mkdir -p /var/lib/rendezvous /certs /ca /etc/rendezvous \
 && chown rendezvous:rendezvous /var/lib/rendezvous /certs /ca \
 && chmod 0700 /var/lib/rendezvous /ca
COPY --from=build /src/target/release/rendezvous /src/target/release/rdv /usr/local/bin/
COPY config/rendezvous.example.toml /etc/rendezvous/rendezvous.example.toml
USER rendezvous
WORKDIR /var/lib/rendezvous
VOLUME ["/var/lib/rendezvous"]
# client API, federation
EXPOSE 8443 8448
ENTRYPOINT ["rendezvous"]
CMD ["serve", "--config", "/etc/rendezvous/rendezvous.toml"]
