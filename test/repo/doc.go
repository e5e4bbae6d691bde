// Package repo checks the repository itself: what may be committed (no build outputs, no large blobs) and
// that the files people build from (the Dockerfile, the chart) name what exists.
package repo
