# Multi-stage build of the static, non-root certrollout image, for those who build with a container engine:
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION="$(git describe --tags --always --dirty)" --build-arg COMMIT="$(git rev-parse HEAD)" \
#     --build-arg BUILD_DATE="$(date -u -d "@$(git log -1 --format=%ct)" +%Y-%m-%dT%H:%M:%SZ)" .
#
# `make image` builds the same image without one (hack/release, internal/image): the same files, user,
# entrypoint, labels and version stamps. Keep the two in step; test/repo/dockerfile_test.go builds this
# file's build stage from exactly what it copies.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
# Every package the binary imports: api/ (the CRD types), cmd/, internal/; config/ holds the CRD manifests
# that config/crd embeds.
COPY api/ api/
COPY cmd/ cmd/
COPY config/ config/
COPY internal/ internal/
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
ARG COMMIT=""
ARG BUILD_DATE=""
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -buildvcs=false \
      -ldflags "-X github.com/certrollout/certrollout/internal/version.gitVersion=${VERSION} -X github.com/certrollout/certrollout/internal/version.gitCommit=${COMMIT} -X github.com/certrollout/certrollout/internal/version.buildDate=${BUILD_DATE} -s -w" \
      -o /out/certrollout ./cmd/certrollout
# The final image's file system: the binary, root and nonroot (65532) users, an empty sticky /tmp, the
# licence.
COPY LICENSE /rootfs/licenses/LICENSE
RUN mkdir -p /rootfs/etc /rootfs/tmp /rootfs/home/nonroot \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /rootfs/etc/passwd \
 && printf 'root:x:0:\nnonroot:x:65532:\n' > /rootfs/etc/group \
 && chmod 0644 /rootfs/etc/passwd /rootfs/etc/group /rootfs/licenses/LICENSE \
 && chmod 1777 /rootfs/tmp \
 && chown 65532:65532 /rootfs/home/nonroot && chmod 0700 /rootfs/home/nonroot \
 && install -m 0755 /out/certrollout /rootfs/certrollout

FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
WORKDIR /
ENV PATH=/
ENTRYPOINT ["/certrollout"]
CMD ["controller"]
ARG VERSION=dev
ARG COMMIT=""
ARG BUILD_DATE=""
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.source="https://github.com/certrollout/certrollout" \
      org.opencontainers.image.url="https://github.com/certrollout/certrollout" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.title="certrollout" \
      org.opencontainers.image.description="Restarts the workloads that use a renewed certificate, safely: controller and kubectl plugin."
