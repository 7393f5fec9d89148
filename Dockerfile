# agentid container image: a static binary on a distroless base, run as a
# non-root user. Build: docker build -t agentid .
# Run (SQLite in a volume): docker run -p 8080:8080 -v agentid-data:/var/lib/agentid \
#   -e AGENTID_ISSUER=https://auth.example.com agentid
# docs/operations.md covers PostgreSQL, the KEK and running several replicas.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO off: the SQLite driver is pure Go, so the binary needs no libc.
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/agentid ./cmd/agentid
RUN mkdir -p /out/data

# distroless/static: CA certificates, tzdata and /etc/passwd with the
# nonroot user (65532), nothing else: no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/agentid /usr/local/bin/agentid
COPY --from=build --chown=65532:65532 /out/data /var/lib/agentid
COPY deploy/container/agentid.yaml /etc/agentid/agentid.yaml
USER 65532:65532
EXPOSE 8080
VOLUME ["/var/lib/agentid"]
ENTRYPOINT ["/usr/local/bin/agentid", "serve", "--config", "/etc/agentid/agentid.yaml"]
