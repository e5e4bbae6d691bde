package staticpod

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// spawner forks children from one locked OS thread. Linux sends the parent-death signal when the forking
// thread exits, not the process, and Go retires idle threads: without this a component could be killed
// while the runner still runs.
type spawner struct {
	reqs chan func()
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan func())}
	go func() {
		runtime.LockOSThread() // never unlocked: the thread lives as long as the runner
		for f := range s.reqs {
			f()
		}
	}()
	return s
}

func (s *spawner) run(f func()) {
	done := make(chan struct{})
	s.reqs <- func() { f(); close(done) }
	<-done
}

// process is one run of a container's command.
type process struct {
	pid       int
	startedAt time.Time
	exited    chan struct{}
	exitCode  int
	finished  time.Time
}

// start runs bin with args, output appended to logPath. The child leads its own process group, so the
// runner can stop everything it spawned, and gets SIGKILL if the runner dies, so that a killed runner
// leaves nothing behind (unlike a real kubelet, whose containers outlive it: nobody would adopt them here).
func (s *spawner) start(bin string, args []string, logPath string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	s.run(func() { err = cmd.Start() })
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	p := &process{pid: cmd.Process.Pid, startedAt: time.Now().UTC().Truncate(time.Second), exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		p.exitCode = cmd.ProcessState.ExitCode()
		p.finished = time.Now().UTC().Truncate(time.Second)
		close(p.exited)
	}()
	return p, nil
}

// childEnv keeps a KUBECONFIG of whoever started the runner away from the components.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KUBECONFIG=") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the process group, SIGKILL after grace, and waits until the process is reaped.
func (p *process) stop(grace time.Duration) {
	if !p.running() {
		return
	}
	_ = syscall.Kill(-p.pid, syscall.SIGTERM)
	select {
	case <-p.exited:
		return
	case <-time.After(grace):
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	<-p.exited
}

// PIDFile is where the runner records the PID of a static pod's process, under the node's root: the
// counterpart of a container runtime's state, for tests and tools that signal a component directly.
func PIDFile(hostRoot, podName string) string {
	return filepath.Join(hostRoot, "run", "staticpod", podName+".pid")
}

// ReadPID returns the PID recorded for a static pod, or an error if none is recorded.
func ReadPID(hostRoot, podName string) (int, error) {
	data, err := os.ReadFile(PIDFile(hostRoot, podName))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("reading the PID of static pod %s: %w", podName, err)
	}
	return pid, nil
}

func writePID(hostRoot, podName string, pid int) error {
	path := PIDFile(hostRoot, podName)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
