# The operator image. Build with `make docker-build IMG=...` where a Docker engine runs
# (none does on this project's CI machines, so CI builds the binaries, not the image).
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
COPY pkg/ pkg/
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -o manager ./cmd/manager \
 && CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -o claudecap ./cmd/claudecap

# The same image serves the operator (/manager) and the sidecar (/claudecap proxy).
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager /workspace/claudecap /
USER 65532:65532
ENTRYPOINT ["/manager"]
