package localcluster

import (
	"bytes"
	"errors"
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

// proc is one running component. PID is also its process group: every component is started as a group
// leader, so stopping the group stops anything it spawned.
type proc struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	Log  string `json:"log"`

	// Set only in the process that started the component (which must reap it).
	exited  chan struct{}
	waitErr error
	// dir is the cluster folder; a recorded PID whose command line does not name it has been reused by
	// an unrelated process and must never be signalled.
	dir string
}

// spawner starts children from one OS thread that lives as long as the cluster. Linux delivers the
// parent-death signal when the thread that forked a child exits, not the process; Go may retire idle
// threads, so without a dedicated locked thread a test cluster could be killed while the test runs.
type spawner struct {
	reqs chan func()
	done chan struct{}
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan func()), done: make(chan struct{})}
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		defer close(s.done)
		for f := range s.reqs {
			f()
		}
	}()
	return s
}

func (s *spawner) run(f func()) {
	finished := make(chan struct{})
	s.reqs <- func() { f(); close(finished) }
	<-finished
}

// close ends the spawner thread; call it only after every child it started has exited.
func (s *spawner) close() {
	close(s.reqs)
	<-s.done
}

// startProc starts a component of the cluster in dir, with its output in dir/logs/<name>.log. Attached components (sp != nil) get SIGKILL
// when the starting process dies, however it dies; detached ones run in a session of their own and outlive
// the process that started them (`make cluster-up`).
func startProc(sp *spawner, dir, name, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, "logs", name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = componentEnv()
	if sp != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		sp.run(func() { err = cmd.Start() })
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		err = cmd.Start()
	}
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{Name: name, PID: cmd.Process.Pid, Log: logPath, exited: make(chan struct{}), dir: dir}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// componentEnv keeps the components from picking up the caller's cluster: a KUBECONFIG in the
// environment must never point a test control plane's components at someone else's API server.
func componentEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KUBECONFIG=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// exitedErr reports whether the component has exited, as an error carrying its log tail.
func (p *proc) exitedErr() error {
	if p.exited != nil {
		select {
		case <-p.exited:
			return &ComponentError{Component: p.Name, Err: fmt.Errorf("exited: %w", p.waitErr), LogTail: tail(p.Log, 30)}
		default:
			return nil
		}
	}
	if p.gone() {
		return &ComponentError{Component: p.Name, Err: errors.New("is not running"), LogTail: tail(p.Log, 30)}
	}
	return nil
}

// stop sends SIGTERM to the component's process group, then SIGKILL after grace, and waits until the
// leader is gone.
func (p *proc) stop(grace time.Duration) error {
	if p.gone() {
		return nil
	}
	_ = syscall.Kill(-p.PID, syscall.SIGTERM)
	if p.waitGone(grace) {
		return nil
	}
	_ = syscall.Kill(-p.PID, syscall.SIGKILL)
	if p.waitGone(10 * time.Second) {
		return nil
	}
	return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.Name, p.PID)
}

func (p *proc) gone() bool {
	if p.exited != nil {
		select {
		case <-p.exited:
			return true
		default:
			return false
		}
	}
	return !pidAlive(p.PID) || !mentions(p.PID, p.dir)
}

func (p *proc) waitGone(d time.Duration) bool {
	if p.exited != nil {
		select {
		case <-p.exited:
			return true
		case <-time.After(d):
			return false
		}
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if p.gone() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// pidAlive reports whether pid is a live (non-zombie) process.
func pidAlive(pid int) bool {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name, which may itself contain ") ".
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 >= len(data) {
		return false
	}
	return data[i+2] != 'Z'
}

// ProcessesUsing lists the live processes whose command line mentions dir. Every component of a cluster
// names its cluster folder on its command line (data dir, kubeconfig, certificates), so this finds all of
// a cluster's processes whether or not the caller started them.
func ProcessesUsing(dir string) []int {
	dir = filepath.Clean(dir)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if mentions(pid, dir) && pidAlive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mentions reports whether a path inside dir appears on the command line of pid.
func mentions(pid int, dir string) bool {
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return err == nil && bytes.Contains(cmdline, []byte(filepath.Clean(dir)+"/"))
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ComponentError says which component failed and shows the end of its log.
type ComponentError struct {
	Component string
	Err       error
	LogTail   string
}

func (e *ComponentError) Error() string {
	return fmt.Sprintf("%s %v\n--- last lines of the %s log ---\n%s\n---", e.Component, e.Err, e.Component, e.LogTail)
}

func (e *ComponentError) Unwrap() error { return e.Err }
