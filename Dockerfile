# stepstream built from source, running a pipeline from configs/.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/stepstream /usr/local/bin/stepstream
COPY configs /app/configs
WORKDIR /app
EXPOSE 9464
ENTRYPOINT ["stepstream"]
CMD ["process", "--config", "configs/docker.toml"]
