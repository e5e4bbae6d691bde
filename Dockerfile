# Multi-stage build of a static, non-root certrollout image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY internal/ internal/
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/certrollout/certrollout/internal/version.gitVersion=${VERSION}" \
    -o /out/certrollout ./cmd/certrollout

FROM scratch
COPY --from=build /out/certrollout /certrollout
USER 65532:65532
ENTRYPOINT ["/certrollout"]
