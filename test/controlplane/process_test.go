package controlplane

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
)

// process is a program of the test (an agent, the controller) that the test can SIGKILL and start again
// with the same command line, as a crash and the kubelet's restart would. Its output, across every start,
// goes to one log file, shown when the test fails.
type process struct {
	name string
	args []string
	env  []string
	log  string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// startProcess starts name as args[0] args[1:] and stops it (SIGTERM to its group) when the test ends.
func startProcess(t *testing.T, name, log string, env, args []string) *process {
	t.Helper()
	p := &process{name: name, args: args, env: env, log: log}
	p.start(t)
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.cmd != nil {
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
			_ = p.cmd.Wait()
		}
		if t.Failed() {
			data, _ := os.ReadFile(p.log)
			t.Logf("%s:\n%s", p.name, tail(string(data), 60))
		}
	})
	return p
}

func (p *process) start(t *testing.T) {
	t.Helper()
	logFile, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", p.name, err)
	}
	p.mu.Lock()
	p.cmd = cmd
	p.mu.Unlock()
}

// crash SIGKILLs the process and everything it started, then starts it again with the same command line.
func (p *process) crash(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing %s: %v", p.name, err)
	}
	_ = cmd.Wait()
	if f, err := os.OpenFile(p.log, os.O_APPEND|os.O_WRONLY, 0o600); err == nil {
		fmt.Fprintf(f, "----- %s SIGKILLed by the test and started again -----\n", p.name)
		_ = f.Close()
	}
	p.start(t)
}
