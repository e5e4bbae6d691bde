// Package version reports what build of certrollout is running. The values are set at link time by the
// Makefile (-ldflags -X) and fall back to the module build information for `go install` builds.
package version

import (
	"runtime"
	"runtime/debug"
)

// Set by the linker; see the Makefile's LDFLAGS.
var (
	gitVersion = ""
	gitCommit  = ""
	buildDate  = ""
)

// Info describes one build of certrollout.
type Info struct {
	Version   string `json:"version"`
	GitCommit string `json:"gitCommit,omitempty"`
	BuildDate string `json:"buildDate,omitempty"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns the version of the running binary.
func Get() Info {
	info := Info{
		Version:   gitVersion,
		GitCommit: gitCommit,
		BuildDate: buildDate,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if info.Version == "" {
		info.Version = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			info.Version = bi.Main.Version
		}
	}
	return info
}
