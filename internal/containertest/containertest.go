// Package containertest runs an image's entrypoint the way a container runtime runs it in a pod, without
// a container engine: in a mount namespace of its own, chrooted into the image's unpacked root
// filesystem mounted read-only, as the image's non-root user, with /proc, a private /tmp, the
// ServiceAccount volume at /var/run/secrets/kubernetes.io/serviceaccount and only the environment the pod
// would have. The network namespace stays the host's, so the process reaches the local API server on
// loopback as a pod reaches kubernetes.default.
//
// It needs root (to create the namespace, mount and change user) and Linux. A test package calls Init
// first thing in TestMain: the runner re-executes the test binary, which sets the mounts up inside the
// new namespace and then executes the entrypoint in its place (as runc's init does).
package containertest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// ServiceAccountDir is where Kubernetes mounts a pod's ServiceAccount token, CA and namespace.
const ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// initEnv carries the Spec to the re-executed test binary.
const initEnv = "CERTROLLOUT_CONTAINERTEST_INIT"

// Mount is a host folder bound into the container.
type Mount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly"`
}

// Spec is what to run and how.
type Spec struct {
	// Rootfs is the unpacked image. Command creates the mount points it lacks (as runtimes do); nothing
	// else in it is changed, and inside the container it is read-only.
	Rootfs string `json:"rootfs"`
	// Args is the whole command line, entrypoint first (the image's Entrypoint + the pod's args).
	Args []string `json:"args"`
	// Env is the process environment, as KEY=VALUE.
	Env []string `json:"env"`
	// UID and GID the process runs as.
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
	// Mounts are bound after /proc and /tmp.
	Mounts []Mount `json:"mounts"`
}

// Command returns the command that runs spec (start it with Start or Run; stop it with a signal).
// Stdout and stderr are the caller's to set.
func Command(spec Spec) (*exec.Cmd, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("running an entrypoint as a container needs root (mount namespace, chroot, setuid)")
	}
	if len(spec.Args) == 0 || !filepath.IsAbs(spec.Args[0]) {
		return nil, fmt.Errorf("the entrypoint must be an absolute path inside the image, got %q", spec.Args)
	}
	// Mount points a runtime would create: made in the unpacked tree before it is mounted read-only.
	for _, dir := range append([]string{"proc", "tmp", "dev"}, targets(spec.Mounts)...) {
		if err := os.MkdirAll(filepath.Join(spec.Rootfs, dir), 0o755); err != nil { //nolint:gosec // mount points the image's non-root user must traverse
			return nil, err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = []string{initEnv + "=" + string(data)}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Unshareflags: syscall.CLONE_NEWNS,
		Setpgid:      true,
		Pdeathsig:    syscall.SIGKILL,
	}
	return cmd, nil
}

func targets(mounts []Mount) []string {
	var out []string
	for _, m := range mounts {
		out = append(out, m.Target)
	}
	return out
}

// Init must be the first call of TestMain in a package that uses Command: in the re-executed binary it
// sets the container up and executes the entrypoint (it never returns there); anywhere else it returns
// at once.
func Init() {
	data, ok := os.LookupEnv(initEnv)
	if !ok {
		return
	}
	var spec Spec
	if err := json.Unmarshal([]byte(data), &spec); err != nil {
		fail(os.Stderr, "reading the container spec", err)
	}
	fail(os.Stderr, "starting the container", enter(spec))
}

func fail(w io.Writer, what string, err error) {
	fmt.Fprintf(w, "containertest: %s: %v\n", what, err)
	os.Exit(127)
}

// enter runs inside the new mount namespace: it mounts, chroots, drops to the user and executes the
// entrypoint. It returns only on failure.
func enter(spec Spec) error {
	// Nothing mounted here may leak back to the host's namespace.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	root := spec.Rootfs
	if err := syscall.Mount(root, root, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return fmt.Errorf("binding the root filesystem: %w", err)
	}
	if err := syscall.Mount("proc", filepath.Join(root, "proc"), "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	if err := syscall.Mount("tmpfs", filepath.Join(root, "tmp"), "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=1777,size=16m"); err != nil {
		return fmt.Errorf("mounting /tmp: %w", err)
	}
	if err := syscall.Mount("tmpfs", filepath.Join(root, "dev"), "tmpfs", syscall.MS_NOSUID, "mode=755,size=64k"); err != nil {
		return fmt.Errorf("mounting /dev: %w", err)
	}
	// /dev/null is the one device Go programs expect (os/exec opens it for unset stdio).
	if err := touch(filepath.Join(root, "dev", "null")); err != nil {
		return err
	}
	if err := syscall.Mount("/dev/null", filepath.Join(root, "dev", "null"), "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("binding /dev/null: %w", err)
	}
	for _, m := range spec.Mounts {
		target := filepath.Join(root, m.Target)
		if err := syscall.Mount(m.Source, target, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("binding %s at %s: %w", m.Source, m.Target, err)
		}
		if m.ReadOnly {
			if err := syscall.Mount("", target, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
				return fmt.Errorf("making %s read-only: %w", m.Target, err)
			}
		}
	}
	// readOnlyRootFilesystem: the image's tree itself, not the mounts above it.
	if err := syscall.Mount("", root, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("making the root filesystem read-only: %w", err)
	}
	if err := syscall.Chroot(root); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := syscall.Chdir("/"); err != nil {
		return err
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("dropping supplementary groups: %w", err)
	}
	if err := syscall.Setresgid(int(spec.GID), int(spec.GID), int(spec.GID)); err != nil {
		return fmt.Errorf("setting gid %d: %w", spec.GID, err)
	}
	if err := syscall.Setresuid(int(spec.UID), int(spec.UID), int(spec.UID)); err != nil {
		return fmt.Errorf("setting uid %d: %w", spec.UID, err)
	}
	return syscall.Exec(spec.Args[0], spec.Args, spec.Env)
}

func touch(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644) //nolint:gosec // an empty mount point for /dev/null, which everyone reads
	if err != nil {
		return err
	}
	return f.Close()
}
