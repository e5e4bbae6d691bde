// Command probe reports what a process sees inside a containertest container, as JSON on stdout.
package main

import (
	"encoding/json"
	"os"
	"strings"
)

func main() {
	report := map[string]any{"uid": os.Getuid(), "gid": os.Getgid(), "env": os.Environ()}
	report["rootWritable"] = os.WriteFile("/probe-was-here", []byte("x"), 0o644) == nil
	report["tmpWritable"] = os.WriteFile("/tmp/probe", []byte("x"), 0o644) == nil
	if data, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/token"); err == nil {
		report["token"] = string(data)
	}
	report["saWritable"] = os.WriteFile("/var/run/secrets/kubernetes.io/serviceaccount/x", []byte("x"), 0o644) == nil
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) > 5 && f[4] == "/" {
				report["rootMountOptions"] = f[5]
			}
		}
	}
	if entries, err := os.ReadDir("/"); err == nil {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		report["rootEntries"] = names
	}
	_ = json.NewEncoder(os.Stdout).Encode(report)
}
